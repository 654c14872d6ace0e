//! The test bed's own guarantees: unique names, loud start failures, no server outliving the
//! test process.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etl_testbed::process::{server_dir, spawn_server, ServerSpec, StopSignal};
use etl_testbed::{unique_ident, unique_name, StandIn, TestbedError};

use crate::{Context, Failure, TestResult};

#[test]
fn unique_names_are_unique_and_valid_for_aws_and_sql() {
    let a = unique_name("My Stream!");
    let b = unique_name("My Stream!");
    assert_ne!(a, b);
    assert!(a.starts_with("my-stream--"), "{a}");
    assert!(a.len() <= 63, "{a}");
    assert!(
        a.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "{a}"
    );
    assert!(unique_name(&"x".repeat(100)).len() <= 63);

    let i = unique_ident("9lives-db");
    assert!(i.starts_with("t9lives_db_"), "{i}");
    assert!(
        i.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
        "{i}"
    );
}

#[test]
fn repo_root_holds_the_tools() {
    let root = etl_testbed::repo_root();
    assert!(
        root.join("tools/kinesalite/server.js").is_file(),
        "{}",
        root.display()
    );
    assert!(
        root.join("scripts/setup-test-env").is_file(),
        "{}",
        root.display()
    );
}

#[test]
fn a_missing_stand_in_names_itself_and_the_fix() {
    let err = TestbedError::NotInstalled {
        stand_in: StandIn::Moto,
        what: "moto_server".into(),
        path: "/repo/.tools/venv/bin/moto_server".into(),
    };
    let text = err.to_string();
    assert!(
        text.contains("moto_server (S3/Glue/DynamoDB/Athena stand-in)"),
        "{text}"
    );
    assert!(
        text.contains("moto_server not found at /repo/.tools/venv/bin/moto_server"),
        "{text}"
    );
    assert!(text.contains("run scripts/setup-test-env"), "{text}");
}

/// A server that dies at start-up fails the wait at once, with the reason and its log tail.
#[tokio::test]
async fn a_server_that_cannot_start_fails_with_its_log() -> TestResult {
    let dir = server_dir(StandIn::RedshiftData, "failing")?;
    let server = spawn_server(ServerSpec {
        stand_in: StandIn::RedshiftData,
        program: PathBuf::from("/bin/sh"),
        args: vec![
            "-c".into(),
            "echo 'FATAL: could not bind: boom' >&2; exit 3".into(),
        ],
        envs: vec![],
        env_remove: vec![],
        stop_signal: StopSignal::Term,
        dir,
    })?;
    let started = Instant::now();
    let result = server
        .wait_until("answer", Duration::from_secs(30), || async {
            Err::<(), _>("never answers".to_owned())
        })
        .await;
    let err = result
        .err()
        .context("a dead server must not be reported ready")?;
    let text = err.to_string();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}: the exit must be noticed",
        started.elapsed()
    );
    assert!(
        text.contains("Redshift Data API stand-in failed to start"),
        "{text}"
    );
    assert!(text.contains("exited before answer"), "{text}");
    assert!(text.contains("FATAL: could not bind: boom"), "{text}");
    Ok(())
}

const HELPER: &str = "testbed_process::helper_starts_servers_and_hangs";

/// Run only by [`killing_the_test_process_stops_its_servers`], as a child test process.
#[tokio::test]
#[ignore = "helper: run by killing_the_test_process_stops_its_servers"]
async fn helper_starts_servers_and_hangs() -> TestResult {
    let pg = etl_testbed::postgres().await?;
    let kinesalite = etl_testbed::kinesis().await?;
    for server in [pg.server(), kinesalite.server()] {
        let pid = server.pid().context("server pid")?;
        println!("SERVER {pid} {}", server.dir().display());
    }
    println!("READY");
    // Wait to be killed; should the parent die first, its end of our stdin closes: stop then.
    let parent_gone = tokio::task::spawn_blocking(|| {
        let mut byte = [0u8; 1];
        while matches!(std::io::stdin().read(&mut byte), Ok(n) if n > 0) {}
    });
    tokio::select! {
        _ = parent_gone => {}
        _ = tokio::time::sleep(Duration::from_secs(120)) => {}
    }
    Ok(())
}

fn alive(pid: u32) -> bool {
    // A zombie still answers kill(0); /proc tells them apart.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Kills (SIGKILL) and reaps the helper on every path, an early failure included.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// SIGKILL gives the test process no chance to clean up: the reapers must do it.
#[test]
fn killing_the_test_process_stops_its_servers() -> TestResult {
    let exe = std::env::current_exe()?;
    let mut child = KillOnDrop(
        Command::new(exe)
            .args([
                "--ignored",
                "--exact",
                HELPER,
                "--nocapture",
                "--test-threads=1",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the helper test process")?,
    );
    let stdout = child.0.stdout.take().context("helper stdout")?;
    let mut servers = Vec::new();
    let mut ready = false;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        // With --test-threads=1 libtest prints "test <name> ... " and no newline before the
        // test's own output, so the markers may not start the line.
        if let Some((_, rest)) = line.split_once("SERVER ") {
            let (pid, dir) = rest.split_once(' ').context("SERVER line")?;
            servers.push((
                pid.parse::<u32>()
                    .map_err(|e| Failure(format!("pid {pid}: {e}")))?,
                PathBuf::from(dir),
            ));
        } else if line.ends_with("READY") {
            ready = true;
            break;
        }
    }
    if !ready {
        let status = child.0.wait()?;
        return Err(Failure(format!(
            "the helper exited ({status}) before its servers were ready"
        )));
    }
    assert_eq!(servers.len(), 2);
    for (pid, dir) in &servers {
        assert!(
            alive(*pid),
            "server {pid} should run while the helper lives"
        );
        assert!(dir.is_dir(), "{}", dir.display());
    }

    drop(child); // SIGKILL, then reap
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left: Vec<_> = servers
            .iter()
            .filter(|(pid, dir)| alive(*pid) || dir.exists())
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Failure(format!("left behind after SIGKILL: {left:?}")));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
