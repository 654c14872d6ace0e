//! The lease table in DynamoDB: one item per shard (KCL attribute names, `docs/leases.md`) and
//! one heartbeat item per consumer process and stream. Every change of a shard lease is an
//! `UpdateItem` conditional on `leaseCounter` (and, for the owner's own writes, `leaseOwner`).

use super::LeaseError;
use crate::shards::ShardInfo;
use etl_aws::dynamodb::error::SdkError;
use etl_aws::dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus,
};
use etl_aws::dynamodb::Client;
use std::collections::HashMap;
use std::time::Duration;

/// `entityType` of shard leases (KCL 3.5 writes `LEASE` too).
pub const ENTITY_LEASE: &str = "LEASE";
/// `entityType` of consumer heartbeats.
pub const ENTITY_WORKER: &str = "WORKER";
/// `checkpoint` of a shard read to its end and committed (KCL's sentinel).
pub const SHARD_END: &str = "SHARD_END";
/// `checkpoint` of a shard nothing was committed of yet.
pub const TRIM_HORIZON: &str = "TRIM_HORIZON";

/// One item of the lease table, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseItem {
    /// `leaseKey`: `<stream>:<shard id>` for shards, `worker:<stream>:<owner>` for heartbeats.
    pub key: String,
    /// `entityType`: [`ENTITY_LEASE`] or [`ENTITY_WORKER`].
    pub entity: String,
    /// `streamName`.
    pub stream: String,
    /// `shardId` (empty for heartbeats).
    pub shard: String,
    /// `leaseOwner` (absent: free).
    pub owner: Option<String>,
    /// `leaseCounter`.
    pub counter: u64,
    /// `checkpoint`: the last committed sequence number, [`TRIM_HORIZON`] or [`SHARD_END`]
    /// (for operators; the lake's commit log is the source of truth).
    pub checkpoint: Option<String>,
    /// `checkpointSubSequenceNumber`.
    pub checkpoint_sub: u64,
    /// `ownerSwitchesSinceCheckpoint`.
    pub owner_switches: u64,
    /// `parentShardId` (a set, as in KCL).
    pub parents: Vec<String>,
    /// `startingHashKey`, `endingHashKey`.
    pub hash_range: Option<(String, String)>,
    /// `millisBehindLatest` when the owner last renewed (ours; KCL has no lag attribute).
    pub millis_behind: Option<i64>,
}

/// The lease table of one application.
#[derive(Debug, Clone)]
pub struct LeaseTable {
    client: Client,
    name: String,
    /// Longest wait for one DynamoDB call (a partition must not stall the lease loop).
    timeout: Duration,
}

/// The key of `shard`'s lease.
pub fn lease_key(stream: &str, shard: &str) -> String {
    format!("{stream}:{shard}")
}

/// The key of `owner`'s heartbeat for `stream`.
pub fn worker_key(stream: &str, owner: &str) -> String {
    format!("worker:{stream}:{owner}")
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Whether a failed call was a `ConditionalCheckFailedException`.
fn conditional_failed<E, R>(e: &SdkError<E, R>) -> bool
where
    E: etl_aws::dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

impl LeaseTable {
    /// The table `name`, reached with `client`; each call gives up after `timeout`.
    pub fn new(client: Client, name: &str, timeout: Duration) -> Self {
        LeaseTable {
            client,
            name: name.to_string(),
            timeout,
        }
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn call<T, E: std::error::Error + 'static>(
        &self,
        operation: &'static str,
        f: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, LeaseError> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(LeaseError::Call {
                operation,
                table: self.name.clone(),
                message: etl_aws::describe_error(&e),
            }),
            Err(_) => Err(LeaseError::Call {
                operation,
                table: self.name.clone(),
                message: format!("no answer within {} ms", self.timeout.as_millis()),
            }),
        }
    }

    /// [`LeaseTable::call`] of a conditional write: a failed condition is `Ok(None)`.
    async fn conditional<T, E, R>(
        &self,
        operation: &'static str,
        f: impl std::future::Future<Output = Result<T, SdkError<E, R>>>,
    ) -> Result<Option<T>, LeaseError>
    where
        E: etl_aws::dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        self.call(operation, async {
            match f.await {
                Ok(v) => Ok(Some(v)),
                Err(e) if conditional_failed(&e) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Creates the table (key `leaseKey`, on-demand billing) unless it exists, and waits until
    /// it is active. Returns whether it was created. An existing table is found with
    /// `DescribeTable` first, so a role without `dynamodb:CreateTable` works once the table exists.
    pub async fn create_if_absent(&self) -> Result<bool, LeaseError> {
        let described = tokio::time::timeout(
            self.timeout,
            self.client.describe_table().table_name(&self.name).send(),
        )
        .await;
        if let Ok(Ok(_)) = described {
            self.wait_active().await?;
            return Ok(false);
        }
        let build = |e: etl_aws::dynamodb::error::BuildError| LeaseError::Call {
            operation: "CreateTable",
            table: self.name.clone(),
            message: e.to_string(),
        };
        let created = self
            .client
            .create_table()
            .table_name(&self.name)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("leaseKey")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(build)?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("leaseKey")
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(build)?,
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        let created = match created {
            Ok(_) => true,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) =>
            {
                false
            }
            Err(e) => {
                return Err(LeaseError::Call {
                    operation: "CreateTable",
                    table: self.name.clone(),
                    message: etl_aws::describe_error(&e),
                })
            }
        };
        self.wait_active().await?;
        Ok(created)
    }

    /// Waits (up to 60 s) until the table is `ACTIVE`.
    async fn wait_active(&self) -> Result<(), LeaseError> {
        for _ in 0..120 {
            let described = self
                .call(
                    "DescribeTable",
                    self.client.describe_table().table_name(&self.name).send(),
                )
                .await?;
            if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(LeaseError::Call {
            operation: "DescribeTable",
            table: self.name.clone(),
            message: "the table did not become ACTIVE within 60 s".into(),
        })
    }

    /// Every item of the table (consistent read, all pages).
    pub async fn scan(&self) -> Result<Vec<LeaseItem>, LeaseError> {
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .call(
                    "Scan",
                    self.client
                        .scan()
                        .table_name(&self.name)
                        .consistent_read(true)
                        .set_exclusive_start_key(start.take())
                        .send(),
                )
                .await
                .map_err(|e| match e {
                    LeaseError::Call { message, .. } if message.contains("ResourceNotFound") => {
                        LeaseError::NoTable(self.name.clone())
                    }
                    other => other,
                })?;
            out.extend(page.items().iter().filter_map(parse_item));
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }

    /// Creates `shard`'s lease, free, unless it exists.
    pub async fn ensure(&self, stream: &str, shard: &ShardInfo) -> Result<(), LeaseError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.name)
            .item("leaseKey", s(lease_key(stream, &shard.shard_id)))
            .item("entityType", s(ENTITY_LEASE))
            .item("streamName", s(stream))
            .item("shardId", s(&shard.shard_id))
            .item("leaseCounter", n(0))
            .item("checkpoint", s(TRIM_HORIZON))
            .item("checkpointSubSequenceNumber", n(0))
            .item("ownerSwitchesSinceCheckpoint", n(0))
            .condition_expression("attribute_not_exists(leaseKey)");
        if !shard.parents.is_empty() {
            put = put.item("parentShardId", AttributeValue::Ss(shard.parents.clone()));
        }
        if let Some((start, end)) = &shard.hash_range {
            put = put
                .item("startingHashKey", s(start))
                .item("endingHashKey", s(end));
        }
        self.conditional("PutItem", put.send()).await.map(|_| ())
    }

    /// One item by key (consistent read).
    pub async fn get(&self, key: &str) -> Result<Option<LeaseItem>, LeaseError> {
        let got = self
            .call(
                "GetItem",
                self.client
                    .get_item()
                    .table_name(&self.name)
                    .key("leaseKey", s(key))
                    .consistent_read(true)
                    .send(),
            )
            .await?;
        Ok(got.item().and_then(parse_item))
    }

    /// A conditional update of `key` expecting `leaseCounter` = `counter` (and `leaseOwner` =
    /// `owner` when given) that sets the counter to `counter + 1`. `Ok(false)`: the condition
    /// failed and the item is not `(expected_after, counter + 1)` (which would mean the SDK
    /// retried a write that had succeeded).
    async fn update(
        &self,
        key: &str,
        counter: u64,
        owner: Option<&str>,
        expected_after: Option<&str>,
        set: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, LeaseError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.name)
            .key("leaseKey", s(key))
            .update_expression(set)
            .expression_attribute_values(":n", n(counter))
            .expression_attribute_values(":n1", n(counter + 1));
        let mut condition = "leaseCounter = :n".to_string();
        if let Some(owner) = owner {
            condition.push_str(" AND leaseOwner = :owner");
            update = update.expression_attribute_values(":owner", s(owner));
        }
        for (name, value) in values {
            update = update.expression_attribute_values(name, value);
        }
        let sent = self
            .conditional("UpdateItem", update.condition_expression(condition).send())
            .await?;
        match sent {
            Some(_) => Ok(true),
            None => {
                // The SDK may have retried a write that succeeded: re-read (KCL's rule).
                let now = self.get(key).await?;
                Ok(now.is_some_and(|i| {
                    i.counter == counter + 1 && i.owner.as_deref() == expected_after
                }))
            }
        }
    }

    /// Takes `key` for `me` if its counter is still `counter`. Counts an owner switch unless
    /// `me` owned it already.
    pub async fn take(
        &self,
        key: &str,
        counter: u64,
        previous: Option<&str>,
        me: &str,
    ) -> Result<bool, LeaseError> {
        let switch = if previous == Some(me) { 0 } else { 1 };
        self.update(
            key,
            counter,
            None,
            Some(me),
            "SET leaseOwner = :me, leaseCounter = :n1, ownerSwitchesSinceCheckpoint = if_not_exists(ownerSwitchesSinceCheckpoint, :zero) + :switch",
            vec![(":me", s(me)), (":zero", n(0)), (":switch", n(switch))],
        )
        .await
    }

    /// Renews `me`'s lease `key` at `counter`, recording the last committed position
    /// (`checkpoint` resets `ownerSwitchesSinceCheckpoint`, as in KCL) and the lag.
    pub async fn renew(
        &self,
        key: &str,
        counter: u64,
        me: &str,
        checkpoint: Option<(&str, u64)>,
        millis_behind: Option<i64>,
    ) -> Result<bool, LeaseError> {
        let mut set = "SET leaseCounter = :n1".to_string();
        let mut values = Vec::new();
        if let Some((sequence, sub)) = checkpoint {
            set.push_str(", checkpoint = :cp, checkpointSubSequenceNumber = :sub, ownerSwitchesSinceCheckpoint = :zero");
            values.push((":cp", s(sequence)));
            values.push((":sub", n(sub)));
            values.push((":zero", n(0)));
        }
        if let Some(ms) = millis_behind {
            set.push_str(", millisBehindLatest = :lag");
            values.push((":lag", n(ms)));
        }
        self.update(key, counter, Some(me), Some(me), &set, values)
            .await
    }

    /// Releases `me`'s lease `key` at `counter`: no owner, so a peer takes it at once. With
    /// `checkpoint`, records the last committed position (or [`SHARD_END`]).
    pub async fn release(
        &self,
        key: &str,
        counter: u64,
        me: &str,
        checkpoint: Option<(&str, u64)>,
    ) -> Result<bool, LeaseError> {
        let mut set = "SET leaseCounter = :n1".to_string();
        let mut values = Vec::new();
        if let Some((sequence, sub)) = checkpoint {
            set.push_str(", checkpoint = :cp, checkpointSubSequenceNumber = :sub, ownerSwitchesSinceCheckpoint = :zero");
            values.push((":cp", s(sequence)));
            values.push((":sub", n(sub)));
            values.push((":zero", n(0)));
        }
        set.push_str(" REMOVE leaseOwner");
        self.update(key, counter, Some(me), None, &set, values)
            .await
    }

    /// Writes `owner`'s heartbeat for `stream` with `counter` (unconditional: only its owner
    /// writes it).
    pub async fn heartbeat(
        &self,
        stream: &str,
        owner: &str,
        counter: u64,
    ) -> Result<(), LeaseError> {
        self.call(
            "PutItem",
            self.client
                .put_item()
                .table_name(&self.name)
                .item("leaseKey", s(worker_key(stream, owner)))
                .item("entityType", s(ENTITY_WORKER))
                .item("streamName", s(stream))
                .item("leaseOwner", s(owner))
                .item("leaseCounter", n(counter))
                .send(),
        )
        .await
        .map(|_| ())
    }

    /// Deletes the heartbeat item `key` of a consumer that stopped without removing it (killed),
    /// if its counter is still `counter`; a heartbeat that moved meanwhile stays.
    pub async fn delete_stale_heartbeat(&self, key: &str, counter: u64) -> Result<(), LeaseError> {
        self.conditional(
            "DeleteItem",
            self.client
                .delete_item()
                .table_name(&self.name)
                .key("leaseKey", s(key))
                .condition_expression("leaseCounter = :n AND entityType = :worker")
                .expression_attribute_values(":n", n(counter))
                .expression_attribute_values(":worker", s(ENTITY_WORKER))
                .send(),
        )
        .await
        .map(|_| ())
    }

    /// Deletes `owner`'s heartbeat for `stream` (at shutdown: peers stop counting it at once).
    pub async fn delete_heartbeat(&self, stream: &str, owner: &str) -> Result<(), LeaseError> {
        self.call(
            "DeleteItem",
            self.client
                .delete_item()
                .table_name(&self.name)
                .key("leaseKey", s(worker_key(stream, owner)))
                .send(),
        )
        .await
        .map(|_| ())
    }
}

fn parse_item(item: &HashMap<String, AttributeValue>) -> Option<LeaseItem> {
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    let number = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
    };
    let key = text("leaseKey")?;
    let hash_range = text("startingHashKey").zip(text("endingHashKey"));
    Some(LeaseItem {
        entity: text("entityType").unwrap_or_else(|| ENTITY_LEASE.into()),
        stream: text("streamName").unwrap_or_default(),
        shard: text("shardId").unwrap_or_default(),
        owner: text("leaseOwner"),
        counter: number("leaseCounter").unwrap_or(0).max(0) as u64,
        checkpoint: text("checkpoint"),
        checkpoint_sub: number("checkpointSubSequenceNumber").unwrap_or(0).max(0) as u64,
        owner_switches: number("ownerSwitchesSinceCheckpoint").unwrap_or(0).max(0) as u64,
        parents: item
            .get("parentShardId")
            .and_then(|v| v.as_ss().ok())
            .cloned()
            .unwrap_or_default(),
        hash_range,
        millis_behind: number("millisBehindLatest"),
        key,
    })
}
