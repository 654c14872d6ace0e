//! PostgreSQL 15: the Redshift SQL stand-in (Debian binaries in `/usr/lib/postgresql/15/bin`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio_postgres::{Client, NoTls};

use crate::process::{self, ServerProcess, ServerSpec, StopSignal};
use crate::{StandIn, TestbedError};

const STAND_IN: StandIn = StandIn::Postgres;
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// Where Debian's `postgresql-15` package puts the server binaries.
pub const POSTGRES_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// Runs as the server's user: initialises the cluster, then becomes the postmaster.
/// Arguments: `<bin dir> <temp dir> <port>`.
const SERVER_SCRIPT: &str = r#"
set -e
bin=$1; dir=$2; port=$3
"$bin/initdb" --no-sync --no-instructions -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C
mkdir -p "$dir/sock"
exec "$bin/postgres" -D "$dir/data" -p "$port" -k "$dir/sock" \
  -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
  -c full_page_writes=off -c max_connections=300 -c log_min_messages=warning
"#;

/// Like [`SERVER_SCRIPT`], but the shell stays the parent of the postmaster and starts it again
/// whenever it exits, unless the file `<dir>/paused` exists (then it waits for the file to go).
/// [`Postgres::stop`] / [`Postgres::start_again`] use it to take the server away for a while.
const RESTARTABLE_SCRIPT: &str = r#"
set -e
bin=$1; dir=$2; port=$3
"$bin/initdb" --no-sync --no-instructions -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C
mkdir -p "$dir/sock"
pg=
trap 'if [ -n "$pg" ]; then kill -INT "$pg" 2>/dev/null; wait "$pg"; fi; exit 0' INT TERM
while :; do
  if [ -e "$dir/paused" ]; then sleep 0.1; continue; fi
  "$bin/postgres" -D "$dir/data" -p "$port" -k "$dir/sock" \
    -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
    -c full_page_writes=off -c max_connections=300 -c log_min_messages=warning &
  pg=$!
  wait "$pg" || true
  pg=
done
"#;

/// A running PostgreSQL 15 on 127.0.0.1: superuser `postgres`, trust authentication,
/// `fsync=off`. MERGE and binary COPY work.
#[derive(Debug)]
pub struct Postgres {
    port: u16,
    server: ServerProcess,
    restartable: bool,
}

/// A fresh database of its own, with a connected superuser client.
pub struct PgDatabase {
    /// Database name (see [`crate::unique_ident`]).
    pub name: String,
    /// Connection string for more clients (`host=127.0.0.1 port=… user=postgres dbname=…`).
    pub connection_string: String,
    /// A connected client; its connection task runs on the test's runtime.
    pub client: Client,
}

/// A fresh schema of its own in database `postgres`, with a client whose `search_path` is it.
pub struct PgSchema {
    /// Schema name (see [`crate::unique_ident`]).
    pub name: String,
    /// Connection string for more clients (they must set `search_path` themselves).
    pub connection_string: String,
    /// A connected client with `search_path` set to the schema.
    pub client: Client,
}

static POSTGRES: OnceCell<Result<Postgres, TestbedError>> = OnceCell::const_new();

/// The process's PostgreSQL, started on first use.
pub async fn postgres() -> Result<&'static Postgres, TestbedError> {
    POSTGRES
        .get_or_init(start)
        .await
        .as_ref()
        .map_err(Clone::clone)
}

/// A PostgreSQL of the caller's own (not the shared one of [`postgres`]) that can be stopped
/// and started again ([`Postgres::stop`], [`Postgres::start_again`]) without disturbing other
/// tests. It runs until the test process ends.
pub async fn private_postgres() -> Result<Postgres, TestbedError> {
    let bin = installed_bin()?;
    start_once(bin, RESTARTABLE_SCRIPT, true).await
}

impl Postgres {
    /// Stops the server (fast shutdown: sessions are ended, new connections are refused) and
    /// keeps it stopped until [`Postgres::start_again`]. Only for [`private_postgres`].
    pub async fn stop(&self) -> Result<(), TestbedError> {
        let fail = |what: String| TestbedError::start(STAND_IN, what, self.log_tail());
        if !self.restartable {
            return Err(fail("only a private_postgres() can be stopped".into()));
        }
        let dir = self.server.dir();
        std::fs::write(dir.join("paused"), b"")
            .map_err(|e| fail(format!("cannot write {}/paused: {e}", dir.display())))?;
        let pid_file = dir.join("data/postmaster.pid");
        let pid: libc::pid_t = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()))
            .ok_or_else(|| fail(format!("no pid in {}", pid_file.display())))?;
        // SAFETY: kill with a pid read from the server's own pid file and a plain signal.
        unsafe {
            libc::kill(pid, libc::SIGINT);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        // SAFETY: signal 0 only checks whether the process exists.
        while unsafe { libc::kill(pid, 0) } == 0 {
            if std::time::Instant::now() >= deadline {
                return Err(fail(format!("postmaster {pid} did not stop within 30 s")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::info!(port = self.port, "private postgres stopped");
        Ok(())
    }

    /// Starts a server stopped by [`Postgres::stop`] again and waits until it answers.
    pub async fn start_again(&self) -> Result<(), TestbedError> {
        let dir = self.server.dir();
        std::fs::remove_file(dir.join("paused")).map_err(|e| {
            TestbedError::start(
                STAND_IN,
                format!("cannot remove {}/paused: {e}", dir.display()),
                self.log_tail(),
            )
        })?;
        wait_accepting(&self.server, self.connection_string("postgres")).await?;
        tracing::info!(port = self.port, "private postgres started again");
        Ok(())
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host=127.0.0.1 port=<port> user=postgres dbname=<dbname>`.
    pub fn connection_string(&self, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={dbname}",
            self.port
        )
    }

    /// Connects to `dbname` as `postgres`; the connection task is spawned on the current runtime.
    pub async fn connect(&self, dbname: &str) -> Result<Client, TestbedError> {
        connect(&self.connection_string(dbname)).await.map_err(|e| {
            TestbedError::call(STAND_IN, format!("connecting to database {dbname}"), e)
        })
    }

    /// Creates a database named `<prefix>_<unique>` and connects to it.
    pub async fn fresh_database(&self, prefix: &str) -> Result<PgDatabase, TestbedError> {
        let name = crate::unique_ident(prefix);
        let admin = self.connect("postgres").await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|e| TestbedError::call(STAND_IN, format!("CREATE DATABASE {name}"), e))?;
        let client = self.connect(&name).await?;
        Ok(PgDatabase {
            connection_string: self.connection_string(&name),
            name,
            client,
        })
    }

    /// Creates a schema named `<prefix>_<unique>` in database `postgres` and returns a client
    /// whose `search_path` is that schema. Cheaper than [`Postgres::fresh_database`].
    pub async fn fresh_schema(&self, prefix: &str) -> Result<PgSchema, TestbedError> {
        let name = crate::unique_ident(prefix);
        let client = self.connect("postgres").await?;
        client
            .batch_execute(&format!("CREATE SCHEMA {name}; SET search_path TO {name}"))
            .await
            .map_err(|e| TestbedError::call(STAND_IN, format!("CREATE SCHEMA {name}"), e))?;
        Ok(PgSchema {
            connection_string: self.connection_string("postgres"),
            name,
            client,
        })
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

async fn connect(connection_string: &str) -> Result<Client, String> {
    let (client, connection) = tokio_postgres::connect(connection_string, NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("postgres connection closed: {e}");
        }
    });
    Ok(client)
}

fn installed_bin() -> Result<&'static Path, TestbedError> {
    let bin = Path::new(POSTGRES_BIN_DIR);
    for tool in ["initdb", "postgres"] {
        if !crate::is_executable(&bin.join(tool)) {
            return Err(TestbedError::not_installed(
                STAND_IN,
                &format!("PostgreSQL 15 {tool}"),
                &bin.join(tool),
            ));
        }
    }
    Ok(bin)
}

async fn start() -> Result<Postgres, TestbedError> {
    let bin = installed_bin()?;
    match start_once(bin, SERVER_SCRIPT, false).await {
        Err(e) if process::port_was_taken(&e) => {
            tracing::warn!("postgres lost the race for its port; trying another");
            start_once(bin, SERVER_SCRIPT, false).await
        }
        other => other,
    }
}

async fn start_once(bin: &Path, script: &str, restartable: bool) -> Result<Postgres, TestbedError> {
    let port = process::free_port(STAND_IN)?;
    let dir = process::server_dir(STAND_IN, "postgres")?;
    let script_args: Vec<OsString> = vec![
        "-c".into(),
        script.into(),
        "etl-testbed-postgres".into(),
        bin.into(),
        dir.clone().into(),
        port.to_string().into(),
    ];
    // initdb and postgres refuse to run as root: as root, hand the temp dir to the `postgres`
    // user and switch to it with setpriv (which execs, so the pid stays the postmaster's).
    let (program, args) = if is_root() {
        let (uid, gid) = postgres_user().ok_or_else(|| {
            TestbedError::not_installed(
                STAND_IN,
                "the `postgres` system user (created by the postgresql-15 package)",
                Path::new("/etc/passwd"),
            )
        })?;
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(|e| {
            TestbedError::start(
                STAND_IN,
                format!("cannot hand {} to the postgres user: {e}", dir.display()),
                String::new(),
            )
        })?;
        let mut args: Vec<OsString> = vec![
            format!("--reuid={uid}").into(),
            format!("--regid={gid}").into(),
            "--init-groups".into(),
            "--".into(),
            "/bin/sh".into(),
        ];
        args.extend(script_args);
        (PathBuf::from("/usr/bin/setpriv"), args)
    } else {
        (PathBuf::from("/bin/sh"), script_args)
    };
    let server = process::spawn_server(ServerSpec {
        stand_in: STAND_IN,
        program,
        args,
        envs: vec![("LC_ALL".into(), "C".into())],
        env_remove: vec![],
        stop_signal: StopSignal::Int,
        dir,
    })?;
    let connection_string = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
    wait_accepting(&server, connection_string).await?;
    tracing::info!(port, "postgres ready");
    Ok(Postgres {
        port,
        server,
        restartable,
    })
}

/// Waits until the server at `connection_string` answers `SELECT 1`.
async fn wait_accepting(
    server: &ServerProcess,
    connection_string: String,
) -> Result<(), TestbedError> {
    server
        .wait_until("accepted connection", START_TIMEOUT, || {
            let connection_string = connection_string.clone();
            async move {
                let client = connect(&connection_string).await?;
                client
                    .simple_query("SELECT 1")
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        })
        .await
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// uid and gid of the `postgres` user.
fn postgres_user() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != "postgres" {
            return None;
        }
        let uid = fields.nth(1)?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some((uid, gid))
    })
}
