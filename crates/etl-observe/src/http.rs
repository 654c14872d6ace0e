//! A minimal HTTP/1.1 responder for three GET endpoints. One request per connection
//! (`Connection: close`), which Prometheus, the kubelet and ECS health checks all accept.
//!
//! Why not hyper's server: hyper 1 is in the dependency tree for the AWS SDK's and object_store's
//! HTTP clients, but only with its `client` feature. Turning on `server` (and hyper-util's
//! server parts) rebuilds hyper and every crate above it, i.e. all the AWS SDK crates, for a
//! listener that answers three fixed GETs. What a scraper or a probe sends is one request line
//! and a few headers; this module reads at most [`MAX_HEAD`] bytes of it for at most
//! [`READ_TIMEOUT`], answers, and closes.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longest request head read (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;
/// Longest time a client may take to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A response: status, content type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

/// The parts of a request the endpoints look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET` or `HEAD` (others are answered 405 before routing).
    pub method: String,
    /// The path without the query string.
    pub path: String,
}

/// Why a request head could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// The connection closed before a complete head (nothing to answer).
    Closed,
    /// Not an HTTP/1.x request line, or a head over [`MAX_HEAD`]: answered 400.
    Malformed,
    /// A method other than GET and HEAD: answered 405.
    Method,
}

/// Parses a request head (everything up to the blank line).
pub fn parse_head(head: &[u8]) -> Result<Request, HeadError> {
    let line_end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or(HeadError::Malformed)?;
    let line = std::str::from_utf8(&head[..line_end]).map_err(|_| HeadError::Malformed)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed);
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Err(HeadError::Malformed);
    }
    if method != "GET" && method != "HEAD" {
        return Err(HeadError::Method);
    }
    let path = target.split('?').next().unwrap_or(target);
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// The bytes of `response` (without a body for HEAD requests).
pub fn encode(response: &Response, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    );
    if response.status == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(response.body.as_bytes());
    }
    bytes
}

/// Reads the request head of `stream`: up to the first blank line, [`MAX_HEAD`] bytes and
/// [`READ_TIMEOUT`] at most.
async fn read_head<S: AsyncReadExt + Unpin>(stream: &mut S) -> Result<Vec<u8>, HeadError> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let read = async {
        loop {
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|_| HeadError::Closed)?;
            if n == 0 {
                return Err(HeadError::Closed);
            }
            head.extend_from_slice(&chunk[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                return Ok(());
            }
            if head.len() > MAX_HEAD {
                return Err(HeadError::Malformed);
            }
        }
    };
    let outcome = tokio::time::timeout(READ_TIMEOUT, read).await;
    match outcome {
        Ok(Ok(())) => Ok(head),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(HeadError::Closed),
    }
}

/// Answers the one request of `stream` with `route`.
pub async fn handle<S, F>(mut stream: S, route: F)
where
    S: AsyncReadExt + AsyncWriteExt + Unpin,
    F: FnOnce(&Request) -> Response,
{
    let (response, head_only) = match read_head(&mut stream).await.and_then(|h| parse_head(&h)) {
        Ok(request) => (route(&request), request.method == "HEAD"),
        Err(HeadError::Closed) => return,
        Err(HeadError::Malformed) => (Response::text(400, "bad request\n"), false),
        Err(HeadError::Method) => (Response::text(405, "only GET and HEAD\n"), false),
    };
    let bytes = encode(&response, head_only);
    if stream.write_all(&bytes).await.is_ok() {
        let _ = stream.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        let get = parse_head(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(
            get,
            Ok(Request {
                method: "GET".into(),
                path: "/metrics".into()
            })
        );
        assert_eq!(
            parse_head(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Err(HeadError::Method)
        );
        for bad in [
            &b"GET /metrics\r\n\r\n"[..],
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics SPDY/3\r\n\r\n",
            b"\xff\xfe /x HTTP/1.1\r\n\r\n",
            b"no line end",
        ] {
            assert_eq!(parse_head(bad), Err(HeadError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn responses_carry_length_and_no_body_for_head() {
        let r = Response::text(503, "not ready: stopping\n");
        let full = String::from_utf8(encode(&r, false)).expect("utf-8");
        assert!(
            full.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{full}"
        );
        assert!(full.contains("Content-Length: 20\r\n"), "{full}");
        assert!(full.ends_with("\r\n\r\nnot ready: stopping\n"), "{full}");
        let head = String::from_utf8(encode(&r, true)).expect("utf-8");
        assert!(head.ends_with("\r\n\r\n"), "{head}");
    }
}
