//! Glue as a [`PartitionLocations`] backend: partitions follow the compacted generations.

use crate::PartitionLocations;
use async_trait::async_trait;
use etl_glue::GlueCatalog;
use etl_lake::PartitionValues;

/// Points Glue partitions at compacted generations (`UpdatePartition`), and refuses tables
/// with partition projection (Athena would compute the writer's locations and never read the
/// compacted files, then lose the rows once the replaced files are deleted).
#[derive(Debug)]
pub struct GlueLocations(pub GlueCatalog);

#[async_trait]
impl PartitionLocations for GlueLocations {
    async fn check_table(&self, table: &str) -> Result<(), String> {
        match self.0.projection_enabled(table).await {
            Ok(false) => Ok(()),
            Ok(true) => Err(format!(
                "Glue table {}.{table} uses partition projection (projection.enabled=true), so Athena reads the writer's locations and would never see compacted files; compacted tables need registered partitions: set `[athena] partition_projection = false` and run `etl catalog sync`, or do not compact this table (docs/compaction.md)",
                self.0.database()
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn point(
        &self,
        table: &str,
        partition: &PartitionValues,
        location: &str,
    ) -> Result<(), String> {
        let url = format!(
            "{}/{location}",
            self.0.lake_location().trim_end_matches('/')
        );
        self.0
            .set_partition_location(table, partition, &url)
            .await
            .map_err(|e| e.to_string())
    }
}
