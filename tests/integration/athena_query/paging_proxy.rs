//! A loopback HTTP/1.1 proxy in front of moto that adds what moto's `GetQueryResults` lacks:
//! pages. moto answers every `GetQueryResults` with all rows and no `NextToken`; Athena answers at
//! most `MaxResults` rows (≤ 1,000) and a `NextToken` while rows remain, the header row only at the
//! top of the first page. The proxy forwards every request to moto unchanged and, for
//! `AmazonAthena.GetQueryResults`, cuts moto's full answer to the page the request names
//! (`NextToken` = row offset, as text) and adds `NextToken` when more rows follow. Nothing else is
//! changed: states, statistics and errors are moto's — except with [`PagingProxy::failing`],
//! which also rewrites every `GetQueryExecution` answer to the `FAILED` state with a
//! `StateChangeReason` and an `AthenaError`, the one outcome moto cannot produce (it runs no SQL).
//!
//! One request per connection (`Connection: close`), like the test bed's fault proxy.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The running proxy; stops when dropped.
pub struct PagingProxy {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// `GetQueryResults` requests seen.
    pub pages: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PagingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PagingProxy {
    /// Starts a proxy to moto on `upstream_port`.
    pub async fn start(upstream_port: u16) -> std::io::Result<PagingProxy> {
        Self::start_with(upstream_port, None).await
    }

    /// A proxy whose queries all fail with `reason` (see the module doc).
    pub async fn failing(upstream_port: u16, reason: &str) -> std::io::Result<PagingProxy> {
        Self::start_with(upstream_port, Some(reason.to_string())).await
    }

    async fn start_with(upstream_port: u16, fail: Option<String>) -> std::io::Result<PagingProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let endpoint = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
        let pages = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&pages);
        let failure = fail;
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counter = Arc::clone(&counter);
                let failure = failure.clone();
                tokio::spawn(async move {
                    if let Err(e) =
                        exchange(client, upstream_port, &counter, failure.as_deref()).await
                    {
                        eprintln!("paging proxy: {e}");
                    }
                });
            }
        });
        Ok(PagingProxy {
            endpoint,
            pages,
            task,
        })
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Head lines (without `Connection`/`Content-Length`) and body of an HTTP message read to
/// the end of its `Content-Length`, or of the stream.
async fn read_message(
    stream: &mut TcpStream,
    to_end: bool,
) -> Result<(Vec<String>, Vec<u8>), String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed inside a head".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = Vec::new();
    let mut length = None;
    for (i, line) in head.split("\r\n").enumerate() {
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if i > 0 && name == "content-length" {
            length = line
                .split_once(':')
                .and_then(|(_, v)| v.trim().parse::<usize>().ok());
            continue;
        }
        if i > 0 && (name == "connection" || name == "keep-alive") {
            continue;
        }
        lines.push(line.to_string());
    }
    let mut body = buf[head_end + 4..].to_vec();
    loop {
        if !to_end && body.len() >= length.unwrap_or(0) {
            break;
        }
        if to_end && length.is_some_and(|l| body.len() >= l) {
            break;
        }
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok((lines, body))
}

async fn exchange(
    mut client: TcpStream,
    upstream_port: u16,
    pages: &AtomicU64,
    fail: Option<&str>,
) -> Result<(), String> {
    let (lines, body) = read_message(&mut client, false).await?;
    let target = |op: &str| {
        lines
            .iter()
            .any(|l| l.to_ascii_lowercase().starts_with("x-amz-target:") && l.ends_with(op))
    };
    let is_status = target("AmazonAthena.GetQueryExecution");
    let is_page = lines.iter().any(|l| {
        l.to_ascii_lowercase().starts_with("x-amz-target:")
            && l.ends_with("AmazonAthena.GetQueryResults")
    });
    let mut upstream = TcpStream::connect(("127.0.0.1", upstream_port))
        .await
        .map_err(|e| e.to_string())?;
    let head = format!(
        "{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        lines.join("\r\n"),
        body.len()
    );
    upstream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    upstream.write_all(&body).await.map_err(|e| e.to_string())?;
    let (answer_lines, mut answer) = read_message(&mut upstream, true).await?;
    let ok = answer_lines.first().is_some_and(|l| l.contains(" 200"));
    if is_page && ok {
        pages.fetch_add(1, Ordering::SeqCst);
        let request: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        let max = request["MaxResults"].as_u64().unwrap_or(1000) as usize;
        let offset: usize = request["NextToken"]
            .as_str()
            .map(|t| t.parse().map_err(|_| format!("bad NextToken {t}")))
            .transpose()?
            .unwrap_or(0);
        let mut full: serde_json::Value =
            serde_json::from_slice(&answer).map_err(|e| e.to_string())?;
        let rows = full["ResultSet"]["Rows"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let end = (offset + max).min(rows.len());
        full["ResultSet"]["Rows"] = serde_json::Value::Array(rows[offset.min(end)..end].to_vec());
        if end < rows.len() {
            full["NextToken"] = serde_json::Value::String(end.to_string());
        }
        answer = serde_json::to_vec(&full).map_err(|e| e.to_string())?;
    }
    if let (true, true, Some(reason)) = (is_status, ok, fail) {
        let mut full: serde_json::Value =
            serde_json::from_slice(&answer).map_err(|e| e.to_string())?;
        let status = &mut full["QueryExecution"]["Status"];
        status["State"] = "FAILED".into();
        status["StateChangeReason"] = reason.into();
        status["AthenaError"] =
            serde_json::json!({"ErrorCategory": 2, "ErrorType": 1006, "Retryable": false});
        answer = serde_json::to_vec(&full).map_err(|e| e.to_string())?;
    }
    let head = format!(
        "{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        answer_lines.join("\r\n"),
        answer.len()
    );
    client
        .write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    client.write_all(&answer).await.map_err(|e| e.to_string())?;
    client.shutdown().await.map_err(|e| e.to_string())
}
