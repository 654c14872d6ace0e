//! The source contract ([`RecordSource`], [`Checkpoint`], [`SourceError`]) and the file
//! source ([`LineSource`]). What a new source (e.g. Kafka) implements is written in
//! `docs/pipeline.md`, "Adding a source".

use async_trait::async_trait;
use flate2::read::MultiGzDecoder;
use std::any::Any;
use std::io::{BufRead, BufReader, Read};
use xxhash_rust::xxh3::xxh3_64;

/// Raw records of one batch, in source order.
#[derive(Debug, Default)]
pub struct RawBatch {
    /// All records' bytes, back to back.
    pub data: Vec<u8>,
    /// `(start, end)` of each record in `data`.
    pub ranges: Vec<(usize, usize)>,
    /// When each record reached the source (ms since the epoch; Kinesis'
    /// `ApproximateArrivalTimestamp`), one per record; empty: every record arrived at the
    /// source's [`RecordSource::batch_time_ms`] (a file's modification time).
    pub arrivals: Vec<Option<i64>>,
    /// Where `data` goes back when the batch is dropped (sources that reuse their buffers).
    pool: Option<BufferPool>,
}

impl Drop for RawBatch {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give(std::mem::take(&mut self.data));
        }
    }
}

/// Buffers of dropped batches, kept for the next batches of the same source. A fresh buffer of
/// `batch_max_bytes` (32 MiB) is fresh memory each time (the allocator returns buffers this large
/// to the system at once), and the kernel zeroing its pages as the reader fills it cost ~13% of
/// the CPU time of `etl ingest` (perf, 1M app events). At most [`POOLED_BUFFERS`] are kept.
#[derive(Debug, Clone, Default)]
struct BufferPool(std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

/// Most idle buffers a source keeps (each about `batch_max_bytes`).
const POOLED_BUFFERS: usize = 2;

impl BufferPool {
    fn take(&self) -> Option<Vec<u8>> {
        self.0.lock().ok()?.pop()
    }

    fn give(&self, mut buffer: Vec<u8>) {
        buffer.clear();
        if let Ok(mut pool) = self.0.lock() {
            if pool.len() < POOLED_BUFFERS && buffer.capacity() > 0 {
                pool.push(buffer);
            }
        }
    }
}

/// Where a batch's records are in their source, made by the source and opaque to the pipeline:
/// it travels with the batch and is handed back to the source's writer ([`crate::BatchWriter`])
/// with the processed batch, which commits it in the same commit as the data
/// (`docs/delivery.md`). Kinesis: the shard and each record's sequence and sub-sequence number;
/// files: line numbers ([`Lines`]).
pub trait Checkpoint: Send + Sync + std::fmt::Debug + 'static {
    /// The position of record `i` of the batch as text (dead letters name it).
    fn position(&self, i: usize) -> String;
    /// The first and last position of the batch as text.
    fn range(&self) -> (String, String);
    /// The concrete checkpoint, for the source's own writer.
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
    /// The dedup window this batch goes through: `None` (the default) is the stream's one
    /// window; a source whose partitions move between processes (Kinesis shards under leases,
    /// `docs/leases.md`) names the partition, so each has its own window, started afresh
    /// (from [`DedupScope::seed`]) whenever [`DedupScope::epoch`] grows.
    fn dedup_scope(&self) -> Option<DedupScope> {
        None
    }
}

/// A partition's own dedup window: which partition, which stint of reading it, and the event ids
/// it starts with (the ids of the partition's last committed batches, so producer duplicates are
/// dropped across restarts and moves).
#[derive(Debug, Clone)]
pub struct DedupScope {
    /// The partition (Kinesis: the shard id).
    pub key: std::sync::Arc<str>,
    /// Grows each time this process starts reading the partition; a batch of a newer epoch
    /// replaces the window (the old one may hold ids of batches that were never committed).
    pub epoch: u64,
    /// Event ids the window starts with.
    pub seed: std::sync::Arc<Vec<String>>,
    /// How many partitions share the stream's window size (`dedup_window`): each partition's
    /// window remembers `dedup_window / share` ids, so memory stays bounded by `dedup_window`
    /// per stream even when one process holds every partition.
    pub share: usize,
}

/// One batch of a source: its records and where they are.
#[derive(Debug)]
pub struct SourceBatch {
    /// The records' bytes.
    pub records: RawBatch,
    /// Where they are in the source; one position per record.
    pub checkpoint: Box<dyn Checkpoint>,
}

/// Line numbers (1-based) of a batch's records: the checkpoint of files, stdin and dead-letter
/// replays, committed by the pipeline's own writer as the batch id `<tag>-<first>-<last>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lines(pub Vec<u64>);

impl Lines {
    /// First and last line.
    pub fn bounds(&self) -> (u64, u64) {
        (
            self.0.first().copied().unwrap_or_default(),
            self.0.last().copied().unwrap_or_default(),
        )
    }
}

impl Checkpoint for Lines {
    fn position(&self, i: usize) -> String {
        self.0.get(i).copied().unwrap_or_default().to_string()
    }
    fn range(&self) -> (String, String) {
        let (first, last) = self.bounds();
        (first.to_string(), last.to_string())
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

/// Why a source could not hand on a batch.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Reading failed (a file, stdin).
    #[error("reading {source_name} failed: {error}")]
    Io {
        source_name: String,
        #[source]
        error: std::io::Error,
    },
    /// The source cannot go on, e.g. a shard reader failed for good.
    #[error("{source_name}: {message}")]
    Failed {
        source_name: String,
        message: String,
        /// Whether running again later may succeed (a service was unavailable) rather than
        /// never (a stream that does not exist, permissions).
        retryable: bool,
    },
}

impl SourceError {
    /// Whether running again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            SourceError::Io { .. } => false,
            SourceError::Failed { retryable, .. } => *retryable,
        }
    }
}

/// Where records come from: files, stdin, dead-letter replays, Kinesis; a Kafka source would be
/// one more implementation (see `docs/pipeline.md`).
#[async_trait]
pub trait RecordSource: Send {
    /// Human-readable name (a path, `-` for stdin, `kinesis:<stream>`).
    fn name(&self) -> &str;
    /// Stable tag used in batch ids: the same source gives the same tag on a re-run.
    fn tag(&self) -> &str;
    /// A time for the batch's dead-letter partition, stable for the same input (file mtime).
    fn batch_time_ms(&self) -> i64;
    /// The next batch of up to `max_records` records or about `max_bytes` bytes, with its
    /// checkpoint; `None` at the end. Must not block the async runtime (blocking reads go
    /// through `spawn_blocking`).
    async fn next_batch(
        &mut self,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Option<SourceBatch>, SourceError>;
}

impl RawBatch {
    /// The bytes of record `i`.
    pub fn record(&self, i: usize) -> &[u8] {
        self.ranges
            .get(i)
            .and_then(|&(s, e)| self.data.get(s..e))
            .unwrap_or_default()
    }
    /// Bytes of all records (line ends and skipped blank lines not counted).
    pub fn data_len(&self) -> u64 {
        self.ranges.iter().map(|(s, e)| (e - s) as u64).sum()
    }
    /// Number of records.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }
    /// Whether the batch has no record.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

/// NDJSON lines from a file or stdin, gzip detected by its magic bytes. Empty lines are skipped;
/// a trailing `\r` is removed. Positions are 1-based line numbers.
///
/// Reads in chunks of [`READ_CHUNK`] bytes straight into the batch's buffer and cuts lines there
/// (no per-line copy); the bytes after the last line of a batch start the next batch.
pub struct LineSource {
    /// The blocking reader, moved into a blocking task for each batch (`None` while it is there).
    lines: Option<LineReader>,
    name: String,
    tag: String,
    time_ms: i64,
}

/// The blocking half of [`LineSource`].
struct LineReader {
    reader: Box<dyn Read + Send>,
    /// Bytes read but not handed on yet: the beginning of the next batch.
    carry: Vec<u8>,
    eof: bool,
    line: u64,
    /// Mean bytes per line of the last batch (sizes the next batch's buffer).
    line_bytes: Option<usize>,
    /// Buffers of batches the pipeline is done with.
    pool: BufferPool,
    /// Bytes of input not handed out yet, when the input's size is known (a plain file): the
    /// last two batches of a file are cut to equal halves (see [`LineReader::limit`]).
    unread: Option<u64>,
}

/// Bytes asked of the reader at a time.
pub const READ_CHUNK: usize = 1 << 20;

/// Most bytes reserved up front for one batch's buffer (a larger `batch_max_bytes` grows it).
const MAX_RESERVE: usize = 64 << 20;

impl LineSource {
    /// Opens `path`, or stdin for `-`.
    pub fn open(path: &str) -> std::io::Result<Self> {
        if path == "-" {
            let now = chrono::Utc::now().timestamp_millis();
            return Ok(Self::from_reader(
                Box::new(std::io::stdin()),
                "-",
                &format!("stdin-{now}"),
                now,
            ));
        }
        let file = std::fs::File::open(path)?;
        let meta = file.metadata()?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64);
        let absolute = std::fs::canonicalize(path)?;
        let stem = absolute
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or("file")
            .split('.')
            .next()
            .unwrap_or("file")
            .to_string();
        let tag = format!(
            "{stem}-{:08x}",
            xxh3_64(absolute.to_string_lossy().as_bytes()) as u32
        );
        let size = Some(meta.len());
        Ok(Self::from_sized_reader(
            Box::new(file),
            size,
            path,
            &tag,
            mtime,
        ))
    }

    /// Lines from any reader (gzip detected).
    pub fn from_reader(reader: Box<dyn Read + Send>, name: &str, tag: &str, time_ms: i64) -> Self {
        Self::from_sized_reader(reader, None, name, tag, time_ms)
    }

    /// Lines from a reader of `size` bytes, if known.
    fn from_sized_reader(
        reader: Box<dyn Read + Send>,
        size: Option<u64>,
        name: &str,
        tag: &str,
        time_ms: i64,
    ) -> Self {
        let mut buffered = BufReader::with_capacity(READ_CHUNK, reader);
        let gz = matches!(buffered.fill_buf(), Ok(b) if b.starts_with(&[0x1f, 0x8b]));
        let reader: Box<dyn Read + Send> = if gz {
            Box::new(MultiGzDecoder::new(buffered))
        } else {
            // Reads of READ_CHUNK bytes bypass the BufReader's buffer once it is drained.
            Box::new(buffered)
        };
        LineSource {
            lines: Some(LineReader {
                reader,
                carry: Vec::new(),
                eof: false,
                line: 0,
                line_bytes: None,
                pool: BufferPool::default(),
                // The size of a gzip file says nothing about its lines.
                unread: if gz { None } else { size },
            }),
            name: name.to_string(),
            tag: tag.to_string(),
            time_ms,
        }
    }
}

impl LineReader {
    /// Records line `data[start..end]` (without its `\n`) unless it is blank.
    fn push_line(
        &mut self,
        batch: &mut RawBatch,
        lines: &mut Vec<u64>,
        start: usize,
        mut end: usize,
    ) {
        self.line += 1;
        if batch.data[start..end].ends_with(b"\r") {
            end -= 1;
        }
        if batch.data[start..end].iter().all(u8::is_ascii_whitespace) {
            return;
        }
        batch.ranges.push((start, end));
        lines.push(self.line);
    }
}

#[async_trait]
impl RecordSource for LineSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn tag(&self) -> &str {
        &self.tag
    }
    fn batch_time_ms(&self) -> i64 {
        self.time_ms
    }
    async fn next_batch(
        &mut self,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Option<SourceBatch>, SourceError> {
        let io = |error| SourceError::Io {
            source_name: self.name.clone(),
            error,
        };
        let Some(mut lines) = self.lines.take() else {
            return Err(io(std::io::Error::other(
                "an earlier read of this source failed",
            )));
        };
        let (lines, read) = tokio::task::spawn_blocking(move || {
            let read = lines.next_batch(max_records, max_bytes);
            (lines, read)
        })
        .await
        .map_err(|e| io(std::io::Error::other(format!("reader task failed: {e}"))))?;
        self.lines = Some(lines);
        Ok(read.map_err(io)?.map(|(records, lines)| SourceBatch {
            records,
            checkpoint: Box::new(Lines(lines)),
        }))
    }
}

/// Appends up to [`READ_CHUNK`] bytes of `reader` to `data` with one `read` call (a file's read
/// of this size bypasses the `BufReader`'s buffer) and returns how many; 0 at the end.
/// (`read_to_end` would start each call with small reads copied through the `BufReader`: ~2% of
/// an ingest's CPU time in memcpy.) The bytes are zeroed before the read: the batch buffers
/// are reused, so that is a memset of memory already in cache, not fresh pages.
fn read_chunk(reader: &mut dyn Read, data: &mut Vec<u8>) -> std::io::Result<usize> {
    let start = data.len();
    data.resize(start + READ_CHUNK, 0);
    let result = loop {
        match reader.read(&mut data[start..]) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => break other,
        }
    };
    data.truncate(start + *result.as_ref().unwrap_or(&0));
    result
}

impl LineReader {
    /// Most bytes the next batch takes (it ends at the first line end at or past it). Usually
    /// `max_bytes`; but when what is left of a file of known size is more than one batch and
    /// less than two, half of it, so the file's last two batches are alike. Otherwise a file
    /// ends with a full batch and a small one, and on two cores one core idles for most of a
    /// batch while the other does the full one (a 1M-event file: 15 full batches and a
    /// quarter). The cut depends only on the file and the batch settings, so re-ingesting the
    /// same file still cuts the same batches.
    fn limit(&self, max_records: usize, max_bytes: usize) -> usize {
        let (Some(unread), Some(mean)) = (self.unread, self.line_bytes) else {
            return max_bytes;
        };
        let full = max_records.saturating_mul(mean).min(max_bytes) as u64;
        let left = unread; // includes the carried bytes: they are not handed out yet
        if left > full && left < 2 * full {
            left.div_ceil(2) as usize
        } else {
            max_bytes
        }
    }

    /// Cuts the next batch of lines (blocking).
    fn next_batch(
        &mut self,
        max_records: usize,
        max_bytes: usize,
    ) -> std::io::Result<Option<(RawBatch, Vec<u64>)>> {
        let mut lines = Vec::new();
        let mut batch = RawBatch {
            data: self.pool.take().unwrap_or_default(),
            ranges: Vec::new(),
            arrivals: Vec::new(),
            pool: Some(self.pool.clone()),
        };
        // One allocation per batch, sized for `max_bytes` plus the line crossing it and one more
        // read, so the buffer is not doubled (and copied) while it fills: with the default 32 MiB
        // that doubling left ~36 MiB buffers holding ~26 MiB, several of them alive at once.
        // After the first batch the expected size also follows from the record count limit and
        // the mean line length seen so far.
        let expected = match self.line_bytes {
            Some(mean) => max_records.saturating_mul(mean + mean / 8),
            None => usize::MAX,
        };
        let room = max_bytes
            .min(expected)
            .min(MAX_RESERVE)
            .saturating_add(2 * READ_CHUNK);
        batch
            .data
            .reserve_exact(room.saturating_sub(batch.data.len()));
        batch.data.extend_from_slice(&self.carry);
        self.carry.clear();
        let limit = self.limit(max_records, max_bytes);
        // `pos`: start of the first line not yet taken; `scanned`: no `\n` in data[pos..scanned].
        let (mut pos, mut scanned) = (0usize, 0usize);
        while batch.len() < max_records && pos < limit {
            if let Some(i) = memchr::memchr(b'\n', &batch.data[scanned..]) {
                let end = scanned + i;
                self.push_line(&mut batch, &mut lines, pos, end);
                pos = end + 1;
                scanned = pos;
                continue;
            }
            scanned = batch.data.len();
            if self.eof {
                if pos < batch.data.len() {
                    let end = batch.data.len();
                    self.push_line(&mut batch, &mut lines, pos, end);
                    pos = end;
                }
                break;
            }
            if batch.data.capacity() - batch.data.len() < READ_CHUNK {
                batch.data.reserve(READ_CHUNK); // a line longer than the room left
            }
            let n = read_chunk(&mut *self.reader, &mut batch.data)?;
            self.eof = n == 0;
        }
        self.carry.extend_from_slice(&batch.data[pos..]);
        batch.data.truncate(pos);
        if let Some(unread) = self.unread.as_mut() {
            *unread = unread.saturating_sub(pos as u64);
        }
        if !batch.is_empty() {
            self.line_bytes = Some(pos.div_ceil(batch.len()));
        }
        Ok(if batch.is_empty() {
            None
        } else {
            Some((batch, lines))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batch sizes, in lines, of everything `source` holds, cut with `max_records`.
    async fn cut(source: &mut LineSource, max_records: usize) -> Vec<usize> {
        let mut sizes = Vec::new();
        while let Some(batch) = source.next_batch(max_records, 1 << 30).await.unwrap() {
            sizes.push(batch.records.len());
        }
        sizes
    }

    /// The rest of a file between one and two batches long is cut in equal halves, the same
    /// on every run; a gzip file or a stream of unknown length keeps the plain cut.
    #[tokio::test]
    async fn a_file_ends_with_two_equal_batches_not_a_full_one_and_a_stub() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("equal.ndjson");
        let lines: String = (0..26).map(|i| format!("{{\"n\":{i:04}}}\n")).collect();
        std::fs::write(&path, &lines).unwrap();
        let path = path.to_str().unwrap();
        // 26 lines by 8: 8, 8, then 10 left (between 8 and 16): 5 and 5, not 8 and 2.
        assert_eq!(
            cut(&mut LineSource::open(path).unwrap(), 8).await,
            [8, 8, 5, 5]
        );
        assert_eq!(
            cut(&mut LineSource::open(path).unwrap(), 8).await,
            [8, 8, 5, 5]
        );
        // 26 lines by 13: exactly two full batches; by 30: one.
        assert_eq!(
            cut(&mut LineSource::open(path).unwrap(), 13).await,
            [13, 13]
        );
        assert_eq!(cut(&mut LineSource::open(path).unwrap(), 30).await, [26]);
        let gz_path = dir.path().join("equal.ndjson.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, lines.as_bytes()).unwrap();
        std::fs::write(&gz_path, gz.finish().unwrap()).unwrap();
        let gz_path = gz_path.to_str().unwrap();
        assert_eq!(
            cut(&mut LineSource::open(gz_path).unwrap(), 8).await,
            [8, 8, 8, 2]
        );
        let mut stream = LineSource::from_reader(
            Box::new(std::io::Cursor::new(lines.into_bytes())),
            "-",
            "stdin",
            0,
        );
        assert_eq!(cut(&mut stream, 8).await, [8, 8, 8, 2]);
    }
}
