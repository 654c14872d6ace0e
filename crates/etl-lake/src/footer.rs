//! The columns of a Parquet file in the lake, read from its footer only (two ranged reads, not
//! the whole file): what a reader of older batches needs to know after the schema gained
//! columns (the Redshift loader's COPY maps Parquet columns by position).

use crate::store::Lake;
use crate::LakeError;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStoreExt;
use parquet::file::metadata::ParquetMetaDataReader;

/// Length of a Parquet file's trailer: 4-byte footer length and the `PAR1` magic.
const TRAILER: u64 = 8;

impl Lake {
    /// The top-level column names of the Parquet file at `path` (`size` bytes), in file order.
    pub async fn parquet_columns(&self, path: &str, size: u64) -> Result<Vec<String>, LakeError> {
        let footer = |message: String| LakeError::Footer {
            path: self.display(path),
            message,
        };
        if size < TRAILER + 4 {
            return Err(footer(format!("{size} bytes is too short for Parquet")));
        }
        let location = ObjectPath::from(path);
        let read = |range: std::ops::Range<u64>| {
            let location = location.clone();
            async move {
                self.store()
                    .get_range(&location, range)
                    .await
                    .map_err(|source| LakeError::Read {
                        path: self.display(path),
                        source,
                    })
            }
        };
        let trailer = read(size - TRAILER..size).await?;
        if trailer.len() != TRAILER as usize || &trailer[4..] != b"PAR1" {
            return Err(footer("no PAR1 magic at the end".into()));
        }
        let length = u64::from(u32::from_le_bytes([
            trailer[0], trailer[1], trailer[2], trailer[3],
        ]));
        if length + TRAILER + 4 > size {
            return Err(footer(format!("footer length {length} exceeds the file")));
        }
        let metadata = read(size - TRAILER - length..size - TRAILER).await?;
        let metadata =
            ParquetMetaDataReader::decode_metadata(&metadata).map_err(|e| footer(e.to_string()))?;
        Ok(metadata
            .file_metadata()
            .schema_descr()
            .root_schema()
            .get_fields()
            .iter()
            .map(|f| f.name().to_string())
            .collect())
    }
}
