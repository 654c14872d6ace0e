//! Dead letters: records the pipeline could not accept, kept with their reason and original bytes.

use base64::Engine;
use serde::{Deserialize, Serialize};

/// Where a dead-lettered record came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterSource {
    /// Source name: a file path, `-` for stdin, or a stream/shard.
    pub name: String,
    /// Position in the source: line number (1-based) for files, sequence number for shards.
    pub position: String,
}

/// One rejected record. Serialized as one NDJSON line; `raw` holds the original bytes when they
/// are UTF-8, `raw_base64` otherwise (exactly one of the two is present).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Stream the record was read from.
    pub stream: String,
    /// Stable reason code, e.g. `invalid_json`, `missing_field`, `too_large`.
    pub reason: String,
    /// What exactly was wrong, naming the field.
    pub message: String,
    /// Where it came from.
    pub source: DeadLetterSource,
    /// When it was rejected (RFC 3339, UTC).
    pub dead_lettered_at: String,
    /// Original bytes, if UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// Original bytes, base64, if not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_base64: Option<String>,
}

impl DeadLetter {
    /// A dead letter for `bytes`, choosing `raw` or `raw_base64`.
    pub fn new(
        stream: &str,
        reason: &str,
        message: String,
        source: DeadLetterSource,
        at: String,
        bytes: &[u8],
    ) -> Self {
        let (raw, raw_base64) = match std::str::from_utf8(bytes) {
            Ok(s) => (Some(s.to_string()), None),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            ),
        };
        DeadLetter {
            stream: stream.into(),
            reason: reason.into(),
            message,
            source,
            dead_lettered_at: at,
            raw,
            raw_base64,
        }
    }

    /// The original bytes.
    pub fn original_bytes(&self) -> Vec<u8> {
        match (&self.raw, &self.raw_base64) {
            (Some(s), _) => s.as_bytes().to_vec(),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .unwrap_or_default(),
            (None, None) => Vec::new(),
        }
    }
}

pub(crate) fn to_ndjson(letters: &[DeadLetter]) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::new();
    for l in letters {
        serde_json::to_writer(&mut out, l)?;
        out.push(b'\n');
    }
    Ok(out)
}
