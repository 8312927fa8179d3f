//! Deterministic process deaths for tests (feature `crash-points`, never in a release build):
//! with `HIGHWATER_CRASH_AFTER_OPS=N` set, the process aborts right after its `N`-th store
//! operation lands — no unwinding, no destructors, no flush, as if killed. Counted over every
//! store opened from a location, in the order operations complete.
//!
//! With `HIGHWATER_PAUSE_AFTER=staging` (or `log`) set, the first write of a staged file (or of
//! a commit) pauses once it has landed, announced on stderr, for `HIGHWATER_PAUSE_MS` (default a
//! minute): a test interrupts a run that has staged data and not committed, or whose commit is
//! under way.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, RenameOptions,
};

/// The environment variable naming the operation to die after.
pub const CRASH_AFTER_OPS: &str = "HIGHWATER_CRASH_AFTER_OPS";
/// The environment variable naming the write to pause after: `staging` or `log`.
pub const PAUSE_AFTER: &str = "HIGHWATER_PAUSE_AFTER";
/// The environment variable giving the pause's length in milliseconds.
pub const PAUSE_MS: &str = "HIGHWATER_PAUSE_MS";
/// What the pause prints on stderr when it begins.
pub const PAUSED: &str = "highwater: paused after a write";

static OPERATIONS: AtomicU64 = AtomicU64::new(0);
static PAUSED_ONCE: AtomicBool = AtomicBool::new(false);

/// `store` counted (or pausing), when a variable is set.
pub(crate) fn wrap(store: Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> {
    let limit = std::env::var(CRASH_AFTER_OPS).ok().and_then(|n| n.parse::<u64>().ok());
    let pause = std::env::var(PAUSE_AFTER).ok().map(|folder| {
        let millis = std::env::var(PAUSE_MS).ok().and_then(|n| n.parse().ok()).unwrap_or(60_000);
        (format!("{}/{folder}/", crate::layout::META_DIR), std::time::Duration::from_millis(millis))
    });
    if limit.is_none() && pause.is_none() {
        return store;
    }
    Arc::new(CrashPoints { inner: store, limit: limit.unwrap_or(u64::MAX), pause })
}

#[derive(Debug)]
struct CrashPoints {
    inner: Arc<dyn ObjectStore>,
    limit: u64,
    /// The folder (`_highwater/staging/`) whose first write pauses, and for how long.
    pause: Option<(String, std::time::Duration)>,
}

impl std::fmt::Display for CrashPoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.inner)
    }
}

/// Counts a landed operation; dies at the limit.
fn landed(limit: u64) {
    if OPERATIONS.fetch_add(1, Ordering::SeqCst) + 1 >= limit {
        eprintln!("highwater: {CRASH_AFTER_OPS}={limit} reached: aborting");
        std::process::abort();
    }
}

#[async_trait]
impl ObjectStore for CrashPoints {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let result = self.inner.put_opts(location, payload, opts).await;
        landed(self.limit);
        if let Some((folder, pause)) = &self.pause {
            if location.as_ref().contains(folder.as_str()) && !PAUSED_ONCE.swap(true, Ordering::SeqCst) {
                eprintln!("{PAUSED} to {location}");
                tokio::time::sleep(*pause).await;
            }
        }
        result
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        // Uploads count when they complete (in `MultipartUpload`, through the inner store).
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        let result = self.inner.get_opts(location, options).await;
        landed(self.limit);
        result
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        let result = self.inner.get_ranges(location, ranges).await;
        landed(self.limit);
        result
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let limit = self.limit;
        self.inner
            .delete_stream(locations)
            .map(move |deleted| {
                landed(limit);
                deleted
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        landed(self.limit);
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        landed(self.limit);
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let result = self.inner.list_with_delimiter(prefix).await;
        landed(self.limit);
        result
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        let result = self.inner.copy_opts(from, to, options).await;
        landed(self.limit);
        result
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> object_store::Result<()> {
        let result = self.inner.rename_opts(from, to, options).await;
        landed(self.limit);
        result
    }
}
