//! The operations listener of the long-running commands (`etl run`, `etl warehouse load
//! --follow`): one HTTP listener with
//!
//! - `/metrics`: every metric in Prometheus text format, rendered by `metrics-exporter-prometheus`
//!   from what the libraries record through the `metrics` facade (names, types, labels and
//!   meaning in [`METRICS`] and `docs/metrics.md`);
//! - `/healthz`: 200 while the process is alive and its async runtime responsive (a heartbeat
//!   task ticks every second; 503 when it has not ticked for [`HEALTH_STALL`]);
//! - `/readyz`: 200 once the command says it is ready (configuration loaded, dependencies reached
//!   at start); 503 while starting and from the start of a shutdown on ([`Readiness`]).
//!
//! This crate installs the process-wide metrics recorder and serves it; it does not decide what
//! is recorded (the libraries' `metrics.rs` files do), when a command is ready (the command
//! does), nor how to shut down (it only turns `/readyz` to 503 when told, or on SIGTERM/Ctrl-C
//! with [`Observer::stop_when`]). Label values are bounded by construction: stream and table
//! names come from the schemas, shards from Kinesis, stage/reason/kind from fixed lists; nothing
//! is labelled per record or per batch.

mod defs;
pub mod http;
mod process;

pub use defs::{find, Kind, MetricDef, METRICS};
pub use process::resident_memory_bytes;

use metrics::{Key, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// `/healthz` fails once the heartbeat has not ticked for this long.
pub const HEALTH_STALL: Duration = Duration::from_secs(10);
/// Connections answered at once; further ones are closed unanswered.
pub const MAX_CONNECTIONS: usize = 32;
/// How often histograms are drained when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Errors of setting up the listener.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("cannot listen on {addr} for /metrics, /healthz and /readyz: {source}; choose a free address with [observability] listen or --metrics-listen")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the metrics recorder is already installed in this process")]
    AlreadyInstalled,
    #[error("invalid histogram buckets for {0}")]
    Buckets(&'static str),
}

/// Where a command is in its life, as `/readyz` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Loading configuration and reaching dependencies: not ready.
    Starting,
    /// Working: ready.
    Ready,
    /// A shutdown started (in-flight batches are being committed): not ready, never again ready.
    Stopping,
}

struct State {
    phase: AtomicU8,
    started: Instant,
    /// Milliseconds since `started` at the last heartbeat.
    heartbeat_ms: AtomicU64,
    ready_gauge: metrics::Gauge,
}

/// The readiness of the process; cheap to clone, shared with the command.
#[derive(Clone)]
pub struct Readiness(Arc<State>);

impl Readiness {
    /// Marks the command ready (no effect once stopping).
    pub fn ready(&self) {
        if self
            .0
            .phase
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            self.0.ready_gauge.set(1.0);
            tracing::info!("ready: /readyz answers 200");
        }
    }

    /// Marks the start of a shutdown: `/readyz` answers 503 from now on.
    pub fn stopping(&self) {
        if self.0.phase.swap(2, Ordering::SeqCst) != 2 {
            self.0.ready_gauge.set(0.0);
            tracing::info!("stopping: /readyz answers 503");
        }
    }

    /// The phase now.
    pub fn phase(&self) -> Phase {
        match self.0.phase.load(Ordering::SeqCst) {
            0 => Phase::Starting,
            1 => Phase::Ready,
            _ => Phase::Stopping,
        }
    }

    fn heartbeat_age(&self) -> Duration {
        let now = self.0.started.elapsed();
        now.saturating_sub(Duration::from_millis(
            self.0.heartbeat_ms.load(Ordering::Relaxed),
        ))
    }
}

/// The recorder's handle, the process gauges and the readiness state.
#[derive(Clone)]
pub struct Observer {
    handle: PrometheusHandle,
    rss: metrics::Gauge,
    readiness: Readiness,
}

const META: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, None);

impl Observer {
    /// A recorder that knows every metric of [`METRICS`] (help texts, histogram buckets), and its
    /// observer; nothing is installed. [`Observer::install`] is what the binary calls; tests use
    /// the recorder with `metrics::with_local_recorder`.
    pub fn build() -> Result<(PrometheusRecorder, Observer), ObserveError> {
        let mut builder = PrometheusBuilder::new();
        for m in METRICS.iter().filter(|m| m.kind == Kind::Histogram) {
            builder = builder
                .set_buckets_for_metric(Matcher::Full(m.name.to_string()), m.buckets)
                .map_err(|_| ObserveError::Buckets(m.name))?;
        }
        let recorder = builder.build_recorder();
        for m in METRICS {
            let (name, help) = (m.name.into(), m.help.into());
            match m.kind {
                Kind::Counter => recorder.describe_counter(name, None, help),
                Kind::Gauge => recorder.describe_gauge(name, None, help),
                Kind::Histogram => recorder.describe_histogram(name, None, help),
            }
        }
        let rss = recorder.register_gauge(
            &Key::from_static_name("etl_process_resident_memory_bytes"),
            &META,
        );
        let ready_gauge = recorder.register_gauge(&Key::from_static_name("etl_ready"), &META);
        ready_gauge.set(0.0);
        let observer = Observer {
            handle: recorder.handle(),
            rss,
            readiness: Readiness(Arc::new(State {
                phase: AtomicU8::new(0),
                started: Instant::now(),
                heartbeat_ms: AtomicU64::new(0),
                ready_gauge,
            })),
        };
        observer.refresh();
        Ok((recorder, observer))
    }

    /// Builds the recorder and installs it for the whole process (once).
    pub fn install() -> Result<Observer, ObserveError> {
        let (recorder, observer) = Self::build()?;
        metrics::set_global_recorder(recorder).map_err(|_| ObserveError::AlreadyInstalled)?;
        Ok(observer)
    }

    /// The readiness state.
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// Updates the process gauges (read at each scrape).
    fn refresh(&self) {
        if let Some(bytes) = resident_memory_bytes() {
            self.rss.set(bytes as f64);
        }
    }

    /// The Prometheus text of every metric recorded so far.
    pub fn render(&self) -> String {
        self.refresh();
        self.handle.render()
    }

    /// The answer to one request.
    pub fn route(&self, request: &http::Request) -> http::Response {
        match request.path.as_str() {
            "/metrics" => http::Response {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: self.render(),
            },
            "/healthz" => {
                let age = self.readiness.heartbeat_age();
                if age < HEALTH_STALL {
                    http::Response::text(200, "ok\n")
                } else {
                    http::Response::text(
                        503,
                        format!(
                            "runtime unresponsive: no heartbeat for {} ms\n",
                            age.as_millis()
                        ),
                    )
                }
            }
            "/readyz" => match self.readiness.phase() {
                Phase::Ready => http::Response::text(200, "ready\n"),
                Phase::Starting => http::Response::text(503, "not ready: starting\n"),
                Phase::Stopping => http::Response::text(503, "not ready: stopping\n"),
            },
            _ => http::Response::text(404, "not found: try /metrics, /healthz or /readyz\n"),
        }
    }

    /// Binds `addr` and serves `/metrics`, `/healthz` and `/readyz` on the current tokio runtime
    /// until the process ends (also after [`Readiness::stopping`], so the last values can be
    /// scraped and the 503 seen). Returns the bound address (`addr` may have port 0).
    pub async fn serve(&self, addr: SocketAddr) -> Result<SocketAddr, ObserveError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ObserveError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| ObserveError::Bind { addr, source })?;
        let state = self.readiness.0.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let ms = state.started.elapsed().as_millis() as u64;
                state.heartbeat_ms.store(ms, Ordering::Relaxed);
            }
        });
        let handle = self.handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(UPKEEP_EVERY);
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
        let observer = self.clone();
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let Ok(permit) = permits.clone().try_acquire_owned() else {
                            continue;
                        };
                        let observer = observer.clone();
                        tokio::spawn(async move {
                            http::handle(stream, |r| observer.route(r)).await;
                            drop(permit);
                        });
                    }
                    Err(e) => {
                        // E.g. out of file descriptors: wait instead of spinning.
                        tracing::warn!(error = %e, "metrics listener: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        tracing::info!(listen = %local, "serving /metrics, /healthz and /readyz");
        Ok(local)
    }

    /// Turns `/readyz` to 503 as soon as `shutdown` resolves (the binary passes its one
    /// shutdown signal; the command's own handler sees the same signal and starts the shutdown).
    pub fn stop_when(&self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) {
        let readiness = self.readiness();
        tokio::spawn(async move {
            shutdown.await;
            readiness.stopping();
        });
    }
}

#[cfg(test)]
mod tests;
