//! `[compaction]` of the configuration file: how `etl compact` merges the small Parquet files
//! of closed partition-hours (`docs/compaction.md`).

use serde::Deserialize;

/// `[compaction]` of the configuration file. `etl compact --older-than` overrides
/// `older_than`.
///
/// ```toml
/// [compaction]
/// target_file_bytes = 134217728   # compacted files close at about 128 MiB
/// row_group_rows = 1048576        # rows per row group (Athena reads a row group per split)
/// older_than = "2h"               # compact partition-hours that ended at least this long ago
/// grace_period = "6h"             # delete replaced files this long after the switch
/// wait_for_load = true            # keep a batch's files until the warehouse has loaded it
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompactionConfig {
    /// A compacted file is closed, and the next one started, once it reaches about this many
    /// bytes. Default: [`DEFAULT_TARGET_FILE_BYTES`] (128 MiB, what Athena reads best).
    #[serde(default = "default_target_file_bytes")]
    pub target_file_bytes: usize,
    /// Most rows in one row group of a compacted file. Default: [`DEFAULT_ROW_GROUP_ROWS`]
    /// (about 16–64 MiB of event rows: few, large row groups per file for Athena).
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: usize,
    /// Only partition-hours that ended at least this long ago are compacted (late events still
    /// arriving are folded in by a later run anyway): a number and a unit, `90s`, `15m`, `2h`,
    /// `7d`. Default: [`DEFAULT_OLDER_THAN`].
    #[serde(default = "default_older_than")]
    pub older_than: String,
    /// Files a compaction replaced are deleted this long after the switch; must exceed the
    /// longest query (Athena's default DML timeout is 30 minutes). Default:
    /// [`DEFAULT_GRACE_PERIOD`].
    #[serde(default = "default_grace_period")]
    pub grace_period: String,
    /// With a Redshift warehouse configured (`[warehouse.redshift]` or the flags), keep a
    /// replaced writer file until its batch is in the load ledger (the loader copies a batch's
    /// files by the paths in its manifest). Default: `true`.
    #[serde(default = "default_true")]
    pub wait_for_load: bool,
}

/// Default of `compaction.target_file_bytes`: 128 MiB.
pub const DEFAULT_TARGET_FILE_BYTES: usize = 128 << 20;
/// Default of `compaction.row_group_rows`: 1 Mi rows.
pub const DEFAULT_ROW_GROUP_ROWS: usize = 1 << 20;
/// Default of `compaction.older_than`.
pub const DEFAULT_OLDER_THAN: &str = "2h";
/// Default of `compaction.grace_period`.
pub const DEFAULT_GRACE_PERIOD: &str = "6h";

fn default_target_file_bytes() -> usize {
    DEFAULT_TARGET_FILE_BYTES
}
fn default_row_group_rows() -> usize {
    DEFAULT_ROW_GROUP_ROWS
}
fn default_older_than() -> String {
    DEFAULT_OLDER_THAN.into()
}
fn default_grace_period() -> String {
    DEFAULT_GRACE_PERIOD.into()
}
fn default_true() -> bool {
    true
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            target_file_bytes: DEFAULT_TARGET_FILE_BYTES,
            row_group_rows: DEFAULT_ROW_GROUP_ROWS,
            older_than: DEFAULT_OLDER_THAN.into(),
            grace_period: DEFAULT_GRACE_PERIOD.into(),
            wait_for_load: true,
        }
    }
}

impl CompactionConfig {
    /// Checks the fields; errors name the field and the fix.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.target_file_bytes < 1 << 20 {
            anyhow::bail!(
                "compaction.target_file_bytes = {} is below 1 MiB; use e.g. 134217728 (128 MiB)",
                self.target_file_bytes
            );
        }
        if self.row_group_rows == 0 {
            anyhow::bail!("compaction.row_group_rows must be at least 1; use e.g. 1048576");
        }
        etl_compact::parse_duration(&self.older_than)
            .map_err(|e| anyhow::anyhow!("compaction.older_than: {e}"))?;
        etl_compact::parse_duration(&self.grace_period)
            .map_err(|e| anyhow::anyhow!("compaction.grace_period: {e}"))?;
        Ok(())
    }
}
