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

impl Kinesalite {
    /// Starts a kinesalite of the caller's own (not the shared one) whose wall clock is the real
    /// one plus an offset the test moves with [`FakeClock::advance`]: kinesalite expires shard
    /// iterators 5 minutes after it issued them, so advancing by 6 minutes expires every iterator
    /// handed out so far, in no time.
    ///
    /// Runs the server under libfaketime (the Debian package `faketime`, installed by
    /// `scripts/setup-test-env`): `LD_PRELOAD` of `libfaketimeMT.so.1`, the offset read from a file
    /// on every clock call, monotonic clocks (Node's timers) left real. The server lives until the
    /// test process ends.
    pub async fn start_with_fake_clock() -> Result<(Kinesalite, FakeClock), TestbedError> {
        let library = FAKETIME_LIBRARIES
            .iter()
            .map(std::path::Path::new)
            .find(|p| p.is_file())
            .ok_or_else(|| {
                TestbedError::not_installed(
                    STAND_IN,
                    "libfaketimeMT.so.1 (Debian package faketime)",
                    std::path::Path::new(FAKETIME_LIBRARIES[0]),
                )
            })?;
        let dir = process::server_dir(STAND_IN, "kinesalite-faketime")?;
        let file = dir.join("faketime.offset");
        let clock = FakeClock {
            file,
            offset: std::sync::Mutex::new(Duration::ZERO),
        };
        clock.write(Duration::ZERO)?;
        let envs = vec![
            ("LD_PRELOAD".into(), library.as_os_str().to_owned()),
            (
                "FAKETIME_TIMESTAMP_FILE".into(),
                clock.file.as_os_str().to_owned(),
            ),
            ("FAKETIME_NO_CACHE".into(), "1".into()),
            ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
        ];
        let server = start_in(dir, envs).await?;
        Ok((server, clock))
    }
}

/// Where Debian puts libfaketime's multi-threaded variant.
const FAKETIME_LIBRARIES: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/faketime/libfaketimeMT.so.1",
];

/// The clock of a kinesalite started by [`Kinesalite::start_with_fake_clock`]: real time plus an
/// offset that only grows.
#[derive(Debug)]
pub struct FakeClock {
    file: std::path::PathBuf,
    offset: std::sync::Mutex<Duration>,
}

impl FakeClock {
    /// Moves the server's clock forward by `by` (whole seconds; the offset adds up).
    pub fn advance(&self, by: Duration) -> Result<(), TestbedError> {
        let mut offset = self.offset.lock().unwrap_or_else(|p| p.into_inner());
        let next = *offset + by;
        self.write(next)?;
        *offset = next;
        Ok(())
    }

    /// The offset so far.
    pub fn offset(&self) -> Duration {
        *self.offset.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self, offset: Duration) -> Result<(), TestbedError> {
        // Written whole then renamed: the server reads the file on every clock call.
        let tmp = self.file.with_extension("tmp");
        std::fs::write(&tmp, format!("+{}\n", offset.as_secs()))
            .and_then(|()| std::fs::rename(&tmp, &self.file))
            .map_err(|e| {
                TestbedError::call(STAND_IN, format!("writing {}", self.file.display()), e)
            })
    }
}

async fn start() -> Result<Kinesalite, TestbedError> {
    let dir = process::server_dir(STAND_IN, "kinesalite")?;
    start_in(dir, vec![]).await
}

async fn start_in(
    dir: std::path::PathBuf,
    envs: Vec<(std::ffi::OsString, std::ffi::OsString)>,
) -> Result<Kinesalite, TestbedError> {
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
        envs,
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

/// Waits until stream `name` is `ACTIVE` (kinesalite's transitions take about 50 ms).
pub async fn wait_active(
    client: &etl_aws::kinesis::Client,
    name: &str,
) -> Result<(), TestbedError> {
    for _ in 0..400 {
        let summary = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .map_err(|e| {
                TestbedError::call(
                    STAND_IN,
                    "DescribeStreamSummary",
                    etl_aws::describe_error(&e),
                )
            })?;
        if summary
            .stream_description_summary()
            .is_some_and(|d| d.stream_status().as_str() == "ACTIVE")
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(TestbedError::call(
        STAND_IN,
        "waiting for the stream",
        format!("stream {name} never became ACTIVE"),
    ))
}

/// Creates stream `name` with `shards` shards and waits until it is `ACTIVE`.
pub async fn create_stream(
    client: &etl_aws::kinesis::Client,
    name: &str,
    shards: i32,
) -> Result<(), TestbedError> {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .map_err(|e| TestbedError::call(STAND_IN, "CreateStream", etl_aws::describe_error(&e)))?;
    wait_active(client, name).await
}
