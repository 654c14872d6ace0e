//! Synthetic, seeded producer of the two input streams, `app_events` and `call_events`, as NDJSON.
//!
//! What it does:
//! - Produces records that validate against `schemas/app_events.toml` and
//!   `schemas/call_events.toml`: interleaved call lifecycles (`call_started` -> `call_ringing` ->
//!   `call_answered` -> `quality_sample`* -> `call_ended`, or `call_failed`) and interleaved app
//!   sessions (`app_open` .. `logout` / `app_background`), with realistic mixes of regions,
//!   channels, codecs, platforms, countries, quality scores, optional fields left out, unknown
//!   extra keys, and four spellings of `occurred_at` (RFC 3339 with / without fraction, with an
//!   offset, epoch milliseconds).
//! - Mixes in configurable shares of exact duplicates (a byte copy of one of the last 512 valid
//!   lines of the same stream), late events (`occurred_at` 5 min .. 3 h in the past) and
//!   malformed records of rotating [`MalformedKind`]s, and counts everything in
//!   [`GeneratorStats`] so tests can reconcile what a pipeline should have stored.
//! - Is deterministic: the same [`GeneratorConfig`] gives byte-identical output (ChaCha8 seeded
//!   from `seed`; event time starts at `start_ms` and advances `1 / events_per_second` per record;
//!   no wall clock).
//! - Streams in bounded memory (under 10 MB resident whatever `events` is) at about two million
//!   records (~750 MB) per second per core in release builds (`examples/gen_speed.rs`).
//!
//! What it does not do: it does not talk to Kinesis or any other sink (callers write the lines
//! where they like, e.g. with [`write_ndjson`]), it does not read the schema files at run time
//! (the field lists are built in, and the tests check them against the files), and it does not
//! model cross-stream correlations (calls and app sessions are independent).

mod app;
mod calls;
mod config;
mod fmt;
mod ids;
mod malformed;
mod sched;
mod stats;

use std::io::{BufWriter, Write};

use rand::SeedableRng;
use serde::Serialize;

pub use config::{GenerateError, GeneratorConfig, DEFAULT_START_MS};
pub use malformed::{MalformedKind, OVERSIZE_BLOB_BYTES, OVERSIZE_EVERY};
pub use stats::{GeneratorStats, MalformedCounts, StreamStats};

use config::{MAX_LATE_MS, MIN_LATE_MS};
use fmt::{below, chance, range_i64, unit, Rng};

/// Valid lines kept per stream for duplicates: a duplicate copies one of these.
pub const DUPLICATE_WINDOW: usize = 512;

/// One of the two input streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    AppEvents,
    CallEvents,
}

impl Stream {
    /// Both streams.
    pub const ALL: [Stream; 2] = [Stream::AppEvents, Stream::CallEvents];

    /// The stream (and schema) name: `app_events` or `call_events`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Stream::AppEvents => "app_events",
            Stream::CallEvents => "call_events",
        }
    }

    /// The stream called `name` (`app_events` / `call_events`).
    pub fn from_name(name: &str) -> Option<Stream> {
        Stream::ALL.into_iter().find(|s| s.as_str() == name)
    }

    pub(crate) fn index(&self) -> usize {
        match self {
            Stream::AppEvents => 0,
            Stream::CallEvents => 1,
        }
    }
}

impl std::fmt::Display for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a produced line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// A valid original with a fresh `event_id` (possibly late, see [`Generator::last_was_late`]).
    Valid,
    /// A byte-identical copy of a recent valid line of the same stream.
    Duplicate,
    /// Invalid for the given reason.
    Malformed(MalformedKind),
}

/// The last [`DUPLICATE_WINDOW`] valid lines of one stream; the newest is also the output buffer.
struct Ring {
    slots: Vec<Vec<u8>>,
    head: usize,
    len: usize,
}

impl Ring {
    fn new() -> Self {
        Ring {
            slots: (0..DUPLICATE_WINDOW)
                .map(|_| Vec::with_capacity(512))
                .collect(),
            head: 0,
            len: 0,
        }
    }

    /// The slot for the next valid line (cleared), and its index.
    fn next_slot(&mut self) -> usize {
        let i = self.head;
        self.head = (self.head + 1) % DUPLICATE_WINDOW;
        self.len = (self.len + 1).min(DUPLICATE_WINDOW);
        self.slots[i].clear();
        i
    }

    /// The index of the line `back` (1 = newest) valid lines ago.
    fn back(&self, back: usize) -> usize {
        (self.head + DUPLICATE_WINDOW - back) % DUPLICATE_WINDOW
    }
}

/// The record producer. Call [`Generator::next_record`] until it returns `None`.
pub struct Generator {
    cfg: GeneratorConfig,
    rng: Rng,
    ms_per_event: f64,
    calls: calls::CallGen,
    app: app::AppGen,
    rings: [Ring; 2],
    scratch: Vec<u8>,
    rotation: malformed::Rotation,
    stats: GeneratorStats,
    emitted: u64,
    oversize: u32,
    last_late: bool,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("cfg", &self.cfg)
            .field("emitted", &self.emitted)
            .finish_non_exhaustive()
    }
}

impl Generator {
    /// Validates `cfg` and prepares a run.
    pub fn new(cfg: GeneratorConfig) -> Result<Self, GenerateError> {
        cfg.validate()?;
        let keys = ids::Keys::new(cfg.seed);
        Ok(Generator {
            rng: Rng::seed_from_u64(cfg.seed),
            ms_per_event: cfg.ms_per_event(),
            calls: calls::CallGen::new(keys, cfg.accounts),
            app: app::AppGen::new(keys, cfg.accounts, cfg.users),
            rings: [Ring::new(), Ring::new()],
            scratch: Vec::with_capacity(1024),
            rotation: malformed::Rotation::default(),
            stats: GeneratorStats::default(),
            emitted: 0,
            oversize: 0,
            last_late: false,
            cfg,
        })
    }

    /// The configuration of this run.
    pub fn config(&self) -> &GeneratorConfig {
        &self.cfg
    }

    /// The next line (without its trailing newline; it never contains a `\n` byte), or `None`
    /// once `events` records were produced. The slice borrows an internal buffer.
    pub fn next_record(&mut self) -> Option<(Stream, RecordKind, &[u8])> {
        if self.emitted >= self.cfg.events {
            return None;
        }
        let i = self.emitted;
        self.emitted += 1;
        self.last_late = false;
        let r = &mut self.rng;
        let now = self.cfg.start_ms + ((i as f64 + unit(r)) * self.ms_per_event) as i64;
        let stream = if unit(r) < self.cfg.call_share {
            Stream::CallEvents
        } else {
            Stream::AppEvents
        };
        let x = unit(r);

        if x < self.cfg.malformed_rate {
            let oversize_ok = self.oversize < self.cfg.max_oversize
                && u64::from(self.oversize) <= i / OVERSIZE_EVERY;
            let kind = self.rotation.next(stream, oversize_ok);
            if kind == MalformedKind::Oversize {
                self.oversize += 1;
            }
            let fault = malformed::fault_for(kind, stream, r);
            self.scratch.clear();
            self.scratch.shrink_to(1 << 16);
            match stream {
                Stream::CallEvents => self.calls.detached(r, now, fault, &mut self.scratch),
                Stream::AppEvents => self.app.detached(r, now, fault, &mut self.scratch),
            }
            if kind == MalformedKind::InvalidJson {
                malformed::truncate(&mut self.scratch, r);
            }
            let st = self.stats.stream_mut(stream);
            st.malformed += 1;
            st.malformed_by_kind.bump(kind);
            st.bytes += self.scratch.len() as u64 + 1;
            return Some((stream, RecordKind::Malformed(kind), &self.scratch));
        }

        let ring = &mut self.rings[stream.index()];
        if x < self.cfg.malformed_rate + self.cfg.duplicate_rate && ring.len > 0 {
            let idx = ring.back(1 + below(r, ring.len as u32) as usize);
            let line = &ring.slots[idx];
            let st = self.stats.stream_mut(stream);
            st.duplicates += 1;
            st.bytes += line.len() as u64 + 1;
            return Some((stream, RecordKind::Duplicate, line));
        }

        let late_ms = if chance(r, self.cfg.late_rate) {
            range_i64(r, MIN_LATE_MS, MAX_LATE_MS + 1)
        } else {
            0
        };
        let idx = ring.next_slot();
        let out = &mut ring.slots[idx];
        let w = match stream {
            Stream::CallEvents => self.calls.next_valid(r, now, late_ms, out),
            Stream::AppEvents => self.app.next_valid(r, now, late_ms, out),
        };
        self.last_late = late_ms > 0;
        let st = self.stats.stream_mut(stream);
        st.record_valid(w.event_type, w.occurred_ms, late_ms > 0);
        st.bytes += out.len() as u64 + 1;
        if let Some(d) = w.duration_ms {
            st.duration_ms_sum += d.max(0) as u64;
        }
        Some((stream, RecordKind::Valid, out))
    }

    /// Whether the record last returned was a late valid original.
    pub fn last_was_late(&self) -> bool {
        self.last_late
    }

    /// Counters of what was produced so far.
    pub fn stats(&self) -> &GeneratorStats {
        &self.stats
    }
}

/// Every record of a generation, in order, as `(stream name, bytes)`: what a producer sends
/// (`etl produce`).
pub fn records(
    config: GeneratorConfig,
) -> Result<impl Iterator<Item = (&'static str, Vec<u8>)>, GenerateError> {
    let mut generator = Generator::new(config)?;
    Ok(std::iter::from_fn(move || {
        generator
            .next_record()
            .map(|(stream, _, line)| (stream.as_str(), line.to_vec()))
    }))
}

/// Runs a whole generation, writing `app_events` lines to `app` and `call_events` lines to
/// `call`, one record per line, each ending in `\n`. The writers are buffered internally and
/// flushed at the end.
pub fn write_ndjson(
    cfg: GeneratorConfig,
    app: &mut impl Write,
    call: &mut impl Write,
) -> Result<GeneratorStats, GenerateError> {
    let mut g = Generator::new(cfg)?;
    let mut app = BufWriter::with_capacity(256 * 1024, app);
    let mut call = BufWriter::with_capacity(256 * 1024, call);
    let io = |stream: Stream| {
        move |source| GenerateError::Io {
            stream: stream.as_str(),
            source,
        }
    };
    while let Some((stream, _, line)) = g.next_record() {
        let w: &mut dyn Write = match stream {
            Stream::AppEvents => &mut app,
            Stream::CallEvents => &mut call,
        };
        w.write_all(line)
            .and_then(|()| w.write_all(b"\n"))
            .map_err(io(stream))?;
    }
    app.flush().map_err(io(Stream::AppEvents))?;
    call.flush().map_err(io(Stream::CallEvents))?;
    Ok(g.stats.clone())
}
