//! `ParquetSink`: streams record batches into a run's data files.
//!
//! Rows are split by Hive partition values (`year=2024/month=01/`) as Spark's `partitionBy`
//! does — partition columns live in the path, not in the files. Within a partition, rows are cut
//! into chunks of `rows_per_file`, each chunk one file named in order; chunks are encoded by
//! `writers` tasks at once, so encoding uses every core while the files stay in arrival order
//! (file `n` holds the rows after file `n - 1`'s). Every file has statistics, so later scans can
//! prune, and snappy (default) or zstd compression.
//!
//! ```text
//! write(batch) ─► split by partition ─► cut into chunks ─► chunk k ─► writer task k % writers
//!                                                                      └─► part-<n>-<run>.parquet
//! ```

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{DataType, Schema, SchemaRef};
use object_store::ObjectStoreExt as _;
use object_store::buffered::BufWriter;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

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

/// When columns are dictionary-encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dictionary {
    /// Columns whose first batch has few distinct values (under 10%) (default): categories get
    /// a dictionary, unique values (emails, ids) skip the cost of building one.
    #[default]
    Auto,
    /// Every column.
    Always,
    /// No column.
    Never,
}

/// How data files are written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkOptions {
    /// A file closes past this many bytes (default 128 MiB).
    pub target_file_bytes: u64,
    /// A file holds at most this many rows (default 512 Ki): a run of more rows writes several
    /// files at once.
    pub rows_per_file: u64,
    /// Rows per row group (default 131 072, as the bench data and many writers use).
    pub row_group_rows: usize,
    /// The codec.
    pub codec: Codec,
    /// Dictionary encoding.
    pub dictionary: Dictionary,
    /// Hive partition columns, in path order.
    pub partition_by: Vec<String>,
    /// Files encoded at once (default: the number of cores, at most 4).
    pub writers: usize,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            target_file_bytes: 128 * 1024 * 1024,
            rows_per_file: 512 * 1024,
            row_group_rows: 128 * 1024,
            codec: Codec::Snappy,
            dictionary: Dictionary::Auto,
            partition_by: Vec::new(),
            writers: std::thread::available_parallelism().map_or(2, |n| n.get().min(4)),
        }
    }
}

impl SinkOptions {
    /// The index in `schema` of each `partition_by` column: an error names one it lacks (a plan
    /// checks this too, so it fails where the run would).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the missing column.
    pub fn partition_columns(&self, schema: &Schema) -> Result<Vec<usize>> {
        self.partition_by
            .iter()
            .map(|name| {
                schema
                    .index_of(name)
                    .map_err(|_| Error::InvalidInput(format!("partition column `{name}` is not a column of the rows")))
            })
            .collect()
    }

    fn builder(&self) -> WriterPropertiesBuilder {
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
    }

    /// Writer properties for files of rows like `sample`.
    pub(crate) fn properties(&self, sample: &RecordBatch) -> WriterProperties {
        let mut builder = self.builder();
        match self.dictionary {
            Dictionary::Always => builder = builder.set_dictionary_enabled(true),
            Dictionary::Never => builder = builder.set_dictionary_enabled(false),
            Dictionary::Auto => {
                builder = builder.set_dictionary_enabled(false);
                for (field, column) in sample.schema().fields().iter().zip(sample.columns()) {
                    if few_distinct(column) {
                        builder = builder.set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), true);
                    }
                }
            }
        }
        builder.build()
    }
}

/// Whether a column's values repeat enough for a dictionary to pay (under 10% distinct).
fn few_distinct(column: &ArrayRef) -> bool {
    let rows = column.len().min(8192);
    if rows < 64 {
        return false;
    }
    let limit = rows / 10;
    let column = column.slice(0, rows);
    let distinct = |values: &mut dyn Iterator<Item = Option<&[u8]>>| {
        let mut seen: HashSet<&[u8]> = HashSet::new();
        for value in values.flatten() {
            seen.insert(value);
            if seen.len() > limit {
                return false;
            }
        }
        true
    };
    match column.data_type() {
        DataType::Utf8 => distinct(&mut column.as_string::<i32>().iter().map(|v| v.map(str::as_bytes))),
        DataType::LargeUtf8 => distinct(&mut column.as_string::<i64>().iter().map(|v| v.map(str::as_bytes))),
        DataType::Utf8View => distinct(&mut column.as_string_view().iter().map(|v| v.map(str::as_bytes))),
        DataType::Binary => distinct(&mut column.as_binary::<i32>().iter()),
        DataType::Dictionary(..) => true,
        _ => false,
    }
}

/// What a writer task is told.
enum Message {
    /// Start the file `<directory>/<stem>-<run>.parquet`.
    Open {
        directory: String,
        stem: String,
    },
    Rows(RecordBatch),
}

struct Writer {
    sender: mpsc::Sender<Message>,
    task: AbortOnDrop<Result<Vec<DataFile>>>,
}

/// A writer task that stops when its sink is dropped (a cancelled run): left running, it would
/// close its file and put it on the store after the run's cleanup.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for AbortOnDrop<T> {
    type Output = std::result::Result<T, tokio::task::JoinError>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// The chunks of one partition directory.
struct Partition {
    /// The writer of the current chunk.
    writer: usize,
    rows_in_chunk: u64,
    chunks: u64,
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
    properties: Option<WriterProperties>,
    writers: Vec<Writer>,
    partitions: BTreeMap<String, Partition>,
    chunks: u64,
    prefix: String,
    /// A folder every file goes under (before partition directories).
    folder: String,
}

impl std::fmt::Debug for ParquetSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetSink")
            .field("schema", &self.schema)
            .field("options", &self.options)
            .field("partitions", &self.partitions.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ParquetSink {
    /// A sink writing rows of `schema` for the run of `target`.
    pub fn new(target: FileTarget, schema: SchemaRef, options: SinkOptions) -> Result<Self> {
        let partition_columns = options.partition_columns(&schema)?;
        let file_columns: Vec<usize> = (0..schema.fields().len()).filter(|i| !partition_columns.contains(i)).collect();
        let file_schema = Arc::new(Schema::new_with_metadata(
            file_columns.iter().map(|&i| schema.field(i).clone()).collect::<Vec<_>>(),
            schema.metadata().clone(),
        ));
        Ok(ParquetSink {
            target,
            schema,
            file_schema,
            file_columns,
            partition_columns,
            options,
            properties: None,
            writers: Vec::new(),
            partitions: BTreeMap::new(),
            chunks: 0,
            prefix: "part".to_owned(),
            folder: String::new(),
        })
    }

    /// Puts every file under `folder/` (before partition directories): a change set's
    /// `inserts/`, `updates/` and `deletes/`.
    #[must_use]
    pub fn with_folder(mut self, folder: &str) -> Self {
        folder.trim_matches('/').clone_into(&mut self.folder);
        self
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
                let rows = arrow_select::take::take_record_batch(batch, &UInt32Array::from(rows))?;
                Ok((directory, rows))
            })
            .collect()
    }

    async fn write_to(&mut self, directory: String, batch: RecordBatch) -> Result<()> {
        let rows = batch.project(&self.file_columns)?;
        let rows = RecordBatch::try_new(Arc::clone(&self.file_schema), rows.columns().to_vec())?;
        if self.properties.is_none() {
            self.properties = Some(self.options.properties(&rows));
        }
        let per_file = self.options.rows_per_file.max(1);
        let mut offset = 0;
        while offset < rows.num_rows() {
            let partition = self.partitions.get(&directory);
            let open_new = partition.is_none_or(|p| p.rows_in_chunk >= per_file);
            if open_new {
                self.open_chunk(&directory).await?;
            }
            let Some(partition) = self.partitions.get_mut(&directory) else { return Ok(()) };
            let room = (per_file - partition.rows_in_chunk).min((rows.num_rows() - offset) as u64) as usize;
            partition.rows_in_chunk += room as u64;
            let writer = partition.writer;
            self.send(writer, Message::Rows(rows.slice(offset, room))).await?;
            offset += room;
        }
        Ok(())
    }

    /// Starts the next chunk of a partition: a new file, named now so names follow row order.
    async fn open_chunk(&mut self, directory: &str) -> Result<()> {
        let lanes = if self.partition_columns.is_empty() { self.options.writers.max(1) } else { 1 };
        let writer = match self.partitions.get(directory) {
            // Partitioned sinks keep one writer per partition; unpartitioned ones rotate.
            Some(partition) if lanes == 1 => partition.writer,
            _ => {
                let next = (self.chunks as usize) % lanes;
                if self.partition_columns.is_empty() && next < self.writers.len() { next } else { self.spawn_writer() }
            }
        };
        self.chunks += 1;
        let chunks = self.partitions.get(directory).map_or(0, |p| p.chunks) + 1;
        self.partitions.insert(directory.to_owned(), Partition { writer, rows_in_chunk: 0, chunks });
        let stem = format!("{}-{:05}", self.prefix, self.target.next_file_number());
        let directory = match (self.folder.is_empty(), directory.is_empty()) {
            (true, _) => directory.to_owned(),
            (false, true) => self.folder.clone(),
            (false, false) => format!("{}/{directory}", self.folder),
        };
        self.send(writer, Message::Open { directory, stem }).await
    }

    fn spawn_writer(&mut self) -> usize {
        // Deep enough to hand a whole chunk over, so that the next chunk's writer starts at once.
        let (sender, receiver) = mpsc::channel(16);
        let target = self.target.clone();
        let schema = Arc::clone(&self.file_schema);
        let properties = self.properties.clone().unwrap_or_else(|| self.options.builder().build());
        let target_bytes = self.options.target_file_bytes;
        let task = AbortOnDrop(tokio::spawn(write_files(receiver, target, schema, properties, target_bytes)));
        self.writers.push(Writer { sender, task });
        self.writers.len() - 1
    }

    async fn send(&mut self, writer: usize, message: Message) -> Result<()> {
        if self.writers[writer].sender.send(message).await.is_ok() {
            return Ok(());
        }
        // The task ended early: its error says why.
        let failed = self.writers.remove(writer);
        match failed.task.await {
            Ok(Err(error)) => Err(error),
            Ok(Ok(_)) => Err(Error::InvalidInput("a file writer stopped early".into())),
            Err(join) => Err(Error::InvalidInput(format!("a file writer failed: {join}"))),
        }
    }

    /// Closes every file and returns the files written (in name order), to register with the
    /// transaction.
    pub async fn finish(self) -> Result<Vec<DataFile>> {
        let mut files = Vec::new();
        for Writer { sender, task } in self.writers {
            drop(sender);
            match task.await {
                Ok(written) => files.extend(written?),
                Err(join) => return Err(Error::InvalidInput(format!("a file writer failed: {join}"))),
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }
}

/// A writer task: writes the files it is told to open, rolling at the target size.
async fn write_files(
    mut receiver: mpsc::Receiver<Message>,
    target: FileTarget,
    schema: SchemaRef,
    properties: WriterProperties,
    target_bytes: u64,
) -> Result<Vec<DataFile>> {
    // `part-00003-<run>.parquet`, continued past the target size as `part-00003.001-<run>.parquet`
    // (which sorts after it and before `part-00004-…`).
    let name = |directory: &str, stem: &str, continuation: u32| {
        let stem = if continuation == 0 { stem.to_owned() } else { format!("{stem}.{continuation:03}") };
        let file = format!("{stem}-{}.parquet", target.run_id());
        if directory.is_empty() { file } else { format!("{directory}/{file}") }
    };
    let open_file = |relative: String| -> Result<(AsyncArrowWriter<BufWriter>, String, u64)> {
        let writer = BufWriter::new(Arc::clone(target.store()), target.location(&relative));
        let writer = AsyncArrowWriter::try_new(writer, Arc::clone(&schema), Some(properties.clone()))
            .map_err(|e| Error::InvalidInput(format!("cannot write {relative}: {e}")))?;
        Ok((writer, relative, 0))
    };
    let mut written = Vec::new();
    let mut open: Option<(AsyncArrowWriter<BufWriter>, String, u64)> = None;
    let mut current = (String::new(), String::new(), 0u32);
    while let Some(message) = receiver.recv().await {
        match message {
            Message::Open { directory, stem } => {
                if let Some(file) = open.take() {
                    written.push(close(&target, file).await?);
                }
                open = Some(open_file(name(&directory, &stem, 0))?);
                current = (directory, stem, 0);
            }
            Message::Rows(rows) => {
                let Some((writer, relative, count)) = open.as_mut() else { continue };
                writer.write(&rows).await.map_err(|e| Error::InvalidInput(format!("writing {relative}: {e}")))?;
                *count += rows.num_rows() as u64;
                let size = (writer.bytes_written() + writer.in_progress_size()) as u64;
                if size >= target_bytes {
                    if let Some(file) = open.take() {
                        written.push(close(&target, file).await?);
                    }
                    current.2 += 1;
                    open = Some(open_file(name(&current.0, &current.1, current.2))?);
                }
            }
        }
    }
    if let Some(file) = open.take() {
        written.push(close(&target, file).await?);
    }
    written.retain(|file| file.rows > 0);
    Ok(written)
}

async fn close(
    target: &FileTarget,
    (writer, relative, rows): (AsyncArrowWriter<BufWriter>, String, u64),
) -> Result<DataFile> {
    let location = target.location(&relative);
    writer.close().await.map_err(|e| Error::InvalidInput(format!("finishing {relative}: {e}")))?;
    if rows == 0 {
        // Nothing was written to it after all: it does not become a file of the table.
        let _ = target.store().delete(&location).await;
        return Ok(DataFile {
            path: relative,
            rows: 0,
            bytes: 0,
            partition_values: BTreeMap::new(),
            publish_from: None,
        });
    }
    let meta = target.store().head(&location).await.map_err(|e| Error::store("head", &location, e))?;
    Ok(DataFile {
        partition_values: partition_values(&relative),
        path: relative,
        rows,
        bytes: meta.size,
        publish_from: None,
    })
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
