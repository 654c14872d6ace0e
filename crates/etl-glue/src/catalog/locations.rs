//! Partition locations: what `etl compact` switches when a partition gets a new generation.

use super::{backend, GlueCatalog};
use crate::table::partition_input;
use etl_aws::glue::types::PartitionInput;
use etl_lake::catalog::CatalogError;
use etl_lake::PartitionValues;

impl GlueCatalog {
    /// The lake location this catalog's tables live under (`s3://bucket/prefix`).
    pub fn lake_location(&self) -> &str {
        &self.lake_location
    }

    /// Whether Athena computes the partitions of `table` by partition projection (table
    /// parameter `projection.enabled` = `true`); then it ignores registered partition locations.
    pub async fn projection_enabled(&self, table: &str) -> Result<bool, CatalogError> {
        let stored = self
            .table(table)
            .await?
            .ok_or_else(|| CatalogError::UnknownTable(table.to_string()))?;
        Ok(stored
            .parameters()
            .and_then(|p| p.get("projection.enabled"))
            .is_some_and(|v| v.eq_ignore_ascii_case("true")))
    }

    /// The registered location of a partition of `table`; `None` if it is not registered.
    pub async fn partition_location(
        &self,
        table: &str,
        p: &PartitionValues,
    ) -> Result<Option<String>, CatalogError> {
        let out = self
            .client
            .get_partition()
            .database_name(&self.database)
            .table_name(table)
            .partition_values(&p.dt)
            .partition_values(&p.hour)
            .send()
            .await;
        match out {
            Ok(out) => Ok(out
                .partition()
                .and_then(|p| p.storage_descriptor())
                .and_then(|sd| sd.location())
                .map(str::to_string)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_entity_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(backend(
                format!("GetPartition {}.{table} {}", self.database, p.path()),
                &e,
            )),
        }
    }

    /// Points a partition of `table` at `location` (an `s3://…/` directory): one
    /// `UpdatePartition` with the table's current storage descriptor and the new location (one
    /// call, so Athena queries planned after it read only the new location), or
    /// `CreatePartition` if it is not registered. A no-op if it points there already.
    pub async fn set_partition_location(
        &self,
        table: &str,
        p: &PartitionValues,
        location: &str,
    ) -> Result<(), CatalogError> {
        let current = self.partition_location(table, p).await?;
        if current.as_deref() == Some(location) {
            return Ok(());
        }
        let stored = self
            .table(table)
            .await?
            .ok_or_else(|| CatalogError::UnknownTable(table.to_string()))?;
        let sd = stored.storage_descriptor().ok_or_else(|| {
            CatalogError::Backend(format!(
                "Glue table {}.{table} has no StorageDescriptor",
                self.database
            ))
        })?;
        let mut input: PartitionInput = partition_input(sd, p)?;
        if let Some(sd) = input.storage_descriptor.as_mut() {
            sd.location = Some(location.to_string());
        }
        let what = |call: &str| format!("{call} {}.{table} {}", self.database, p.path());
        if current.is_some() {
            self.client
                .update_partition()
                .database_name(&self.database)
                .table_name(table)
                .partition_value_list(&p.dt)
                .partition_value_list(&p.hour)
                .partition_input(input)
                .send()
                .await
                .map_err(|e| backend(what("UpdatePartition"), &e))?;
        } else {
            self.client
                .create_partition()
                .database_name(&self.database)
                .table_name(table)
                .partition_input(input)
                .send()
                .await
                .map_err(|e| backend(what("CreatePartition"), &e))?;
        }
        tracing::info!(database = %self.database, table, partition = %p.path(), location, "partition location switched");
        Ok(())
    }
}
