//! moto_server: the S3, Glue, DynamoDB and Athena stand-in (`.tools/venv/bin/moto_server`).

use std::time::Duration;

use tokio::sync::{Mutex, MutexGuard, OnceCell};

use crate::process::{self, ServerProcess, ServerSpec, StopSignal};
use crate::{http, StandIn, TestbedError};

const STAND_IN: StandIn = StandIn::Moto;
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The account moto assigns to requests signed with the test credentials.
pub const MOTO_ACCOUNT_ID: &str = "123456789012";

/// A running moto_server on 127.0.0.1 (state in memory, shared by all tests of the process).
///
/// S3 (path-style; `If-None-Match: *` answers 412 as on AWS), Glue catalog (databases, tables,
/// versions, partitions), DynamoDB (conditional writes) and Athena (no SQL: results are canned,
/// see [`Moto::queue_athena_results`]). Not for Kinesis nor the Redshift Data API.
#[derive(Debug)]
pub struct Moto {
    endpoint: String,
    port: u16,
    server: ServerProcess,
    athena: Mutex<()>,
}

static MOTO: OnceCell<Result<Moto, TestbedError>> = OnceCell::const_new();

/// The process's moto_server, started on first use.
pub async fn moto() -> Result<&'static Moto, TestbedError> {
    MOTO.get_or_init(start).await.as_ref().map_err(Clone::clone)
}

impl Moto {
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

    /// All SDK clients pointed at this server (`.s3()`, `.glue()`, `.dynamodb()`, `.athena()`).
    pub async fn clients(&self) -> Result<etl_aws::AwsClients, TestbedError> {
        crate::aws_clients_for(STAND_IN, &self.endpoint).await
    }

    /// Serialises the tests that use Athena: canned results and state transitions are global to
    /// the server, so a test that queues results holds this guard until it has read them.
    pub async fn athena_lock(&self) -> MutexGuard<'_, ()> {
        self.athena.lock().await
    }

    /// Queues canned Athena results for `region` (of [`MOTO_ACCOUNT_ID`]). Each query execution
    /// that asks for results takes the next one, in order, and keeps it. `results` is a JSON
    /// array of `{"rows": [{"Data": [{"VarCharValue": "1"}]}], "column_info": [{"Name": …,
    /// "Type": …}]}` objects, as in moto's `/moto-api/static/athena/query-results`.
    pub async fn queue_athena_results(
        &self,
        region: &str,
        results: serde_json::Value,
    ) -> Result<(), TestbedError> {
        let body = serde_json::json!({
            "account_id": MOTO_ACCOUNT_ID,
            "region": region,
            "results": results,
        });
        self.post_control("/moto-api/static/athena/query-results", &body)
            .await
    }

    /// Sets how a moto model advances through its states, e.g. `athena::execution` with
    /// `{"progression": "manual", "times": 2}` (each state is reported twice before the next) or
    /// `{"progression": "immediate"}`. Global to the server: hold [`Moto::athena_lock`].
    pub async fn set_state_transition(
        &self,
        model_name: &str,
        transition: serde_json::Value,
    ) -> Result<(), TestbedError> {
        let body = serde_json::json!({ "model_name": model_name, "transition": transition });
        self.post_control("/moto-api/state-manager/set-transition", &body)
            .await
    }

    /// The server's log so far (its last 4 KiB).
    pub fn log_tail(&self) -> String {
        self.server.log_tail()
    }

    /// The server process (pid, temp directory, log).
    pub fn server(&self) -> &ServerProcess {
        &self.server
    }

    async fn post_control(&self, path: &str, body: &serde_json::Value) -> Result<(), TestbedError> {
        let response = http::request(self.port, "POST", path, Some(&body.to_string()))
            .await
            .map_err(|e| TestbedError::call(STAND_IN, format!("POST {path}"), e))?;
        if !(200..300).contains(&response.status) {
            return Err(TestbedError::call(
                STAND_IN,
                format!("POST {path}"),
                format!("HTTP {}: {}", response.status, response.body),
            ));
        }
        Ok(())
    }
}

async fn start() -> Result<Moto, TestbedError> {
    let program = crate::repo_root()
        .join(".tools")
        .join("venv")
        .join("bin")
        .join("moto_server");
    if !crate::is_executable(&program) {
        return Err(TestbedError::not_installed(
            STAND_IN,
            "moto_server",
            &program,
        ));
    }
    match start_once(&program).await {
        Err(e) if process::port_was_taken(&e) => {
            tracing::warn!("moto_server lost the race for its port; trying another");
            start_once(&program).await
        }
        other => other,
    }
}

async fn start_once(program: &std::path::Path) -> Result<Moto, TestbedError> {
    let port = process::free_port(STAND_IN)?;
    let dir = process::server_dir(STAND_IN, "moto")?;
    let server = process::spawn_server(ServerSpec {
        stand_in: STAND_IN,
        program: program.to_path_buf(),
        args: vec![
            "-H".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string().into(),
        ],
        envs: vec![],
        // Let Python cache its bytecode: moto imports a lot, and the cache halves start-up.
        env_remove: vec!["PYTHONDONTWRITEBYTECODE".into(), "MOTO_ACCOUNT_ID".into()],
        stop_signal: StopSignal::Term,
        dir,
    })?;
    server
        .wait_until("answer on its control API", START_TIMEOUT, || async move {
            let response = http::request(port, "GET", "/moto-api/data.json", None).await?;
            if response.status == 200 {
                Ok(())
            } else {
                Err(format!("HTTP {}", response.status))
            }
        })
        .await?;
    let endpoint = format!("http://127.0.0.1:{port}");
    tracing::info!(%endpoint, "moto_server ready");
    Ok(Moto {
        endpoint,
        port,
        server,
        athena: Mutex::new(()),
    })
}
