//! What the lease tests share: a 12-shard kinesalite stream, moto's DynamoDB behind a fault
//! proxy (so the test counts every DynamoDB call and can cut DynamoDB off), a local lake shared
//! by the replicas, `etl run` replicas as child processes, a producer, and readers of the lease
//! table and of the lake's commit logs.

use etl_aws::kinesis::primitives::Blob;
use etl_aws::kinesis::types::PutRecordsRequestEntry;
use etl_kinesis::leases::{LeaseItem, LeaseTable, ENTITY_LEASE};
use etl_lake::delivery::{Delivery, Resume};
use etl_lake::Lake;
use etl_testbed::fault_proxy::{FaultPlan, FaultProxy};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Lease timings of the tests: short, to keep them fast. For figures at the documented defaults
/// run with `ETL_LEASES_TEST_TIMINGS=default` (lease 10 s, renew 2 s, batches 1 s), and
/// `ETL_LEASES_TEST_STEADY_SECS=300` for a 5-minute steady-state window (both only read).
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    pub lease_ms: u64,
    pub renew_ms: u64,
    pub batch_ms: u64,
    pub steady: Duration,
}

pub fn timings() -> Timings {
    let defaults = std::env::var("ETL_LEASES_TEST_TIMINGS").is_ok_and(|v| v == "default");
    let steady = std::env::var("ETL_LEASES_TEST_STEADY_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let (lease_ms, renew_ms, batch_ms) = if defaults {
        (10_000, 2_000, 1_000)
    } else {
        (4_000, 1_000, 500)
    };
    Timings {
        lease_ms,
        renew_ms,
        batch_ms,
        steady: Duration::from_secs(steady),
    }
}

pub struct Bed {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub stream: String,
    pub kinesis: etl_aws::kinesis::Client,
    pub kinesis_url: String,
    pub table: LeaseTable,
    pub proxy: FaultProxy,
}

impl Bed {
    pub async fn new(name: &str, shards: i32) -> Result<Bed, Error> {
        let moto = etl_testbed::moto().await?;
        let kinesalite = etl_testbed::kinesis().await?;
        let kinesis = kinesalite.client().await?;
        let stream = etl_testbed::unique_name(name);
        etl_testbed::create_stream(&kinesis, &stream, shards).await?;
        let proxy = FaultProxy::start(moto.port(), FaultPlan::default()).await?;
        let table_name = etl_testbed::unique_name(&format!("{name}-leases"));
        let table = LeaseTable::new(
            moto.clients().await?.dynamodb(),
            &table_name,
            Duration::from_secs(10),
        );
        let mut dir = tempfile::tempdir()?;
        // To look at the replicas' logs after a run: ETL_KEEP_TEST_DIR=1.
        if std::env::var_os("ETL_KEEP_TEST_DIR").is_some() {
            dir.disable_cleanup(true);
            eprintln!("test directory kept: {}", dir.path().display());
        }
        let config = dir.path().join("etl.toml");
        let aws = toml::to_string(&BTreeMap::from([(
            "aws",
            etl_testbed::settings_for(proxy.endpoint()),
        )]))?;
        let t = timings();
        std::fs::write(
            &config,
            format!(
                "[kinesis]\nstreams = {{ app_events = \"{stream}\" }}\nbatch_max_ms = {}\n\n\
                 [leases]\ntable = \"{table_name}\"\nlease_duration_ms = {}\n\
                 renew_interval_ms = {}\nhandover_deadline_ms = 20000\n\n{aws}",
                t.batch_ms, t.lease_ms, t.renew_ms
            ),
        )?;
        let kinesis_url = kinesalite
            .settings()
            .endpoint_url
            .ok_or("kinesalite has an endpoint")?;
        Ok(Bed {
            dir,
            config,
            stream,
            kinesis,
            kinesis_url,
            table,
            proxy,
        })
    }

    /// Starts one `etl run` replica (log in `<dir>/replica-<name>.log`).
    pub fn replica(&self, name: &str) -> Result<Replica, Error> {
        let log = std::fs::File::create(self.dir.path().join(format!("replica-{name}.log")))?;
        let child = Command::new(env!("CARGO_BIN_EXE_etl"))
            .current_dir(self.dir.path())
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--config")
            .arg(&self.config)
            .args(["--log", "info", "--log-format", "json", "run"])
            .args(["--aws-endpoint-url", &self.kinesis_url])
            .env_remove("ETL_CONFIG")
            .env_remove("ETL_DIR")
            .env("ETL_METRICS_LISTEN", "off")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        Ok(Replica {
            name: name.to_string(),
            child,
        })
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("replica-{name}.log")))
            .unwrap_or_default()
    }

    /// The shard leases of the stream.
    pub async fn leases(&self) -> Result<Vec<LeaseItem>, Error> {
        Ok(self
            .table
            .scan()
            .await?
            .into_iter()
            .filter(|i| i.entity == ENTITY_LEASE && i.stream == self.stream)
            .collect())
    }

    /// Shards held per owner pid (free leases under 0).
    pub async fn holdings(&self) -> Result<BTreeMap<u32, usize>, Error> {
        let mut out = BTreeMap::new();
        for lease in self.leases().await? {
            *out.entry(lease.owner.as_deref().map_or(0, owner_pid))
                .or_default() += 1;
        }
        Ok(out)
    }

    /// Waits until `check` holds for the holdings (polling every 200 ms); returns the time it
    /// took, or an error with the last holdings after `limit`.
    pub async fn wait_holdings(
        &self,
        limit: Duration,
        what: &str,
        check: impl Fn(&BTreeMap<u32, usize>) -> bool,
    ) -> Result<Duration, Error> {
        let started = Instant::now();
        let mut last = BTreeMap::new();
        while started.elapsed() < limit {
            if let Ok(h) = self.holdings().await {
                if check(&h) {
                    return Ok(started.elapsed());
                }
                last = h;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(format!("{what}: not within {limit:?}; holdings by pid: {last:?}").into())
    }

    pub fn lake(&self) -> Result<Lake, Error> {
        Ok(Lake::open(
            self.dir.path().join("lake").to_str().ok_or("utf-8")?,
        )?)
    }

    /// Every event id committed to the lake, through each shard's commit log.
    pub async fn committed_ids(&self) -> Result<Vec<String>, Error> {
        let lake = self.lake()?;
        let mut ids = Vec::new();
        for shard in etl_kinesis::shards::list_shards(&self.kinesis, &self.stream).await? {
            let delivery = Delivery::new(
                lake.clone(),
                "app_events",
                &format!("{}/{}", self.stream, shard.shard_id),
                "test-reader",
                None,
            );
            let Some(latest) = delivery.latest().await? else {
                continue;
            };
            let resume = Resume {
                next: latest.n + 1,
                after: Some(latest.last.clone()),
            };
            ids.extend(
                delivery
                    .recent_values(&resume, resume.next, "event_id")
                    .await?,
            );
        }
        Ok(ids)
    }

    /// The times each shard's commit records were written (file modification times).
    pub fn commit_times(&self) -> Result<BTreeMap<String, Vec<SystemTime>>, Error> {
        let root = self
            .dir
            .path()
            .join("lake/_delivery/app_events")
            .join(&self.stream);
        let mut out = BTreeMap::new();
        let Ok(shards) = std::fs::read_dir(&root) else {
            return Ok(out);
        };
        for shard in shards {
            let shard = shard?;
            let mut times = Vec::new();
            for record in std::fs::read_dir(shard.path())? {
                let record = record?;
                if record.path().extension().is_some_and(|e| e == "json") {
                    times.push(record.metadata()?.modified()?);
                }
            }
            times.sort();
            out.insert(shard.file_name().to_string_lossy().into_owned(), times);
        }
        Ok(out)
    }

    /// The longest time between consecutive commits of any shard within `[from, to]`, with the
    /// shard.
    pub fn longest_gap(
        &self,
        from: SystemTime,
        to: SystemTime,
    ) -> Result<(Duration, String), Error> {
        let mut worst = (Duration::ZERO, String::new());
        for (shard, times) in self.commit_times()? {
            let mut previous = from;
            for t in times
                .iter()
                .copied()
                .filter(|t| *t >= from && *t <= to)
                .chain([to])
            {
                let gap = t.duration_since(previous).unwrap_or_default();
                if gap > worst.0 {
                    worst = (gap, shard.clone());
                }
                previous = t;
            }
        }
        Ok(worst)
    }
}

/// The pid in an owner name `<host>-<pid>-<start ms>`.
pub fn owner_pid(owner: &str) -> u32 {
    owner
        .rsplitn(3, '-')
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(u32::MAX)
}

pub struct Replica {
    pub name: String,
    pub child: Child,
}

impl Replica {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL.
    pub fn kill9(&mut self) -> Result<(), Error> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM, then waits for the exit (at most `limit`); returns the exit code and the time
    /// it took.
    pub async fn terminate(&mut self, limit: Duration) -> Result<(Option<i32>, Duration), Error> {
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()?;
        if !status.success() {
            return Err(format!("kill -TERM {} failed", self.pid()).into());
        }
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait()? {
                return Ok((status.code(), started.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.child.kill()?;
        Err(format!(
            "replica {} did not exit within {limit:?} after SIGTERM",
            self.name
        )
        .into())
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A producer putting generated app events (valid, distinct ids) at about `per_second`, until
/// stopped. With `duplicate_every`, every n-th record is sent again ~2 s later with the same
/// partition key (a producer retry: same shard).
pub struct Producer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<(), String>>,
    /// Event ids sent (each once, whatever the copies).
    pub ids: Arc<Mutex<Vec<String>>>,
    /// Event ids sent twice.
    pub duplicated: Arc<Mutex<Vec<String>>>,
}

impl Producer {
    pub fn start(bed: &Bed, seed: u64, per_second: u64, duplicate_every: Option<u64>) -> Producer {
        let stop = Arc::new(AtomicBool::new(false));
        let ids = Arc::new(Mutex::new(Vec::new()));
        let duplicated = Arc::new(Mutex::new(Vec::new()));
        let (client, stream) = (bed.kinesis.clone(), bed.stream.clone());
        let (stop2, ids2, dup2) = (stop.clone(), ids.clone(), duplicated.clone());
        let task = tokio::spawn(async move {
            let mut generator = etl_generate::Generator::new(etl_generate::GeneratorConfig {
                seed,
                events: 10_000_000,
                call_share: 0.0,
                duplicate_rate: 0.0,
                malformed_rate: 0.0,
                max_oversize: 0,
                ..etl_generate::GeneratorConfig::default()
            })
            .map_err(|e| e.to_string())?;
            let tick = Duration::from_millis(100);
            let per_tick = (per_second / 10).max(1);
            let mut n = 0u64;
            let mut later: Vec<(Instant, String, Vec<u8>)> = Vec::new();
            while !stop2.load(Ordering::SeqCst) {
                let mut entries = Vec::new();
                let now = Instant::now();
                for (_, key, line) in later.iter().filter(|(t, _, _)| *t <= now) {
                    entries.push((key.clone(), line.clone()));
                }
                later.retain(|(t, _, _)| *t > now);
                for _ in 0..per_tick {
                    let Some((_, _, line)) = generator.next_record() else {
                        break;
                    };
                    let id = serde_json::from_slice::<serde_json::Value>(line)
                        .ok()
                        .and_then(|v| v["event_id"].as_str().map(str::to_string))
                        .ok_or("a generated line has no event_id")?;
                    let key = format!("k{n}");
                    if duplicate_every.is_some_and(|d| n % d == 0) {
                        later.push((now + Duration::from_secs(2), key.clone(), line.to_vec()));
                        dup2.lock().map_err(|e| e.to_string())?.push(id.clone());
                    }
                    ids2.lock().map_err(|e| e.to_string())?.push(id);
                    entries.push((key, line.to_vec()));
                    n += 1;
                }
                put(&client, &stream, entries).await?;
                tokio::time::sleep(tick).await;
            }
            // Copies still due are sent too (a retrying producer sends them in the end).
            put(
                &client,
                &stream,
                later.into_iter().map(|(_, k, l)| (k, l)).collect(),
            )
            .await
        });
        Producer {
            stop,
            task,
            ids,
            duplicated,
        }
    }

    pub async fn stop(self) -> Result<(Vec<String>, Vec<String>), Error> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await??;
        let ids = self.ids.lock().map_err(|e| e.to_string())?.clone();
        let dup = self.duplicated.lock().map_err(|e| e.to_string())?.clone();
        Ok((ids, dup))
    }
}

/// PutRecords of `entries`, re-sending failed entries until all are in.
async fn put(
    client: &etl_aws::kinesis::Client,
    stream: &str,
    mut entries: Vec<(String, Vec<u8>)>,
) -> Result<(), String> {
    for _ in 0..50 {
        if entries.is_empty() {
            return Ok(());
        }
        let request: Vec<PutRecordsRequestEntry> = entries
            .iter()
            .map(|(k, l)| {
                PutRecordsRequestEntry::builder()
                    .partition_key(k)
                    .data(Blob::new(l.clone()))
                    .build()
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<_, _>>()?;
        let out = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(request))
            .send()
            .await
            .map_err(|e| etl_aws::describe_error(&e))?;
        entries = entries
            .into_iter()
            .zip(out.records())
            .filter(|(_, r)| r.error_code().is_some())
            .map(|(e, _)| e)
            .collect();
    }
    Err("PutRecords kept failing".into())
}

/// Asserts every id of `expected` is in `got` exactly once and nothing else is.
pub fn assert_exactly_once(got: &[String], expected: &[String]) -> Result<(), Error> {
    let mut counts: HashMap<&str, u32> = HashMap::new();
    for id in got {
        *counts.entry(id).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(5).collect();
    let missing: Vec<&String> = expected
        .iter()
        .filter(|id| !counts.contains_key(id.as_str()))
        .take(5)
        .collect();
    if !twice.is_empty() || !missing.is_empty() || got.len() != expected.len() {
        return Err(format!(
            "lake holds {} ids for {} produced; twice: {twice:?}; missing: {missing:?}",
            got.len(),
            expected.len()
        )
        .into());
    }
    Ok(())
}

/// Waits until the lake holds at least `n` events (or `limit` passes).
pub async fn wait_committed(bed: &Bed, n: usize, limit: Duration) -> Result<Vec<String>, Error> {
    let started = Instant::now();
    loop {
        let ids = bed.committed_ids().await?;
        if ids.len() >= n || started.elapsed() > limit {
            return Ok(ids);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}
