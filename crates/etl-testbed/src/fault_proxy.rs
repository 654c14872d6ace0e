//! A fault-injecting HTTP/1.1 proxy on 127.0.0.1, for the failures the stand-ins never produce.
//!
//! kinesalite never throttles and never fails with a 5xx, so the Kinesis consumer's error paths
//! would go untested. [`FaultProxy`] sits between an SDK client and a stand-in (any upstream on
//! loopback) and, following a [`FaultPlan`], answers some requests itself instead of forwarding
//! them:
//! - **throttling**: HTTP 400, `x-amzn-ErrorType: ProvisionedThroughputExceededException`, body
//!   `{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded"}` (what
//!   Kinesis sends);
//! - **server error**: HTTP 500, `InternalFailure`;
//! - **dropped connection**: the connection closes without an answer (a transport error).
//!
//! Faults are only ever injected *instead of* forwarding, never after the upstream saw the
//! request, so an injected failure has no side effect upstream (as with a real throttled call).
//! Which requests are candidates is chosen by the `X-Amz-Target` operation (e.g. `GetRecords`).
//! Fractions are drawn from a seeded generator, so a run is repeatable for the same request order.
//! The proxy also counts what the upstream itself answered with an error (by `__type`), which
//! shows e.g. how many `ExpiredIteratorException`s a consumer met.
//!
//! One request per connection: every answer carries `Connection: close`, so clients never reuse a
//! connection the proxy is about to close. The proxy runs on the tokio runtime that started it and
//! stops when dropped.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::{StandIn, TestbedError};

/// Longest request head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Time allowed for one exchange (request in, answer out).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Which requests fail and how. Fractions are in `0.0..=1.0`; a candidate request is tested for
/// throttling first, then a server error, then a dropped connection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    /// Only requests of this operation (`X-Amz-Target` after the dot, e.g. `GetRecords`) are
    /// candidates; `None`: every request.
    pub operation: Option<String>,
    /// The first N candidates are throttled.
    pub throttle_first: u64,
    /// After those, this fraction of candidates is throttled.
    pub throttle_fraction: f64,
    /// This fraction of candidates gets HTTP 500 `InternalFailure`.
    pub server_error_fraction: f64,
    /// This fraction of candidates has its connection closed without an answer.
    pub drop_fraction: f64,
    /// Seed of the fraction draws.
    pub seed: u64,
}

/// What the proxy did so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Requests received.
    pub requests: u64,
    /// Requests that were fault candidates (matching [`FaultPlan::operation`]).
    pub candidates: u64,
    /// Requests forwarded to the upstream.
    pub forwarded: u64,
    /// Answered with `ProvisionedThroughputExceededException`.
    pub throttled: u64,
    /// Answered with HTTP 500.
    pub server_errors: u64,
    /// Closed without an answer.
    pub dropped: u64,
    /// Error answers of the upstream itself, by `__type` (e.g. `ExpiredIteratorException`).
    pub upstream_errors: BTreeMap<String, u64>,
    /// Requests by who signed them: `<access key id>/<service>` of the SigV4 `Authorization`
    /// header (e.g. `AKIAEXAMPLE/s3`), or `unsigned` (e.g. STS `AssumeRoleWithWebIdentity`).
    /// Shows which credentials a client really used.
    pub signers: BTreeMap<String, u64>,
}

struct State {
    plan: FaultPlan,
    stats: FaultStats,
    rng: u64,
}

impl State {
    /// A uniform draw in `[0, 1)` (xorshift64*).
    fn draw(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Forward,
    Throttle,
    ServerError,
    Drop,
}

/// A running fault proxy (see the module doc). Stops when dropped.
pub struct FaultProxy {
    port: u16,
    endpoint: String,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port forwarding to `127.0.0.1:upstream_port`.
    pub async fn start(upstream_port: u16, plan: FaultPlan) -> Result<FaultProxy, TestbedError> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| TestbedError::call(StandIn::Kinesalite, "fault proxy: bind", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| TestbedError::call(StandIn::Kinesalite, "fault proxy: address", e))?
            .port();
        let seed = plan.seed | 1;
        let state = Arc::new(Mutex::new(State {
            plan,
            stats: FaultStats::default(),
            rng: seed,
        }));
        let task = tokio::spawn(accept_loop(listener, upstream_port, state.clone()));
        Ok(FaultProxy {
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            state,
            task,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Replaces the plan (counters and the random sequence go on).
    pub fn set_plan(&self, plan: FaultPlan) {
        lock(&self.state).plan = plan;
    }

    /// Counters so far.
    pub fn stats(&self) -> FaultStats {
        lock(&self.state).stats.clone()
    }

    /// SDK clients pointed at the proxy (built by the production factory; use `.kinesis()`).
    pub async fn clients(&self) -> Result<etl_aws::AwsClients, TestbedError> {
        crate::aws_clients_for(StandIn::Kinesalite, &self.endpoint).await
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

async fn accept_loop(listener: TcpListener, upstream_port: u16, state: Arc<Mutex<State>>) {
    loop {
        let (client, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "fault proxy: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let exchange = handle(client, upstream_port, &state);
            match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "fault proxy: exchange failed"),
                Err(_) => tracing::warn!("fault proxy: exchange timed out"),
            }
        });
    }
}

/// A parsed request head.
struct Request {
    /// Head lines without the final empty line, `Connection` headers removed.
    lines: Vec<String>,
    operation: Option<String>,
    /// `<access key id>/<service>` of the SigV4 signature, `unsigned` without one.
    signer: String,
    content_length: usize,
    /// Body bytes already read with the head.
    body: Vec<u8>,
}

async fn read_request(client: &mut TcpStream) -> Result<Option<Request>, String> {
    let mut buf = Vec::with_capacity(4096);
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err("request head too long".into());
        }
        let mut chunk = [0u8; 8192];
        let n = client
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err("connection closed inside a request head".into())
            };
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = Vec::new();
    let mut operation = None;
    let mut signer = "unsigned".to_string();
    let mut content_length = 0;
    for (i, line) in head.split("\r\n").enumerate() {
        if i > 0 {
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim();
            match name.as_str() {
                "connection" | "keep-alive" => continue,
                "content-length" => {
                    content_length = value
                        .parse()
                        .map_err(|_| format!("bad Content-Length {value:?}"))?;
                }
                "transfer-encoding" => {
                    return Err("chunked request bodies are not supported".into());
                }
                "x-amz-target" => {
                    operation = value.rsplit('.').next().map(str::to_string);
                }
                "authorization" => signer = sigv4_signer(value),
                _ => {}
            }
        }
        lines.push(line.to_string());
    }
    Ok(Some(Request {
        lines,
        operation,
        signer,
        content_length,
        body: buf[head_end + 4..].to_vec(),
    }))
}

async fn handle(
    mut client: TcpStream,
    upstream_port: u16,
    state: &Mutex<State>,
) -> Result<(), String> {
    let Some(mut request) = read_request(&mut client).await? else {
        return Ok(());
    };
    while request.body.len() < request.content_length {
        let mut chunk = vec![0u8; (request.content_length - request.body.len()).min(65536)];
        let n = client
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read body: {e}"))?;
        if n == 0 {
            return Err("connection closed inside a request body".into());
        }
        request.body.extend_from_slice(&chunk[..n]);
    }
    *lock(state)
        .stats
        .signers
        .entry(request.signer.clone())
        .or_default() += 1;
    let action = decide(state, request.operation.as_deref());
    match action {
        Action::Drop => return Ok(()),
        Action::Throttle => {
            let body =
                r#"{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded"}"#;
            return answer(
                &mut client,
                "400 Bad Request",
                "ProvisionedThroughputExceededException",
                body,
            )
            .await;
        }
        Action::ServerError => {
            let body = r#"{"__type":"InternalFailure","message":"injected by the test bed's fault proxy"}"#;
            return answer(
                &mut client,
                "500 Internal Server Error",
                "InternalFailure",
                body,
            )
            .await;
        }
        Action::Forward => {}
    }
    let mut upstream = TcpStream::connect(("127.0.0.1", upstream_port))
        .await
        .map_err(|e| format!("connect upstream: {e}"))?;
    let mut head = request.lines.join("\r\n");
    head.push_str("\r\nConnection: close\r\n\r\n");
    upstream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| format!("write upstream: {e}"))?;
    upstream
        .write_all(&request.body)
        .await
        .map_err(|e| format!("write upstream: {e}"))?;
    let mut response = Vec::new();
    upstream
        .read_to_end(&mut response)
        .await
        .map_err(|e| format!("read upstream: {e}"))?;
    if let Some(kind) = upstream_error_type(&response) {
        *lock(state).stats.upstream_errors.entry(kind).or_default() += 1;
    }
    reply(&mut client, &response).await
}

fn decide(state: &Mutex<State>, operation: Option<&str>) -> Action {
    let mut s = lock(state);
    s.stats.requests += 1;
    let candidate = match &s.plan.operation {
        Some(op) => operation == Some(op.as_str()),
        None => true,
    };
    let action = if !candidate {
        Action::Forward
    } else {
        s.stats.candidates += 1;
        let n = s.stats.candidates;
        let (first, throttle, server, drop) = (
            s.plan.throttle_first,
            s.plan.throttle_fraction,
            s.plan.server_error_fraction,
            s.plan.drop_fraction,
        );
        if n <= first || s.draw() < throttle {
            Action::Throttle
        } else if s.draw() < server {
            Action::ServerError
        } else if s.draw() < drop {
            Action::Drop
        } else {
            Action::Forward
        }
    };
    match action {
        Action::Forward => s.stats.forwarded += 1,
        Action::Throttle => s.stats.throttled += 1,
        Action::ServerError => s.stats.server_errors += 1,
        Action::Drop => s.stats.dropped += 1,
    }
    action
}

async fn answer(
    client: &mut TcpStream,
    status: &str,
    error_type: &str,
    body: &str,
) -> Result<(), String> {
    let text = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.1\r\n\
         x-amzn-ErrorType: {error_type}\r\nx-amzn-RequestId: fault-proxy\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    reply(client, text.as_bytes()).await
}

/// Sends `bytes` to the client and closes the connection.
async fn reply(client: &mut TcpStream, bytes: &[u8]) -> Result<(), String> {
    client
        .write_all(bytes)
        .await
        .map_err(|e| format!("write client: {e}"))?;
    client
        .shutdown()
        .await
        .map_err(|e| format!("close client: {e}"))
}

/// The `__type` of an upstream error answer (status 4xx/5xx), without its namespace prefix.
fn upstream_error_type(response: &[u8]) -> Option<String> {
    let status: u16 = std::str::from_utf8(response.get(9..12)?)
        .ok()?
        .parse()
        .ok()?;
    if status < 400 {
        return None;
    }
    let at = find(response, b"\"__type\"")?;
    let rest = std::str::from_utf8(&response[at + 8..]).ok()?;
    let value = rest
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    let kind = &value[..value.find('"')?];
    Some(kind.rsplit('#').next().unwrap_or(kind).to_string())
}

/// `AKID/service` from `AWS4-HMAC-SHA256 Credential=AKID/date/region/service/aws4_request, …`.
fn sigv4_signer(authorization: &str) -> String {
    let scope = authorization
        .split_once("Credential=")
        .map(|(_, rest)| rest.split([',', ' ']).next().unwrap_or(""))
        .unwrap_or("");
    let parts: Vec<&str> = scope.split('/').collect();
    match parts.as_slice() {
        [key, _date, _region, service, ..] => format!("{key}/{service}"),
        _ => format!("unparsed: {authorization:.40}"),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
