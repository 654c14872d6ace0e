//! Running the plan: write the generation, commit the state, point the catalog, clean up.

use crate::merge::merge;
use crate::plan::{plan_table, Action, PartitionPlan};
use crate::state::{batch_of, generation_location, Covered, PartitionState, Retired, StateFile};
use crate::CompactError;
use async_trait::async_trait;
use etl_lake::{Lake, ParquetOptions, PartitionValues};
use etl_schema::StreamSchema;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStoreExt;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Where a run stops on purpose (tests of the crash points, `docs/compaction.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// The first file of the new generation written, the others not.
    AfterFirstFile,
    /// Every file of the new generation written, the state not.
    BeforeCommit,
    /// The state written (local readers switched), the catalog location not.
    AfterCommit,
    /// The catalog location switched, nothing cleaned up.
    AfterLocation,
    /// One retired object deleted, the state not rewritten.
    MidCleanup,
}

impl CrashPoint {
    /// Every crash point, in the order a run reaches them.
    pub const ALL: [CrashPoint; 5] = [
        CrashPoint::AfterFirstFile,
        CrashPoint::BeforeCommit,
        CrashPoint::AfterCommit,
        CrashPoint::AfterLocation,
        CrashPoint::MidCleanup,
    ];
}

/// How a run compacts.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// How the compacted files are written: `target_file_bytes` (a file is closed once it
    /// reaches about this size), `row_group_rows`, compression.
    pub parquet: ParquetOptions,
    /// A partition-hour is compacted once it ended at least this long ago.
    pub older_than: Duration,
    /// Retired objects are deleted this long after the switch (longer than the longest query).
    pub grace_period: Duration,
    /// Plan only: change nothing.
    pub dry_run: bool,
    /// The run's "now" in ms since the epoch; `None`: the system clock (tests set it).
    pub now_ms: Option<i64>,
    /// Stop at this point with [`CompactError::Crash`] (tests).
    pub crash_at: Option<CrashPoint>,
}

/// The warehouse's load ledger: a writer's file is deleted only once its batch is loaded (the
/// loader copies the files its manifest names). Every `etl_warehouse::LoadTarget` is one.
#[async_trait]
pub trait LoadGate: Send + Sync {
    /// The loaded batch ids of `table`.
    async fn loaded(&self, table: &str) -> Result<BTreeSet<String>, String>;
}

#[async_trait]
impl<T: etl_warehouse::LoadTarget + ?Sized> LoadGate for T {
    async fn loaded(&self, table: &str) -> Result<BTreeSet<String>, String> {
        self.loaded_batches(table).await.map_err(|e| e.to_string())
    }
}

/// A catalog whose partitions carry a location readers follow (Glue: Athena, Spectrum).
#[async_trait]
pub trait PartitionLocations: Send + Sync {
    /// Refuses a table that cannot be compacted (e.g. Glue partition projection, under which
    /// Athena computes locations and ignores the registered ones).
    async fn check_table(&self, table: &str) -> Result<(), String>;
    /// Points partition `partition` of `table` at `location` (a directory below the lake
    /// root); a no-op if it points there already.
    async fn point(
        &self,
        table: &str,
        partition: &PartitionValues,
        location: &str,
    ) -> Result<(), String>;
}

/// What a run did (or, dry, would do).
#[derive(Debug, Default)]
pub struct Report {
    /// Every partition's plan.
    pub plans: Vec<PartitionPlan>,
    /// Partitions compacted.
    pub compacted: u64,
    /// Files and bytes readers read before, in the compacted partitions.
    pub files_before: u64,
    pub bytes_before: u64,
    /// Files and bytes of the new generations.
    pub files_after: u64,
    pub bytes_after: u64,
    /// Rows read and written.
    pub rows_in: u64,
    pub rows_out: u64,
    /// Repeated event ids dropped.
    pub duplicates_dropped: u64,
    /// Retired objects deleted.
    pub deleted: u64,
    /// Retired objects kept: the grace period has not passed.
    pub waiting_for_grace: u64,
    /// Retired writer files kept: their batch is not loaded yet.
    pub waiting_for_load: u64,
    /// Time spent compacting (reading, merging, writing, committing).
    pub compact_time: Duration,
}

/// Compacts the tables of a lake.
pub struct Compactor<'a> {
    lake: &'a Lake,
    options: CompactOptions,
    locations: Option<&'a dyn PartitionLocations>,
    gate: Option<&'a dyn LoadGate>,
}

impl<'a> Compactor<'a> {
    /// A compactor of `lake`.
    pub fn new(lake: &'a Lake, options: CompactOptions) -> Self {
        Compactor {
            lake,
            options,
            locations: None,
            gate: None,
        }
    }

    /// Also points the catalog's partitions (Glue) at each committed generation.
    pub fn with_locations(mut self, locations: &'a dyn PartitionLocations) -> Self {
        self.locations = Some(locations);
        self
    }

    /// Keeps a retired writer file until its batch is in `gate`'s load ledger.
    pub fn with_load_gate(mut self, gate: &'a dyn LoadGate) -> Self {
        self.gate = Some(gate);
        self
    }

    fn now_ms(&self) -> i64 {
        self.options
            .now_ms
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis())
    }

    fn crash(&self, point: CrashPoint) -> Result<(), CompactError> {
        match self.options.crash_at {
            Some(p) if p == point => Err(CompactError::Crash(point)),
            _ => Ok(()),
        }
    }

    /// Compacts (or, with `dry_run`, plans) every partition of `schema`'s table.
    pub async fn run(&self, schema: &StreamSchema) -> Result<Report, CompactError> {
        let table = schema.stream.as_str();
        if self.options.parquet.target_file_bytes == 0 {
            return Err(CompactError::Option {
                field: "compaction.target_file_bytes",
                message: "must be at least 1".into(),
            });
        }
        if let Some(locations) = self.locations {
            locations
                .check_table(table)
                .await
                .map_err(CompactError::Catalog)?;
        }
        let plans = plan_table(
            self.lake,
            table,
            self.now_ms(),
            self.options.older_than,
            self.options.parquet.target_file_bytes as u64,
        )
        .await?;
        let mut report = Report::default();
        if self.options.dry_run {
            report.plans = plans;
            return Ok(report);
        }
        let lake_schema = schema.lake_arrow_schema();
        let mut ledger: Option<BTreeSet<String>> = None;
        for plan in &plans {
            let mut state = plan.state.clone();
            // A switch a crashed run committed but did not carry to the catalog.
            if let (Some(s), Some(locations)) = (&state, self.locations) {
                locations
                    .point(table, &plan.partition, &s.location)
                    .await
                    .map_err(CompactError::Catalog)?;
            }
            if let Action::Compact { generation } = plan.action {
                let started = Instant::now();
                let (next, rows_in) = self
                    .compact(plan, generation, &lake_schema, schema.version)
                    .await?;
                report.rows_in += rows_in;
                report.compact_time += started.elapsed();
                report.compacted += 1;
                report.files_before += plan.files_before as u64;
                report.bytes_before += plan.bytes_before;
                report.files_after += next.files.len() as u64;
                report.bytes_after += next.files.iter().map(|f| f.bytes).sum::<u64>();
                report.rows_out += next.rows;
                report.duplicates_dropped += next.duplicates_dropped;
                state = Some(next);
            }
            if let Some(s) = state {
                self.clean_up(s, &mut ledger, &mut report).await?;
            }
        }
        report.plans = plans;
        Ok(report)
    }

    async fn compact(
        &self,
        plan: &PartitionPlan,
        generation: u64,
        lake_schema: &arrow::datatypes::SchemaRef,
        schema_version: u32,
    ) -> Result<(PartitionState, u64), CompactError> {
        let (lake, table, p) = (self.lake, plan.table.as_str(), &plan.partition);
        let dir = generation_location(table, p, generation);
        // Leftovers of a run that crashed before committing this generation: nobody reads them.
        for path in lake.list(&dir).await? {
            delete(lake, &path).await?;
        }
        // First arrival wins, except that rewritten files (a backfill) replace what they held.
        let mut inputs: Vec<String> = plan.rewritten.iter().map(|f| f.path.clone()).collect();
        inputs.extend(
            plan.state
                .iter()
                .flat_map(|s| s.files.iter().map(|f| f.path.clone())),
        );
        inputs.extend(plan.uncovered.iter().map(|f| f.path.clone()));
        let merged = merge(lake, table, lake_schema, p, &inputs, &self.options.parquet).await?;
        let mut files = Vec::with_capacity(merged.files.len());
        for (i, f) in merged.files.into_iter().enumerate() {
            let path = format!("{dir}part-{i:04}.parquet");
            files.push(StateFile {
                path: path.clone(),
                rows: f.rows as u64,
                bytes: f.bytes.len() as u64,
            });
            lake.put(&path, f.bytes).await?;
            if i == 0 {
                self.crash(CrashPoint::AfterFirstFile)?;
            }
        }
        self.crash(CrashPoint::BeforeCommit)?;
        let now = self.now_ms();
        // What was read, as it was read: rewritten files replace their old entries.
        let read = |f: &crate::plan::InputFile| Covered {
            path: f.path.clone(),
            e_tag: f.e_tag.clone(),
            written_ms: f.written_ms,
        };
        let mut covers: Vec<Covered> = plan
            .state
            .iter()
            .flat_map(|s| s.covers.iter())
            .filter(|c| !plan.rewritten.iter().any(|f| f.path == c.path))
            .cloned()
            .collect();
        covers.extend(plan.rewritten.iter().chain(&plan.uncovered).map(read));
        let mut retired = plan
            .state
            .as_ref()
            .map(|s| s.retired.clone())
            .unwrap_or_default();
        retired.extend(plan.state.iter().flat_map(|s| {
            s.files.iter().map(move |f| Retired {
                path: f.path.clone(),
                retired_at_ms: now,
                batch: None,
            })
        }));
        retired.extend(
            plan.uncovered
                .iter()
                .chain(&plan.rewritten)
                .map(|f| Retired {
                    path: f.path.clone(),
                    retired_at_ms: now,
                    batch: batch_of(&f.path),
                }),
        );
        let state = PartitionState {
            table: table.to_string(),
            dt: p.dt.clone(),
            hour: p.hour.clone(),
            generation,
            location: dir.clone(),
            files,
            covers,
            rows: merged.rows,
            duplicates_dropped: merged.duplicates_dropped,
            committed_at_ms: now,
            schema_version,
            retired,
        };
        state.write(lake).await?;
        self.crash(CrashPoint::AfterCommit)?;
        if let Some(locations) = self.locations {
            locations
                .point(table, p, &dir)
                .await
                .map_err(CompactError::Catalog)?;
        }
        self.crash(CrashPoint::AfterLocation)?;
        tracing::info!(
            table,
            partition = %p.path(),
            generation,
            files_before = plan.files_before,
            files_after = state.files.len(),
            rows_in = merged.rows_in,
            rows = merged.rows,
            duplicates_dropped = merged.duplicates_dropped,
            "partition compacted"
        );
        Ok((state, merged.rows_in))
    }

    /// Deletes the retired objects whose grace period has passed (writer files only once their
    /// batch is loaded), then records what is left.
    async fn clean_up(
        &self,
        mut state: PartitionState,
        ledger: &mut Option<BTreeSet<String>>,
        report: &mut Report,
    ) -> Result<(), CompactError> {
        let now = self.now_ms();
        let grace = i64::try_from(self.options.grace_period.as_millis()).unwrap_or(i64::MAX);
        let mut deleted = BTreeSet::new();
        for r in &state.retired {
            if r.retired_at_ms.saturating_add(grace) > now {
                report.waiting_for_grace += 1;
                continue;
            }
            if let (Some(batch), Some(gate)) = (&r.batch, self.gate) {
                if ledger.is_none() {
                    let loaded = gate
                        .loaded(&state.table)
                        .await
                        .map_err(CompactError::Ledger)?;
                    // A batch a backfill re-processed has a revised manifest whose load id
                    // (`<batch>@<revision>`) must be loaded too: its COPY reads these files.
                    let pending = self.pending_revisions(&state.table, &loaded).await?;
                    *ledger = Some(
                        loaded
                            .into_iter()
                            .filter(|b| !pending.contains(b))
                            .collect(),
                    );
                }
                if !ledger.as_ref().is_some_and(|l| l.contains(batch)) {
                    report.waiting_for_load += 1;
                    continue;
                }
            }
            delete(self.lake, &r.path).await?;
            deleted.insert(r.path.clone());
            if deleted.len() == 1 {
                self.crash(CrashPoint::MidCleanup)?;
            }
        }
        if !deleted.is_empty() {
            state.retired.retain(|r| !deleted.contains(&r.path));
            state.write(self.lake).await?;
            report.deleted += deleted.len() as u64;
        }
        Ok(())
    }
}

impl Compactor<'_> {
    /// The batches of `table` with a revised manifest (`_commits/<table>/<batch>@<revision>.json`,
    /// written by `etl backfill`) whose load id is not in `loaded`.
    async fn pending_revisions(
        &self,
        table: &str,
        loaded: &BTreeSet<String>,
    ) -> Result<BTreeSet<String>, CompactError> {
        let prefix = format!("_commits/{table}/");
        Ok(self
            .lake
            .list(&prefix)
            .await?
            .iter()
            .filter_map(|p| p.strip_prefix(&prefix)?.strip_suffix(".json"))
            .filter(|id| id.contains('@') && !loaded.contains(*id))
            .filter_map(|id| id.split('@').next())
            .map(str::to_string)
            .collect())
    }
}

async fn delete(lake: &Lake, path: &str) -> Result<(), CompactError> {
    match lake.store().delete(&ObjectPath::from(path)).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(source) => Err(etl_lake::LakeError::Write {
            path: lake.display(path),
            source,
        }
        .into()),
    }
}
