//! `ParquetSink`: streams record batches into a run's data files.
//!
//! Files roll over at a target size; rows are split by Hive partition values
//! (`year=2024/month=01/`) as Spark's `partitionBy` does — partition columns live in the path,
//! not in the files. Every file has statistics (so later scans can prune) and snappy (default)
//! or zstd compression.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, UInt32Array};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{Schema, SchemaRef};
use object_store::buffered::BufWriter;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use serde::{Deserialize, Serialize};

use crate::commit::DataFile;
use crate::error::{Error, Result};
use crate::transaction::{FileTarget, partition_values};

/// The codec of written files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    /// Snappy: fast, the Spark default.
    #[default]
    Snappy,
    /// Zstandard at level 3: smaller files.
    Zstd,
    /// No compression.
    None,
}

/// How data files are written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkOptions {
    /// Roll over to a new file past this many bytes (default 128 MiB).
    pub target_file_bytes: u64,
    /// Rows per row group (default 131 072, as the bench data and many writers use).
    pub row_group_rows: usize,
    /// The codec.
    pub codec: Codec,
    /// Hive partition columns, in path order.
    pub partition_by: Vec<String>,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            target_file_bytes: 128 * 1024 * 1024,
            row_group_rows: 128 * 1024,
            codec: Codec::Snappy,
            partition_by: Vec::new(),
        }
    }
}

impl SinkOptions {
    pub(crate) fn properties(&self) -> WriterProperties {
        let compression = match self.codec {
            Codec::Snappy => Compression::SNAPPY,
            Codec::Zstd => Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()),
            Codec::None => Compression::UNCOMPRESSED,
        };
        WriterProperties::builder()
            .set_compression(compression)
            .set_max_row_group_row_count(Some(self.row_group_rows.max(1)))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_created_by(format!("highwater {}", env!("CARGO_PKG_VERSION")))
            .build()
    }
}

struct OpenFile {
    writer: AsyncArrowWriter<BufWriter>,
    relative: String,
    rows: u64,
}

/// Writes batches of one schema into data files of a run.
pub struct ParquetSink {
    target: FileTarget,
    /// The table schema (partition columns included).
    schema: SchemaRef,
    /// What the files hold (partition columns removed).
    file_schema: SchemaRef,
    file_columns: Vec<usize>,
    partition_columns: Vec<usize>,
    options: SinkOptions,
    properties: WriterProperties,
    open: BTreeMap<String, OpenFile>,
    written: Vec<DataFile>,
    prefix: String,
}

impl std::fmt::Debug for ParquetSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetSink")
            .field("schema", &self.schema)
            .field("options", &self.options)
            .field("open", &self.open.keys().collect::<Vec<_>>())
            .field("written", &self.written.len())
            .finish_non_exhaustive()
    }
}

impl ParquetSink {
    /// A sink writing rows of `schema` for the run of `target`.
    pub fn new(target: FileTarget, schema: SchemaRef, options: SinkOptions) -> Result<Self> {
        let mut partition_columns = Vec::new();
        for name in &options.partition_by {
            let index = schema
                .index_of(name)
                .map_err(|_| Error::InvalidInput(format!("partition column `{name}` is not a column of the rows")))?;
            partition_columns.push(index);
        }
        let file_columns: Vec<usize> = (0..schema.fields().len()).filter(|i| !partition_columns.contains(i)).collect();
        let file_schema = Arc::new(Schema::new_with_metadata(
            file_columns.iter().map(|&i| schema.field(i).clone()).collect::<Vec<_>>(),
            schema.metadata().clone(),
        ));
        Ok(ParquetSink {
            properties: options.properties(),
            target,
            schema,
            file_schema,
            file_columns,
            partition_columns,
            options,
            open: BTreeMap::new(),
            written: Vec::new(),
            prefix: "part".to_owned(),
        })
    }

    /// Names files `<prefix>-<n>-<run>.parquet` (default prefix `part`).
    #[must_use]
    pub fn with_file_prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.prefix);
        self
    }

    /// The schema of the rows it takes.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Writes a batch (of the sink's schema).
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if batch.schema().fields() != self.schema.fields() {
            return Err(Error::InvalidInput(format!(
                "the sink writes rows of {:?}, got {:?}",
                self.schema.fields().iter().map(|f| f.name()).collect::<Vec<_>>(),
                batch.schema().fields().iter().map(|f| f.name()).collect::<Vec<_>>()
            )));
        }
        if self.partition_columns.is_empty() {
            return self.write_to(String::new(), batch.clone()).await;
        }
        for (directory, rows) in self.split_by_partition(batch)? {
            self.write_to(directory, rows).await?;
        }
        Ok(())
    }

    /// Rows grouped by their partition directory (`year=2024/month=01`).
    fn split_by_partition(&self, batch: &RecordBatch) -> Result<Vec<(String, RecordBatch)>> {
        let options = FormatOptions::default().with_null("__HIVE_DEFAULT_PARTITION__");
        let formatters = self
            .partition_columns
            .iter()
            .map(|&i| ArrayFormatter::try_new(batch.column(i).as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        let mut groups: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for row in 0..batch.num_rows() {
            let directory = self
                .partition_columns
                .iter()
                .zip(&formatters)
                .map(|(&i, formatter)| {
                    format!("{}={}", self.schema.field(i).name(), escape(&formatter.value(row).to_string()))
                })
                .collect::<Vec<_>>()
                .join("/");
            groups.entry(directory).or_default().push(row as u32);
        }
        if groups.len() == 1 {
            let (directory, _) = groups.into_iter().next().unwrap_or_default();
            return Ok(vec![(directory, batch.clone())]);
        }
        groups
            .into_iter()
            .map(|(directory, rows)| {
                let indices = UInt32Array::from(rows);
                let columns = batch
                    .columns()
                    .iter()
                    .map(|c| arrow_select::take::take(c.as_ref(), &indices, None))
                    .collect::<Result<Vec<ArrayRef>, _>>()?;
                Ok((directory, RecordBatch::try_new(batch.schema(), columns)?))
            })
            .collect()
    }

    async fn write_to(&mut self, directory: String, batch: RecordBatch) -> Result<()> {
        let rows = batch.project(&self.file_columns)?;
        let rows = RecordBatch::try_new(Arc::clone(&self.file_schema), rows.columns().to_vec())?;
        if !self.open.contains_key(&directory) {
            let file = self.open_file(&directory)?;
            self.open.insert(directory.clone(), file);
        }
        let Some(file) = self.open.get_mut(&directory) else { return Ok(()) };
        file.writer.write(&rows).await.map_err(|e| Error::InvalidInput(format!("writing {}: {e}", file.relative)))?;
        file.rows += rows.num_rows() as u64;
        let size = (file.writer.bytes_written() + file.writer.in_progress_size()) as u64;
        if size >= self.options.target_file_bytes {
            if let Some(file) = self.open.remove(&directory) {
                self.close(file).await?;
            }
        }
        Ok(())
    }

    fn open_file(&mut self, directory: &str) -> Result<OpenFile> {
        let name = format!("{}-{:05}-{}.parquet", self.prefix, self.target.next_file_number(), self.target.run_id());
        let relative = if directory.is_empty() { name } else { format!("{directory}/{name}") };
        let location = self.target.location(&relative);
        let writer = BufWriter::new(Arc::clone(self.target.store()), location);
        let writer = AsyncArrowWriter::try_new(writer, Arc::clone(&self.file_schema), Some(self.properties.clone()))
            .map_err(|e| Error::InvalidInput(format!("cannot write {relative}: {e}")))?;
        Ok(OpenFile { writer, relative, rows: 0 })
    }

    async fn close(&mut self, file: OpenFile) -> Result<()> {
        let OpenFile { writer, relative, rows } = file;
        let location = self.target.location(&relative);
        writer.close().await.map_err(|e| Error::InvalidInput(format!("finishing {relative}: {e}")))?;
        let meta = self.target.store().head(&location).await.map_err(|e| Error::store("head", &location, e))?;
        self.written.push(DataFile {
            partition_values: partition_values(&relative),
            path: relative,
            rows,
            bytes: meta.size,
            publish_from: None,
        });
        Ok(())
    }

    /// Closes every open file and returns the files written, to register with the transaction.
    pub async fn finish(mut self) -> Result<Vec<DataFile>> {
        let open = std::mem::take(&mut self.open);
        for (_, file) in open {
            self.close(file).await?;
        }
        Ok(self.written)
    }
}

/// Hive escaping of a partition value (`/`, `=`, `%` and control characters).
fn escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '/' | '=' | '%' | '#' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') || c.is_control() {
            use std::fmt::Write as _;
            let _ = write!(escaped, "%{:02X}", u32::from(c));
        } else {
            escaped.push(c);
        }
    }
    escaped
}

use object_store::ObjectStoreExt as _;
