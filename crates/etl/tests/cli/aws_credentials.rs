//! The `etl` binary signs every AWS request with the SDK's credential chain (issue 12, defect
//! 1): credentials in the environment only, a web identity token exchanged at moto's STS, and
//! the `[aws] credentials` override. Each `etl` is a child process with a cleared environment
//! (this process's environment is never changed), `AWS_EC2_METADATA_DISABLED=true` and an empty
//! `HOME`, so nothing but the named source can provide credentials and nothing contacts the
//! instance metadata service. S3 traffic goes through the test bed's proxy in front of moto,
//! which records which access key signed each request: the tests assert on that, not only on
//! the commands succeeding.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use etl_testbed::{FaultPlan, FaultProxy};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const ENV_KEY: &str = "AKIAENVIRONMENTONLY";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `etl --dir <dir> <args>` with exactly `env` as its environment, off the test's runtime
/// thread (the proxy and the stand-in serve on this runtime meanwhile).
async fn etl(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Output, String> {
    let dir = dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let mut env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.push(("HOME".into(), dir.display().to_string()));
    env.push(("AWS_EC2_METADATA_DISABLED".into(), "true".into()));
    env.push(("RUST_LOG".into(), "warn".into()));
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_etl"))
            .current_dir(&dir)
            .env_clear()
            .envs(env)
            .arg("--dir")
            .arg(&dir)
            .args(&args)
            .output()
            .map_err(|e| format!("cannot run etl: {e}"))
    })
    .await
    .map_err(|e| e.to_string())?
}

fn ok(out: &Output, what: &str) -> Result<String, String> {
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(format!("{what} failed: {}", text(&out.stderr)))
    }
}

/// A fresh bucket in moto, a proxy in front of moto, and an `etl.toml` whose `[aws]` reaches
/// moto through the proxy with no credentials (plus `extra_aws` lines).
struct Lake {
    bucket: String,
    proxy: FaultProxy,
    config: String,
    tmp: tempfile::TempDir,
}

async fn lake(prefix: &str, extra_aws: &str) -> Result<Lake, Box<dyn std::error::Error>> {
    let moto = etl_testbed::moto().await?;
    let bucket = etl_testbed::unique_name(prefix);
    moto.clients()
        .await?
        .s3()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await?;
    let proxy = FaultProxy::start(moto.port(), FaultPlan::default()).await?;
    let tmp = tempfile::tempdir()?;
    let config = tmp.path().join("etl.toml");
    std::fs::write(
        &config,
        format!(
            "[lake]\nlocation = \"s3://{bucket}/events\"\n\n[aws]\nregion = \"us-east-1\"\n\
             endpoint_url = \"{}\"\nforce_path_style = true\nmax_attempts = 2\n{extra_aws}",
            proxy.endpoint()
        ),
    )?;
    let config = config.to_str().ok_or("temp path is not UTF-8")?.to_string();
    Ok(Lake {
        bucket,
        proxy,
        config,
        tmp,
    })
}

impl Lake {
    /// Generates `events` events and ingests `stream` into the S3 lake; rows written.
    async fn ingest(
        &self,
        stream: &str,
        events: &str,
        env: &[(&str, &str)],
    ) -> Result<i64, String> {
        let dir = self.tmp.path();
        let input = dir.join("input");
        if !input.join(format!("{stream}.ndjson")).exists() {
            let out = etl(
                dir,
                &["generate", "--events", events, "--out", "input"],
                &[],
            )
            .await?;
            ok(&out, "generate")?;
        }
        let file = input.join(format!("{stream}.ndjson"));
        let file = file.to_str().ok_or("utf-8")?;
        let args = [
            "--config",
            &self.config,
            "ingest",
            "--stream",
            stream,
            "--json",
            file,
        ];
        let out = etl(dir, &args, env).await?;
        let summary: serde_json::Value =
            serde_json::from_str(&ok(&out, "ingest")?).map_err(|e| e.to_string())?;
        summary["written"]
            .as_i64()
            .ok_or_else(|| format!("no `written` in {summary}"))
    }

    /// Requests that reached the proxy per `<key id>/<service>` (or `unsigned`).
    fn signers(&self) -> BTreeMap<String, u64> {
        self.proxy.stats().signers
    }
}

/// The S3 objects of the lake (listed with the test's own client, straight at moto).
async fn parquet_objects(bucket: &str) -> Result<usize, Box<dyn std::error::Error>> {
    let s3 = etl_testbed::moto().await?.clients().await?.s3();
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix("events/")
        .send()
        .await?;
    Ok(listed
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .filter(|k| k.ends_with(".parquet"))
        .count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_credentials_only_run_ingest_and_warehouse_load() -> TestResult {
    let lake = lake("cred-env", "").await?;
    let env = [
        ("AWS_ACCESS_KEY_ID", ENV_KEY),
        ("AWS_SECRET_ACCESS_KEY", "environment-secret"),
    ];
    let dir = lake.tmp.path();

    // `etl ingest` of call events, `etl run` of app events from kinesalite, both to S3.
    let mut written = BTreeMap::new();
    written.insert(
        "call_events",
        lake.ingest("call_events", "3000", &env).await?,
    );
    let kinesalite = etl_testbed::kinesis().await?;
    let kinesis = kinesalite.client().await?;
    let (app, call) = (
        etl_testbed::unique_name("cred-app"),
        etl_testbed::unique_name("cred-call"),
    );
    for stream in [&app, &call] {
        etl_testbed::create_stream(&kinesis, stream, 1).await?;
    }
    let kinesis_args = ["--aws-endpoint-url", kinesalite.endpoint()];
    let streams = ["--app-stream", app.as_str(), "--call-stream", call.as_str()];
    let generator = ["--events", "2000", "--duplicate-rate", "0"];
    let produce = etl(
        dir,
        &[
            &["--config", &lake.config, "produce"][..],
            &generator,
            &streams,
            &kinesis_args,
        ]
        .concat(),
        &env,
    )
    .await?;
    ok(&produce, "produce")?;
    let run = etl(
        dir,
        &[
            &["--config", &lake.config, "run", "--until-caught-up"][..],
            &streams,
            &kinesis_args,
        ]
        .concat(),
        &env,
    )
    .await?;
    ok(&run, "run")?;
    assert!(parquet_objects(&lake.bucket).await? > 0);

    // `etl warehouse migrate` + `load`: the Data API (stand-in) and S3 with the same keys.
    let pg = etl_testbed::postgres().await?;
    let db = pg.fresh_database("cred_env").await?;
    let mut standin_config = etl_redshift_standin::StandInConfig::new(pg.port());
    standin_config.s3 = Some(etl_testbed::moto().await?.clients().await?.s3());
    let standin = etl_redshift_standin::RedshiftDataStandIn::start(standin_config).await?;
    let target = [
        "--cluster-id",
        "test-cluster",
        "--db-user",
        "etl",
        "--database",
        db.name.as_str(),
        "--redshift-endpoint-url",
        standin.endpoint(),
    ];
    let migrate = etl(
        dir,
        &[
            &["--config", &lake.config, "warehouse", "migrate"][..],
            &target,
        ]
        .concat(),
        &env,
    )
    .await?;
    ok(&migrate, "warehouse migrate")?;
    let load = etl(
        dir,
        &[
            &["--config", &lake.config, "warehouse", "load"][..],
            &target,
            &[
                "--iam-role-arn",
                "arn:aws:iam::123456789012:role/lake-reader",
            ],
        ]
        .concat(),
        &env,
    )
    .await?;
    let stdout = ok(&load, "warehouse load")?;
    assert!(!stdout.starts_with("0 batches"), "{stdout}");

    let count = |table: &'static str| {
        let client = &db.client;
        async move {
            let sql = format!("SELECT count(DISTINCT event_id) FROM analytics.{table}");
            Ok::<i64, Box<dyn std::error::Error>>(client.query_one(&sql, &[]).await?.get(0))
        }
    };
    assert_eq!(count("call_events").await?, written["call_events"]);
    assert!(
        count("app_events").await? > 0,
        "etl run's app events loaded"
    );

    // `etl warehouse status`: nothing pending, nothing stopped.
    let status = etl(
        dir,
        &[
            &["--config", &lake.config, "warehouse", "status", "--json"][..],
            &target,
        ]
        .concat(),
        &env,
    )
    .await?;
    let status: serde_json::Value = serde_json::from_str(&ok(&status, "warehouse status")?)?;
    let tables = status.as_array().ok_or("status --json prints a list")?;
    assert_eq!(tables.len(), 2, "{status}");
    for t in tables {
        assert_eq!(t["pending_batches"], 0, "{t}");
        assert!(t["failure"].is_null(), "{t}");
        assert!(t["loaded_batches"].as_u64() > Some(0), "{t}");
    }

    // Every request to S3 was signed with the environment's key, none went unsigned.
    let signers = lake.signers();
    assert_eq!(
        signers.keys().collect::<Vec<_>>(),
        vec![&format!("{ENV_KEY}/s3")],
        "{signers:?}"
    );
    assert!(signers[&format!("{ENV_KEY}/s3")] > 10, "{signers:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_identity_token_is_exchanged_at_sts_and_signs_the_lake() -> TestResult {
    let lake = lake("cred-wid", "").await?;
    let token = lake.tmp.path().join("token.jwt");
    std::fs::write(
        &token,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJldGwifQ.c2lnbmF0dXJl",
    )?;
    let env = [
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            token.to_str().ok_or("utf-8")?,
        ),
        (
            "AWS_ROLE_ARN",
            "arn:aws:iam::123456789012:role/etl-lake-writer",
        ),
        ("AWS_ROLE_SESSION_NAME", "etl-test"),
        // STS of the web identity provider: moto, through the proxy.
        ("AWS_ENDPOINT_URL_STS", lake.proxy.endpoint()),
    ];
    let written = lake.ingest("call_events", "2000", &env).await?;
    assert!(written > 500, "{written}");
    assert!(parquet_objects(&lake.bucket).await? > 0);

    let signers = lake.signers();
    // One AssumeRoleWithWebIdentity (unsigned: the token is the proof), cached for the run.
    assert_eq!(signers.get("unsigned"), Some(&1), "{signers:?}");
    let s3: Vec<_> = signers.keys().filter(|k| k.ends_with("/s3")).collect();
    assert_eq!(s3.len(), 1, "one key signs every S3 request: {signers:?}");
    assert!(
        s3[0].starts_with("ASIA"),
        "S3 signed with STS's temporary key: {signers:?}"
    );
    assert_eq!(signers.len(), 2, "{signers:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_credentials_override_the_environment() -> TestResult {
    let lake = lake(
        "cred-cfg",
        "credentials = { access_key_id = \"AKIACONFIGURED\", secret_access_key = \"s\" }\n",
    )
    .await?;
    let env = [
        ("AWS_ACCESS_KEY_ID", "AKIAENVIGNORED"),
        ("AWS_SECRET_ACCESS_KEY", "environment-secret"),
    ];
    lake.ingest("app_events", "1000", &env).await?;
    let signers = lake.signers();
    assert_eq!(
        signers.keys().collect::<Vec<_>>(),
        vec!["AKIACONFIGURED/s3"],
        "{signers:?}"
    );

    // Without the override and without any credentials, the error says so (no metadata call).
    let bare = lake_without_credentials(&lake)?;
    let out = etl(
        lake.tmp.path(),
        &[
            "--config",
            &bare,
            "ingest",
            "--stream",
            "app_events",
            lake.tmp
                .path()
                .join("input/app_events.ndjson")
                .to_str()
                .ok_or("utf-8")?,
        ],
        &[],
    )
    .await?;
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success(),
        "ingest without credentials succeeded"
    );
    assert!(stderr.to_lowercase().contains("credentials"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("169.254.169.254"), "{stderr}");
    Ok(())
}

/// A copy of the lake's configuration without its `credentials` line.
fn lake_without_credentials(lake: &Lake) -> Result<String, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(&lake.config)?;
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("credentials"))
        .collect();
    let path = lake.tmp.path().join("bare.toml");
    std::fs::write(&path, kept.join("\n"))?;
    Ok(path.to_str().ok_or("utf-8")?.to_string())
}
