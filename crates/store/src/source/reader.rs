//! `ObjectReader`: parquet's `AsyncFileReader` over `object_store`, counting the bytes it reads.
//!
//! Footers are read with one suffix request; data ranges go through `ObjectStore::get_ranges`,
//! which coalesces nearby ranges into fewer requests. (parquet's own `ParquetObjectReader` is
//! deprecated in 59.2.)

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, TryFutureExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{AsyncFileReader, MetadataSuffixFetch};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

/// Reads one object as a Parquet file.
#[derive(Clone, Debug)]
pub struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: Option<u64>,
    bytes_read: Arc<AtomicU64>,
}

impl ObjectReader {
    /// A reader of `path`; `bytes_read` accumulates what it fetches.
    pub fn new(store: Arc<dyn ObjectStore>, path: Path, size: Option<u64>, bytes_read: Arc<AtomicU64>) -> Self {
        ObjectReader { store, path, size, bytes_read }
    }

    fn count(&self, bytes: &Bytes) {
        self.bytes_read.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    }
}

fn external(error: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(error))
}

impl AsyncFileReader for ObjectReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            let bytes = self.store.get_range(&self.path, range).map_err(external).await?;
            self.count(&bytes);
            Ok(bytes)
        }
        .boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            let parts = self.store.get_ranges(&self.path, &ranges).await.map_err(external)?;
            for bytes in &parts {
                self.count(bytes);
            }
            Ok(parts)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            // One request for the footer and (usually) the whole metadata.
            let mut reader =
                ParquetMetaDataReader::new().with_arrow_reader_options(options).with_prefetch_hint(Some(64 * 1024));
            let metadata = match self.size {
                Some(size) => {
                    reader.try_load(self, size).await?;
                    reader.finish()?
                }
                None => reader.load_via_suffix_and_finish(self).await?,
            };
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

impl MetadataSuffixFetch for &mut ObjectReader {
    fn fetch_suffix(&mut self, suffix: usize) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        let options = GetOptions { range: Some(GetRange::Suffix(suffix as u64)), ..GetOptions::default() };
        async move {
            let result = self.store.get_opts(&self.path, options).await.map_err(external)?;
            let bytes = result.bytes().await.map_err(external)?;
            self.count(&bytes);
            Ok(bytes)
        }
        .boxed()
    }
}
