//! A minimal HTTP/1.1 server for the AWS JSON 1.1 protocol: `POST /` with a
//! `Content-Length` body, keep-alive, one response per request. (Hand-rolled so that the test
//! build does not switch on hyper's server features, which would rebuild every AWS SDK crate.)

use std::future::Future;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Largest request body accepted.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// A request: the `X-Amz-Target` header and the body.
pub(crate) struct Request {
    pub target: String,
    pub body: Vec<u8>,
}

/// A response: status and JSON body.
pub(crate) struct Response {
    pub status: u16,
    pub body: String,
}

/// Serves requests on `stream` until the client closes it or asks to.
pub(crate) async fn serve_connection<F, Fut>(stream: TcpStream, handle: F)
where
    F: Fn(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut counter: u64 = 0;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.trim().is_empty() {
            continue;
        }
        let mut content_length = 0usize;
        let mut target = String::new();
        let mut close = line.contains("HTTP/1.0");
        let mut chunked = false;
        loop {
            let mut header = String::new();
            match reader.read_line(&mut header).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => content_length = value.parse().unwrap_or(usize::MAX),
                "x-amz-target" => target = value.to_string(),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                "transfer-encoding" => chunked = true,
                _ => {}
            }
        }
        let response = if chunked || content_length > MAX_BODY {
            close = true;
            Response {
                status: 400,
                body: error_body(
                    "ValidationException",
                    "send a Content-Length body of at most 16 MiB",
                ),
            }
        } else {
            let mut body = vec![0u8; content_length];
            if reader.read_exact(&mut body).await.is_err() {
                return;
            }
            handle(Request { target, body }).await
        };
        counter += 1;
        let reason = if response.status == 200 {
            "OK"
        } else {
            "Bad Request"
        };
        let head = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\
             x-amzn-RequestId: standin-{counter}\r\n{}\r\n",
            response.status,
            response.body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        if write.write_all(head.as_bytes()).await.is_err()
            || write.write_all(response.body.as_bytes()).await.is_err()
        {
            return;
        }
        if close {
            return;
        }
    }
}

/// An AWS JSON error body: `{"__type": code, "Message": message}`.
pub(crate) fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({ "__type": code, "Message": message }).to_string()
}
