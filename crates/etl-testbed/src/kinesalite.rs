//! kinesalite: the Kinesis Data Streams stand-in (`tools/kinesalite/server.js`).

use std::time::Duration;

use tokio::sync::OnceCell;

use crate::process::{self, ServerProcess, ServerSpec, StopSignal};
use crate::{StandIn, TestbedError};

const STAND_IN: StandIn = StandIn::Kinesalite;
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running kinesalite on 127.0.0.1 (in memory, shard limit 10 000, 50 ms stream transitions).
///
/// Supports streams by `stream_name` (not `stream_arn`: kinesalite predates ARNs), put/get,
/// split/merge, 5-minute iterator expiry; no enhanced fan-out, no throttling.
#[derive(Debug)]
pub struct Kinesalite {
    endpoint: String,
    port: u16,
    server: ServerProcess,
}

static KINESALITE: OnceCell<Result<Kinesalite, TestbedError>> = OnceCell::const_new();

/// The process's kinesalite, started on first use.
pub async fn kinesis() -> Result<&'static Kinesalite, TestbedError> {
    KINESALITE
        .get_or_init(start)
        .await
        .as_ref()
        .map_err(Clone::clone)
}

impl Kinesalite {
    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Settings pointing the production factory at this server.
    pub fn settings(&self) -> etl_aws::AwsSettings {
        crate::settings_for(&self.endpoint)
    }

    /// All SDK clients pointed at this server (use `.kinesis()`).
    pub async fn clients(&self) -> Result<etl_aws::AwsClients, TestbedError> {
        crate::aws_clients_for(STAND_IN, &self.endpoint).await
    }

    /// A Kinesis client for this server.
    pub async fn client(&self) -> Result<etl_aws::kinesis::Client, TestbedError> {
        Ok(self.clients().await?.kinesis())
    }

    /// The server's log so far (its last 4 KiB).
    pub fn log_tail(&self) -> String {
        self.server.log_tail()
    }

    /// The server process (pid, temp directory, log).
    pub fn server(&self) -> &ServerProcess {
        &self.server
    }
}

async fn start() -> Result<Kinesalite, TestbedError> {
    let root = crate::repo_root();
    let tool_dir = root.join("tools").join("kinesalite");
    let script = tool_dir.join("server.js");
    let package = tool_dir
        .join("node_modules")
        .join("kinesalite")
        .join("package.json");
    if !script.is_file() {
        return Err(TestbedError::not_installed(
            STAND_IN,
            "the wrapper server.js",
            &script,
        ));
    }
    if !package.is_file() {
        return Err(TestbedError::not_installed(
            STAND_IN,
            "the npm package kinesalite",
            &package,
        ));
    }
    let node = crate::find_on_path("node").ok_or_else(|| {
        TestbedError::not_installed(STAND_IN, "node (Node.js)", std::path::Path::new("$PATH"))
    })?;

    let dir = process::server_dir(STAND_IN, "kinesalite")?;
    // Port 0: the wrapper binds a free port itself and logs it, so there is no race for it.
    let server = process::spawn_server(ServerSpec {
        stand_in: STAND_IN,
        program: node,
        args: vec![
            script.into_os_string(),
            "--port".into(),
            "0".into(),
            "--shard-limit".into(),
            "10000".into(),
            "--stream-ms".into(),
            "50".into(),
        ],
        envs: vec![],
        env_remove: vec![],
        stop_signal: StopSignal::Term,
        dir,
    })?;
    let log = server.log_path();
    let port = server
        .wait_until("listening line in its log", START_TIMEOUT, || {
            let log = log.clone();
            async move {
                let text =
                    std::fs::read_to_string(&log).map_err(|e| format!("reading log: {e}"))?;
                text.lines()
                    .find_map(|line| line.strip_prefix("listening 127.0.0.1:"))
                    .and_then(|p| p.trim().parse::<u16>().ok())
                    .ok_or_else(|| "not listening yet".to_owned())
            }
        })
        .await?;
    let endpoint = format!("http://127.0.0.1:{port}");

    // The socket is bound; make sure it answers a real SDK call before handing it out.
    let client = crate::aws_clients_for(STAND_IN, &endpoint).await?.kinesis();
    server
        .wait_until("answer to ListStreams", START_TIMEOUT, || {
            let client = client.clone();
            async move {
                client
                    .list_streams()
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| etl_aws::describe_error(&e))
            }
        })
        .await?;
    tracing::info!(%endpoint, "kinesalite ready");
    Ok(Kinesalite {
        endpoint,
        port,
        server,
    })
}
