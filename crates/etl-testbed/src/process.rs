//! Starting stand-in servers so that they never outlive the test process.
//!
//! Each server runs under a small `bash` *reaper* whose stdin is a pipe whose only writer is the
//! test process (the pipe is close-on-exec, so no other child inherits it). Whenever the test
//! process ends — normal exit, failed test, panic, `SIGKILL` — the kernel closes the pipe, the
//! reaper reads EOF, sends the server's process group its stop signal, waits up to 10 s, kills
//! what is left of the group, and removes the server's temp directory. The reaper sits in a process group of
//! its own and ignores `SIGINT`/`SIGTERM`/`SIGHUP`, so a Ctrl-C on the terminal or a kill of the
//! test's process group cannot take it away before it has cleaned up.
//!
//! On a normal exit an `atexit` hook also closes the pipes and waits for the reapers, so by the
//! time `cargo test` returns, the servers are gone.

use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use crate::{StandIn, TestbedError};

/// The reaper. Arguments: `<dir> <stop signal> <program> <args...>`.
///
/// The server gets a session (and process group) of its own, whose id is its pid. `env
/// --default-signal` undoes bash's ignoring of SIGINT/SIGQUIT in background commands, so that
/// the stop signal reaches every process of the group (a start-up script and its `initdb` too).
const REAPER_SCRIPT: &str = r#"
set -u
dir=$1; sig=$2; shift 2
setsid env --default-signal=INT,QUIT "$@" </dev/null >>"$dir/server.log" 2>&1 &
pid=$!
echo "$pid" >"$dir/server.pid.tmp" && mv -f "$dir/server.pid.tmp" "$dir/server.pid"
trap '' INT HUP TERM QUIT PIPE
while read -r _; do :; done
kill -s "$sig" -- "-$pid" 2>/dev/null || kill -s "$sig" "$pid" 2>/dev/null
for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -s KILL -- "-$pid" 2>/dev/null
wait
rm -rf -- "$dir"
"#;

/// How a server wants to be asked to stop before it is killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopSignal {
    /// `SIGTERM`: Node and Python servers.
    Term,
    /// `SIGINT`: PostgreSQL's fast shutdown.
    Int,
}

impl StopSignal {
    fn name(self) -> &'static str {
        match self {
            StopSignal::Term => "TERM",
            StopSignal::Int => "INT",
        }
    }
}

/// What to run for one stand-in server.
#[derive(Debug)]
pub struct ServerSpec {
    /// Which stand-in this is (named in errors).
    pub stand_in: StandIn,
    /// Executable, absolute path.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Extra environment for the server only (never the test process's).
    pub envs: Vec<(OsString, OsString)>,
    /// Variables removed from the server's environment.
    pub env_remove: Vec<OsString>,
    /// Stop signal sent when the test process ends.
    pub stop_signal: StopSignal,
    /// Working and temp directory of the server; it gets `server.log` and is removed after the
    /// server stopped. Create it with [`server_dir`].
    pub dir: PathBuf,
}

/// A server started by [`spawn_server`]; lives until the test process ends.
#[derive(Debug)]
pub struct ServerProcess {
    stand_in: StandIn,
    dir: PathBuf,
}

struct Reaper {
    stdin: Option<ChildStdin>,
    child: Child,
}

static REAPERS: Mutex<Vec<Reaper>> = Mutex::new(Vec::new());
static ATEXIT: Once = Once::new();

extern "C" fn stop_all_at_exit() {
    let mut reapers = match REAPERS.lock() {
        Ok(mut guard) => std::mem::take(&mut *guard),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    };
    for reaper in &mut reapers {
        drop(reaper.stdin.take());
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    for reaper in &mut reapers {
        while let Ok(None) = reaper.child.try_wait() {
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Creates a fresh temp directory `etl-testbed-<name>-XXXX` for one server; the server's reaper
/// removes it once the server has stopped.
pub fn server_dir(stand_in: StandIn, name: &str) -> Result<PathBuf, TestbedError> {
    tempfile::Builder::new()
        .prefix(&format!("etl-testbed-{name}-"))
        .tempdir()
        .map(tempfile::TempDir::keep)
        .map_err(|e| {
            TestbedError::start(
                stand_in,
                format!("cannot create a temp directory: {e}"),
                String::new(),
            )
        })
}

/// Starts `spec` under a reaper (see the module doc). Returns once the process is spawned, not
/// once it answers: poll readiness with [`ServerProcess::wait_until`].
pub fn spawn_server(spec: ServerSpec) -> Result<ServerProcess, TestbedError> {
    ATEXIT.call_once(|| {
        // SAFETY: registers a plain `extern "C" fn` that never unwinds.
        unsafe {
            libc::atexit(stop_all_at_exit);
        }
    });
    let mut cmd = Command::new("/bin/bash");
    cmd.arg("-c")
        .arg(REAPER_SCRIPT)
        .arg("etl-testbed-reaper")
        .arg(&spec.dir)
        .arg(spec.stop_signal.name())
        .arg(&spec.program)
        .args(&spec.args)
        .current_dir(&spec.dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    for key in &spec.env_remove {
        cmd.env_remove(key);
    }
    for (key, value) in &spec.envs {
        cmd.env(key, value);
    }
    let mut child = cmd.spawn().map_err(|e| {
        TestbedError::start(
            spec.stand_in,
            format!("cannot run /bin/bash for the reaper: {e}"),
            String::new(),
        )
    })?;
    let stdin = child.stdin.take();
    tracing::debug!(stand_in = %spec.stand_in, dir = %spec.dir.display(), program = %spec.program.display(), "server spawned");
    match REAPERS.lock() {
        Ok(mut guard) => guard.push(Reaper { stdin, child }),
        Err(poisoned) => poisoned.into_inner().push(Reaper { stdin, child }),
    }
    Ok(ServerProcess {
        stand_in: spec.stand_in,
        dir: spec.dir,
    })
}

impl ServerProcess {
    /// Temp directory of the server.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's log (stdout and stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The last ~4 KiB of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path(), 4096)
    }

    /// Pid of the server process (`None` until the reaper has recorded it).
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("server.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Whether the server process still runs (`None` until the reaper has recorded its pid).
    pub fn is_running(&self) -> Option<bool> {
        let pid = libc::pid_t::try_from(self.pid()?).ok()?;
        // SAFETY: signal 0 only checks that the process exists.
        Some(unsafe { libc::kill(pid, 0) } == 0)
    }

    /// Calls `probe` every 50 ms until it returns `Some`, the server exits, or `timeout` passes;
    /// failures carry `what` and the tail of the server's log.
    pub async fn wait_until<T, F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        mut probe: F,
    ) -> Result<T, TestbedError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, String>>,
    {
        let started = Instant::now();
        loop {
            let last_error = match probe().await {
                Ok(value) => {
                    tracing::debug!(stand_in = %self.stand_in, elapsed_ms = started.elapsed().as_millis() as u64, "server ready");
                    return Ok(value);
                }
                Err(e) => e,
            };
            if self.is_running() == Some(false) {
                // Give a just-exited server a moment to flush its last log lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Err(TestbedError::start(
                    self.stand_in,
                    format!("the server exited before {what} (last probe: {last_error})"),
                    self.log_tail(),
                ));
            }
            if started.elapsed() > timeout {
                return Err(TestbedError::start(
                    self.stand_in,
                    format!(
                        "no {what} within {} s (last probe: {last_error})",
                        timeout.as_secs()
                    ),
                    self.log_tail(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The last `max_bytes` of a file, lossily decoded; a note if it cannot be read.
pub fn log_tail(path: &Path, max_bytes: u64) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(max_bytes)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    read().unwrap_or_else(|e| format!("<no log at {}: {e}>", path.display()))
}

/// A port that was free on 127.0.0.1 a moment ago (bind to port 0, read it, close).
pub fn free_port(stand_in: StandIn) -> Result<u16, TestbedError> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| {
            TestbedError::start(
                stand_in,
                format!("cannot find a free port on 127.0.0.1: {e}"),
                String::new(),
            )
        })
}

/// Whether a start failure was a lost race for the port (worth one more try on another port).
pub(crate) fn port_was_taken(err: &TestbedError) -> bool {
    match err {
        TestbedError::StartFailed { log_tail, .. } => {
            log_tail.contains("already in use") || log_tail.contains("EADDRINUSE")
        }
        _ => false,
    }
}
