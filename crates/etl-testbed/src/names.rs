//! Unique resource names, so that tests sharing one server never collide.

use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn suffix() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}{n}x{:x}", std::process::id(), nanos & 0xffff)
}

fn clean(prefix: &str, sep: char) -> String {
    let mut out: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                sep
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert(0, 't');
    }
    out.truncate(36);
    out
}

/// A name unique in this process: `<prefix>-<pid><counter>x<hex>`, lowercase letters, digits and
/// `-`, at most 63 characters: valid for Kinesis streams, S3 buckets and DynamoDB tables.
pub fn unique_name(prefix: &str) -> String {
    format!("{}-{}", clean(prefix, '-'), suffix())
}

/// A name unique in this process with `_` instead of `-`, starting with a letter: valid for
/// Glue databases and tables and as an unquoted SQL identifier.
pub fn unique_ident(prefix: &str) -> String {
    format!("{}_{}", clean(prefix, '_'), suffix())
}
