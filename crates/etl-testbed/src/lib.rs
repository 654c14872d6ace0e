//! Test bed: real stand-in servers for every AWS-facing test, on 127.0.0.1 only.
//!
//! **What it does.** Starts, once per test process and only when a test asks, each stand-in
//! server on a free loopback port with its own temp directory, waits until it answers, and hands
//! out AWS SDK clients built by the production factory [`etl_aws`] (endpoint override, static
//! test credentials, fixed region, path-style S3, no IMDS/STS lookups). The servers stop, and
//! their temp directories go, when the test process ends for any reason (see [`process`]).
//!
//! | stand-in | for | entry point |
//! | --- | --- | --- |
//! | kinesalite (Node, in memory) | Kinesis Data Streams | [`kinesis()`] |
//! | moto_server | S3, Glue, DynamoDB, Athena | [`moto()`] |
//! | PostgreSQL 15 | Redshift SQL | [`postgres()`] |
//! | (later issue) | Redshift Data API | [`StandIn::RedshiftData`], see below |
//!
//! Fault injection: [`FaultProxy`] (throttling, 5xx, dropped connections in front of a stand-in)
//! and [`Kinesalite::start_with_fake_clock`] (a kinesalite whose clock a test moves, to expire
//! shard iterators).
//!
//! **What it does not do.** It installs nothing: `scripts/setup-test-env` does (the README's
//! test command `scripts/test` runs it first). A stand-in that is missing or cannot start makes
//! the test that asked for it fail with a [`TestbedError`] naming the stand-in, the reason and
//! the fix — it never skips. It never reads or writes process-wide environment variables for the
//! tests; children get their environment through `Command::env`.
//!
//! **Isolation.** All tests of a process share the servers, so each test names its resources
//! uniquely: [`unique_name`] (streams, buckets) and [`unique_ident`] (Glue databases, SQL
//! schemas), [`Postgres::fresh_schema`] / [`Postgres::fresh_database`] for SQL.
//!
//! ```no_run
//! # async fn demo() -> Result<(), etl_testbed::TestbedError> {
//! let moto = etl_testbed::moto().await?;
//! let s3 = moto.clients().await?.s3();
//! let bucket = etl_testbed::unique_name("smoke");
//! s3.create_bucket().bucket(&bucket).send().await.expect("create bucket");
//! # Ok(()) }
//! ```
//!
//! Build SDK clients inside each test (as above), never in a `static`: each `#[tokio::test]` has
//! its own runtime and the HTTP connection pool belongs to the runtime that first used it.
//!
//! # Hook for the Redshift Data API stand-in
//!
//! A later crate provides a Redshift Data API server over [`postgres()`]. It plugs in with what
//! is public here: [`StandIn::RedshiftData`] names it in errors; [`process::server_dir`] +
//! [`process::spawn_server`] start it under the same reaper (or it serves in-process on a
//! `127.0.0.1:0` listener); [`aws_clients_for`] builds the SDK clients (`.redshift_data()`)
//! pointed at it; it should expose its own `redshift_data()` entry point following the
//! `OnceCell` pattern of [`moto()`].

pub mod fault_proxy;
mod http;
mod kinesalite;
mod moto;
mod names;
mod postgres;
pub mod process;

use std::path::{Path, PathBuf};

pub use fault_proxy::{FaultPlan, FaultProxy, FaultStats};
pub use kinesalite::{create_stream, kinesis, wait_active, FakeClock, Kinesalite};
pub use moto::{moto, Moto, MOTO_ACCOUNT_ID};
pub use names::{unique_ident, unique_name};
pub use postgres::{postgres, private_postgres, PgDatabase, PgSchema, Postgres};

/// Region of every test client.
pub const TEST_REGION: &str = "us-east-1";

/// The command that installs every stand-in (printed in "not installed" errors).
pub const SETUP_COMMAND: &str = "scripts/setup-test-env";

/// The stand-in servers of the test bed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StandIn {
    /// kinesalite, for Kinesis Data Streams.
    Kinesalite,
    /// moto_server, for S3, Glue, DynamoDB and Athena.
    Moto,
    /// PostgreSQL 15, for Redshift SQL.
    Postgres,
    /// The Redshift Data API stand-in over PostgreSQL, provided by a later crate (see the crate
    /// doc, "Hook for the Redshift Data API stand-in").
    RedshiftData,
}

impl std::fmt::Display for StandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StandIn::Kinesalite => "kinesalite (Kinesis stand-in)",
            StandIn::Moto => "moto_server (S3/Glue/DynamoDB/Athena stand-in)",
            StandIn::Postgres => "PostgreSQL 15 (Redshift SQL stand-in)",
            StandIn::RedshiftData => "Redshift Data API stand-in",
        })
    }
}

/// Why the test bed could not provide what a test asked for. `Clone`, because a stand-in that
/// failed to start is reported to every test that asks for it, without a second attempt.
#[derive(Clone, Debug, thiserror::Error)]
pub enum TestbedError {
    /// A program or package the stand-in needs is not installed.
    #[error("{stand_in} cannot start: {what} not found at {path}: run {SETUP_COMMAND} (the README's test command scripts/test runs it)")]
    NotInstalled {
        /// Which stand-in.
        stand_in: StandIn,
        /// What is missing, e.g. `moto_server`.
        what: String,
        /// Where it was looked for.
        path: String,
    },
    /// The server was started but did not come up.
    #[error("{stand_in} failed to start: {reason}\n--- last lines of its log ---\n{log_tail}")]
    StartFailed {
        /// Which stand-in.
        stand_in: StandIn,
        /// What went wrong.
        reason: String,
        /// End of the server's log.
        log_tail: String,
    },
    /// A call to a running stand-in failed (client setup, a control API, SQL set-up).
    #[error("{stand_in}: {context}: {message}")]
    Call {
        /// Which stand-in.
        stand_in: StandIn,
        /// What the test bed was doing.
        context: String,
        /// The underlying error.
        message: String,
    },
}

impl TestbedError {
    pub(crate) fn start(stand_in: StandIn, reason: impl Into<String>, log_tail: String) -> Self {
        TestbedError::StartFailed {
            stand_in,
            reason: reason.into(),
            log_tail,
        }
    }

    pub(crate) fn call(
        stand_in: StandIn,
        context: impl Into<String>,
        message: impl std::fmt::Display,
    ) -> Self {
        TestbedError::Call {
            stand_in,
            context: context.into(),
            message: message.to_string(),
        }
    }

    pub(crate) fn not_installed(stand_in: StandIn, what: &str, path: &Path) -> Self {
        TestbedError::NotInstalled {
            stand_in,
            what: what.to_owned(),
            path: path.display().to_string(),
        }
    }
}

/// [`etl_aws::AwsSettings`] of a stand-in at `endpoint_url`: static test credentials,
/// [`TEST_REGION`], path-style S3.
pub fn settings_for(endpoint_url: &str) -> etl_aws::AwsSettings {
    etl_aws::AwsSettings::local(endpoint_url, TEST_REGION)
}

/// SDK clients for a stand-in at `endpoint_url` (see [`settings_for`]), built by the production
/// factory.
pub async fn aws_clients_for(
    stand_in: StandIn,
    endpoint_url: &str,
) -> Result<etl_aws::AwsClients, TestbedError> {
    etl_aws::AwsClients::load(&settings_for(endpoint_url))
        .await
        .map_err(|e| TestbedError::call(stand_in, "building AWS clients", e))
}

/// Root of the workspace (the folder whose `Cargo.toml` has `[workspace]`), found from this
/// crate's compile-time manifest directory; `.tools/` and `tools/` live there.
pub fn repo_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .is_ok_and(|text| text.contains("[workspace]"))
        })
        .unwrap_or(manifest_dir)
        .to_path_buf()
}

/// Finds `program` in the directories of `PATH` (read, never written).
pub(crate) fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
