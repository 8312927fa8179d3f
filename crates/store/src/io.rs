//! Object store calls with errors that name the object, and listings that are always sorted.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::error::{Error, Result};
use crate::layout::Layout;

/// The store and the layout of one table.
#[derive(Clone, Debug)]
pub(crate) struct Io {
    pub store: Arc<dyn ObjectStore>,
    pub layout: Layout,
    /// The first backoff of a retried put-if-absent (then ×4 per attempt).
    pub retry_delay: Duration,
}

/// How a put-if-absent ended.
pub(crate) enum Created {
    Yes,
    AlreadyExists,
}

impl Io {
    pub(crate) async fn get(&self, path: &Path) -> Result<Bytes> {
        let result = self.store.get(path).await.map_err(|e| Error::store("get", path, e))?;
        result.bytes().await.map_err(|e| Error::store("get", path, e))
    }

    /// `None` when the object does not exist.
    pub(crate) async fn get_optional(&self, path: &Path) -> Result<Option<Bytes>> {
        match self.get(path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    pub(crate) async fn head(&self, path: &Path) -> Result<Option<ObjectMeta>> {
        match self.store.head(path).await {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(Error::store("head", path, error)),
        }
    }

    pub(crate) async fn put(&self, path: &Path, bytes: Bytes) -> Result<()> {
        self.store.put(path, PutPayload::from_bytes(bytes)).await.map_err(|e| Error::store("put", path, e))?;
        Ok(())
    }

    /// Put-if-absent. Transient errors are retried a bounded number of times; a retry that
    /// finds the object already there reports `AlreadyExists`, and the caller decides by content
    /// whether it was its own write.
    pub(crate) async fn create(&self, path: &Path, bytes: Bytes) -> Result<Created> {
        let mut attempt = 0u32;
        loop {
            let options = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
            match self.store.put_opts(path, PutPayload::from_bytes(bytes.clone()), options).await {
                Ok(_) => return Ok(Created::Yes),
                Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                    return Ok(Created::AlreadyExists);
                }
                Err(error) if attempt < 3 && is_transient(&error) => {
                    attempt += 1;
                    tracing::warn!(%path, attempt, %error, "put-if-absent failed, retrying");
                    tokio::time::sleep(self.retry_delay * (1 << (2 * (attempt - 1)))).await;
                }
                Err(error) => return Err(Error::store("put-if-absent", path, error)),
            }
        }
    }

    /// Deletes an object; a missing object is fine.
    pub(crate) async fn delete(&self, path: &Path) -> Result<()> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(Error::store("delete", path, error)),
        }
    }

    /// Deletes `paths`, 16 at a time; missing ones count as deleted.
    pub(crate) async fn delete_all(&self, paths: &[Path]) -> Result<()> {
        // Collected first: a stream over a borrowing closure would keep a spawned cleanup from
        // being provably `Send`.
        let deletes: Vec<_> = paths.iter().map(|path| self.delete(path)).collect();
        futures::stream::iter(deletes).buffer_unordered(16).try_collect::<Vec<()>>().await?;
        Ok(())
    }

    pub(crate) async fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.store.rename(from, to).await.map_err(|e| Error::store("rename", format!("{from} -> {to}"), e))
    }

    /// Every object under `prefix`, sorted by location (`LocalFileSystem` lists unsorted).
    pub(crate) async fn list(&self, prefix: &Path) -> Result<Vec<ObjectMeta>> {
        let mut objects: Vec<ObjectMeta> =
            self.store.list(Some(prefix)).try_collect().await.map_err(|e| Error::store("list", prefix, e))?;
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(objects)
    }

    /// Objects under `prefix` after `offset`, sorted.
    pub(crate) async fn list_after(&self, prefix: &Path, offset: &Path) -> Result<Vec<ObjectMeta>> {
        let mut objects: Vec<ObjectMeta> = self
            .store
            .list_with_offset(Some(prefix), offset)
            .try_collect()
            .await
            .map_err(|e| Error::store("list", prefix, e))?;
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(objects)
    }
}

/// Errors worth retrying: the request may not have reached the store.
fn is_transient(error: &object_store::Error) -> bool {
    !matches!(
        error,
        object_store::Error::NotFound { .. }
            | object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. }
            | object_store::Error::NotSupported { .. }
            | object_store::Error::NotImplemented { .. }
            | object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }
            | object_store::Error::InvalidPath { .. }
    )
}
