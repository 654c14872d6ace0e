//! Shard discovery (`ListShards`, paginated) and the parent-before-child rule of resharding.

use crate::KinesisError;
use etl_aws::kinesis::error::ProvideErrorMetadata;
use etl_aws::kinesis::Client;
use std::collections::HashSet;

/// One shard as `ListShards` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    /// e.g. `shardId-000000000000`.
    pub shard_id: String,
    /// `ParentShardId` and `AdjacentParentShardId` (merge), when present.
    pub parents: Vec<String>,
    /// Whether the shard is closed (has an ending sequence number).
    pub closed: bool,
    /// `StartingHashKey` and `EndingHashKey` (decimal), when listed.
    pub hash_range: Option<(String, String)>,
}

/// Every shard of `stream` (open and closed but not yet expired), following `NextToken`.
/// A missing stream is [`KinesisError::StreamNotFound`].
pub async fn list_shards(client: &Client, stream: &str) -> Result<Vec<ShardInfo>, KinesisError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let request = match &token {
            // NextToken and StreamName must not be sent together.
            Some(t) => client.list_shards().next_token(t),
            None => client.list_shards().stream_name(stream),
        };
        let page = request.send().await.map_err(|e| {
            if e.as_service_error().and_then(|s| s.code()) == Some("ResourceNotFoundException") {
                KinesisError::StreamNotFound(stream.to_string())
            } else {
                KinesisError::call("ListShards", stream, &e)
            }
        })?;
        for s in page.shards() {
            let mut parents = Vec::new();
            parents.extend(s.parent_shard_id().map(str::to_string));
            parents.extend(s.adjacent_parent_shard_id().map(str::to_string));
            let closed = s
                .sequence_number_range()
                .and_then(|r| r.ending_sequence_number())
                .is_some();
            let hash_range = s.hash_key_range().map(|r| {
                (
                    r.starting_hash_key().to_string(),
                    r.ending_hash_key().to_string(),
                )
            });
            out.push(ShardInfo {
                shard_id: s.shard_id().to_string(),
                parents,
                closed,
                hash_range,
            });
        }
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// The shards that may be read now, in listing order: not finished, not busy, and each parent
/// either finished (read to its end **and** committed) or no longer listed (expired after the
/// retention period, so there is nothing left to read).
///
/// `busy` must hold every shard being read **and** every shard read to its end whose end is not
/// committed yet: such a shard is neither reading nor finished, and listing it as readable would
/// start a second reader that hands its uncommitted records on again.
pub fn readable_shards<'a>(
    shards: &'a [ShardInfo],
    finished: &HashSet<String>,
    busy: &HashSet<String>,
) -> Vec<&'a ShardInfo> {
    let listed: HashSet<&str> = shards.iter().map(|s| s.shard_id.as_str()).collect();
    shards
        .iter()
        .filter(|s| !finished.contains(&s.shard_id) && !busy.contains(&s.shard_id))
        .filter(|s| {
            s.parents
                .iter()
                .all(|p| finished.contains(p) || !listed.contains(p.as_str()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parents: &[&str], closed: bool) -> ShardInfo {
        ShardInfo {
            shard_id: id.into(),
            parents: parents.iter().map(|p| p.to_string()).collect(),
            closed,
            hash_range: None,
        }
    }

    fn ids(v: Vec<&ShardInfo>) -> Vec<&str> {
        v.into_iter().map(|s| s.shard_id.as_str()).collect()
    }

    #[test]
    fn children_wait_for_every_parent() {
        // 0 split into 2 and 3; 2 and 1 merged into 4.
        let shards = vec![
            shard("0", &[], true),
            shard("1", &[], true),
            shard("2", &["0"], true),
            shard("3", &["0"], false),
            shard("4", &["2", "1"], false),
        ];
        let none = HashSet::new();
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<HashSet<_>>();
        assert_eq!(ids(readable_shards(&shards, &none, &none)), vec!["0", "1"]);
        assert_eq!(
            ids(readable_shards(&shards, &none, &set(&["0", "1"]))),
            Vec::<&str>::new()
        );
        assert_eq!(
            ids(readable_shards(&shards, &set(&["0"]), &set(&["1"]))),
            vec!["2", "3"]
        );
        assert_eq!(
            ids(readable_shards(
                &shards,
                &set(&["0", "2"]),
                &set(&["1", "3"])
            )),
            Vec::<&str>::new(),
            "merge waits for both parents"
        );
        assert_eq!(
            ids(readable_shards(
                &shards,
                &set(&["0", "1", "2"]),
                &set(&["3"])
            )),
            vec!["4"]
        );
    }

    #[test]
    fn expired_parents_do_not_block() {
        let shards = vec![shard("5", &["gone"], false)];
        assert_eq!(
            ids(readable_shards(&shards, &HashSet::new(), &HashSet::new())),
            vec!["5"]
        );
    }
}
