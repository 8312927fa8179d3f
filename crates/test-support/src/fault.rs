//! `FaultStore`: an `ObjectStore` wrapper that fails, crashes or slows down on command.
//!
//! Every operation is numbered from 0 in the order it starts. A fault fails one operation, or
//! "crashes" the process at one operation: that operation and every later one fail, as if the
//! process had died there. A crash either happens *before* the operation reaches the store, or
//! *after* it (the write lands, the reply is lost) — the two cases a commit protocol must survive.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, UploadPart,
};

/// The kind of an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// `put_opts`.
    Put,
    /// `get_opts` of data.
    Get,
    /// `get_opts` with `head`.
    Head,
    /// `list`, `list_with_offset`, `list_with_delimiter`.
    List,
    /// One deleted location.
    Delete,
    /// `copy_opts`.
    Copy,
    /// `rename_opts`.
    Rename,
    /// Starting a multipart upload, uploading a part, or completing it.
    Multipart,
}

/// A fault to inject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Fail operation number `op` only (before it reaches the store).
    FailAt(u64),
    /// Crash at operation `op`: it and every later operation fail. With `after`, operation `op`
    /// itself is carried out first and only its reply is lost.
    CrashAt {
        /// The operation number.
        op: u64,
        /// Whether the operation lands before the crash.
        after: bool,
    },
    /// Lose the reply of the next `times` operations of `kind` whose path contains
    /// `path_contains`: the operation lands, the caller sees an error (an ambiguous failure).
    LoseReplyMatching {
        /// The kind, or any.
        kind: Option<OpKind>,
        /// A substring of the path.
        path_contains: String,
        /// How many times.
        times: u64,
    },
    /// Fail the next `times` operations of `kind` (any kind when `None`) whose path contains
    /// `path_contains`.
    FailMatching {
        /// The kind, or any.
        kind: Option<OpKind>,
        /// A substring of the path.
        path_contains: String,
        /// How many times.
        times: u64,
    },
    /// Crash at an operation of `kind` (any kind when `None`) whose path contains
    /// `path_contains`: the first `skip` matching operations go through, the next one crashes
    /// (`skip: 0` crashes at the first match). It and every later operation fail, as with
    /// [`Fault::CrashAt`]; with `after`, the crashing operation lands before its reply is lost.
    /// A copy or rename matches on `"<from> -> <to>"`.
    CrashMatching {
        /// The kind, or any.
        kind: Option<OpKind>,
        /// A substring of the path.
        path_contains: String,
        /// Matching operations to let through before the crash.
        skip: u64,
        /// Whether the crashing operation lands before the crash.
        after: bool,
    },
}

#[derive(Debug, Default)]
struct State {
    next_op: u64,
    faults: Vec<Fault>,
    crashed: bool,
    latency: Option<Duration>,
    log: Vec<(OpKind, String)>,
}

enum Decision {
    Proceed,
    FailBefore(object_store::Error),
    FailAfter(object_store::Error),
}

/// An `ObjectStore` that injects faults into another.
#[derive(Clone)]
pub struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

impl fmt::Display for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

fn injected(op: u64, kind: OpKind, path: &str, why: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "FaultStore",
        source: format!("injected {why} at operation {op} ({kind:?} {path})").into(),
    }
}

impl FaultStore {
    /// Wraps `inner` with no faults.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        FaultStore { inner, state: Arc::default() }
    }

    /// Adds a fault.
    #[must_use]
    pub fn with_fault(self, fault: Fault) -> Self {
        self.inject(fault);
        self
    }

    /// Adds a fault to a store in use.
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// Delays every operation (makes concurrent runners interleave even on `InMemory`).
    #[must_use]
    pub fn with_latency(self, latency: Duration) -> Self {
        self.lock().latency = Some(latency);
        self
    }

    /// Operations started so far.
    pub fn operations(&self) -> u64 {
        self.lock().next_op
    }

    /// The kind and path of every operation so far.
    pub fn operation_log(&self) -> Vec<(OpKind, String)> {
        self.lock().log.clone()
    }

    /// Whether a crash fault has fired.
    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// The wrapped store (the same data, without faults: "after the restart").
    pub fn inner(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.inner)
    }

    /// This store as a trait object.
    pub fn into_dyn(self) -> Arc<dyn ObjectStore> {
        Arc::new(self)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn decide(&self, kind: OpKind, path: &str) -> Decision {
        let (decision, latency) = {
            let mut state = self.lock();
            let op = state.next_op;
            state.next_op += 1;
            state.log.push((kind, path.to_owned()));
            let mut decision = if state.crashed {
                Decision::FailBefore(injected(op, kind, path, "crash (process already dead)"))
            } else {
                Decision::Proceed
            };
            let mut crash = false;
            for fault in &mut state.faults {
                if !matches!(decision, Decision::Proceed) {
                    break;
                }
                match fault {
                    Fault::FailAt(at) if *at == op => {
                        decision = Decision::FailBefore(injected(op, kind, path, "failure"));
                    }
                    Fault::CrashAt { op: at, after } if *at == op => {
                        crash = true;
                        decision = if *after {
                            Decision::FailAfter(injected(op, kind, path, "crash after the operation"))
                        } else {
                            Decision::FailBefore(injected(op, kind, path, "crash before the operation"))
                        };
                    }
                    Fault::LoseReplyMatching { kind: wanted, path_contains, times }
                        if *times > 0 && wanted.is_none_or(|w| w == kind) && path.contains(path_contains.as_str()) =>
                    {
                        *times -= 1;
                        decision = Decision::FailAfter(injected(op, kind, path, "lost reply"));
                    }
                    Fault::FailMatching { kind: wanted, path_contains, times }
                        if *times > 0 && wanted.is_none_or(|w| w == kind) && path.contains(path_contains.as_str()) =>
                    {
                        *times -= 1;
                        decision = Decision::FailBefore(injected(op, kind, path, "failure"));
                    }
                    Fault::CrashMatching { kind: wanted, path_contains, skip, after }
                        if wanted.is_none_or(|w| w == kind) && path.contains(path_contains.as_str()) =>
                    {
                        if *skip > 0 {
                            *skip -= 1;
                        } else {
                            crash = true;
                            decision = if *after {
                                Decision::FailAfter(injected(op, kind, path, "crash after the matching operation"))
                            } else {
                                Decision::FailBefore(injected(op, kind, path, "crash before the matching operation"))
                            };
                        }
                    }
                    _ => {}
                }
            }
            state.crashed |= crash;
            (decision, state.latency)
        };
        if let Some(latency) = latency {
            tokio::time::sleep(latency).await;
        }
        decision
    }
}

/// Runs `operation` unless the decision says otherwise.
macro_rules! guarded {
    ($self:ident, $kind:expr, $path:expr, $operation:expr) => {
        match $self.decide($kind, $path).await {
            Decision::Proceed => $operation,
            Decision::FailBefore(error) => Err(error),
            Decision::FailAfter(error) => {
                let _ = $operation;
                Err(error)
            }
        }
    };
}

#[async_trait]
impl ObjectStore for FaultStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        guarded!(self, OpKind::Put, location.as_ref(), self.inner.put_opts(location, payload, opts).await)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let upload =
            guarded!(self, OpKind::Multipart, location.as_ref(), self.inner.put_multipart_opts(location, opts).await)?;
        Ok(Box::new(FaultUpload { store: self.clone(), path: location.to_string(), inner: upload }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        let kind = if options.head { OpKind::Head } else { OpKind::Get };
        guarded!(self, kind, location.as_ref(), self.inner.get_opts(location, options).await)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        guarded!(self, OpKind::Get, location.as_ref(), self.inner.get_ranges(location, ranges).await)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let store = self.clone();
        locations
            .then(move |location| {
                let store = store.clone();
                async move {
                    let location = location?;
                    guarded!(store, OpKind::Delete, location.as_ref(), store.inner.delete(&location).await)?;
                    Ok(location)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let store = self.clone();
        let prefix = prefix.cloned();
        futures::stream::once(async move {
            let path = prefix.as_ref().map(ToString::to_string).unwrap_or_default();
            match store.decide(OpKind::List, &path).await {
                Decision::Proceed => store.inner.list(prefix.as_ref()),
                Decision::FailBefore(error) | Decision::FailAfter(error) => {
                    futures::stream::once(async { Err(error) }).boxed()
                }
            }
        })
        .flatten()
        .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let store = self.clone();
        let (prefix, offset) = (prefix.cloned(), offset.clone());
        futures::stream::once(async move {
            let path = prefix.as_ref().map(ToString::to_string).unwrap_or_default();
            match store.decide(OpKind::List, &path).await {
                Decision::Proceed => store.inner.list_with_offset(prefix.as_ref(), &offset),
                Decision::FailBefore(error) | Decision::FailAfter(error) => {
                    futures::stream::once(async { Err(error) }).boxed()
                }
            }
        })
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let path = prefix.map(ToString::to_string).unwrap_or_default();
        guarded!(self, OpKind::List, &path, self.inner.list_with_delimiter(prefix).await)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        guarded!(self, OpKind::Copy, &format!("{from} -> {to}"), self.inner.copy_opts(from, to, options).await)
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> object_store::Result<()> {
        guarded!(self, OpKind::Rename, &format!("{from} -> {to}"), self.inner.rename_opts(from, to, options).await)
    }
}

/// A multipart upload whose parts and completion are operations of the fault store.
#[derive(Debug)]
struct FaultUpload {
    store: FaultStore,
    path: String,
    inner: Box<dyn MultipartUpload>,
}

#[async_trait]
impl MultipartUpload for FaultUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let store = self.store.clone();
        let path = self.path.clone();
        let part = self.inner.put_part(data);
        Box::pin(async move {
            match store.decide(OpKind::Multipart, &path).await {
                Decision::Proceed => part.await,
                Decision::FailBefore(error) => Err(error),
                Decision::FailAfter(error) => {
                    let _ = part.await;
                    Err(error)
                }
            }
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let store = self.store.clone();
        let path = self.path.clone();
        match store.decide(OpKind::Multipart, &path).await {
            Decision::Proceed => self.inner.complete().await,
            Decision::FailBefore(error) => Err(error),
            Decision::FailAfter(error) => {
                let _ = self.inner.complete().await;
                Err(error)
            }
        }
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.abort().await
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    #[tokio::test]
    async fn crash_fails_every_later_operation() {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let store = FaultStore::new(Arc::clone(&inner)).with_fault(Fault::CrashAt { op: 1, after: true });
        store.put(&Path::from("a"), PutPayload::from_static(b"1")).await.unwrap();
        assert!(store.put(&Path::from("b"), PutPayload::from_static(b"2")).await.is_err());
        assert!(store.get(&Path::from("a")).await.is_err(), "dead after the crash");
        // The write of the crashing operation landed; only its reply was lost.
        assert!(inner.head(&Path::from("b")).await.is_ok());
        assert_eq!(store.operations(), 3);
        assert!(store.crashed());
    }

    #[tokio::test]
    async fn failures_by_kind_and_path() {
        let store = FaultStore::new(Arc::new(InMemory::new())).with_fault(Fault::FailMatching {
            kind: Some(OpKind::Put),
            path_contains: "log/".into(),
            times: 1,
        });
        assert!(store.put(&Path::from("x/log/1"), PutPayload::from_static(b"1")).await.is_err());
        assert!(store.put(&Path::from("x/log/1"), PutPayload::from_static(b"1")).await.is_ok());
        assert!(store.put(&Path::from("x/data"), PutPayload::from_static(b"1")).await.is_ok());
        assert!(matches!(store.operation_log()[0].0, OpKind::Put));
    }

    #[tokio::test]
    async fn crash_at_a_matching_operation() {
        for after in [false, true] {
            let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
            let store = FaultStore::new(Arc::clone(&inner)).with_fault(Fault::CrashMatching {
                kind: Some(OpKind::Put),
                path_contains: "log/".into(),
                skip: 1,
                after,
            });
            // Other kinds and other paths do not count; the first matching put is let through.
            store.put(&Path::from("x/data"), PutPayload::from_static(b"d")).await.unwrap();
            store.head(&Path::from("x/data")).await.unwrap();
            store.put(&Path::from("x/log/0"), PutPayload::from_static(b"0")).await.unwrap();
            store.get(&Path::from("x/log/0")).await.unwrap();
            assert!(!store.crashed());
            // The second matching put crashes.
            assert!(store.put(&Path::from("x/log/1"), PutPayload::from_static(b"1")).await.is_err());
            assert!(store.crashed());
            assert_eq!(inner.head(&Path::from("x/log/1")).await.is_ok(), after, "landed iff after (after: {after})");
            // Dead: every later operation fails, whatever it is.
            assert!(store.put(&Path::from("x/other"), PutPayload::from_static(b"o")).await.is_err());
            assert!(store.get(&Path::from("x/data")).await.is_err());
            assert!(inner.head(&Path::from("x/other")).await.is_err());
            assert_eq!(store.operations(), 7);
        }
    }

    #[tokio::test]
    async fn crash_matching_any_kind_matches_renames_by_their_paths() {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        inner.put(&Path::from("staging/a.staged"), PutPayload::from_static(b"a")).await.unwrap();
        let store = FaultStore::new(Arc::clone(&inner)).with_fault(Fault::CrashMatching {
            kind: None,
            path_contains: "-> final/".into(),
            skip: 0,
            after: true,
        });
        // A get of the staged file does not match; the rename into `final/` does.
        store.get(&Path::from("staging/a.staged")).await.unwrap();
        assert!(store.rename(&Path::from("staging/a.staged"), &Path::from("final/a")).await.is_err());
        assert!(store.crashed());
        assert!(inner.head(&Path::from("final/a")).await.is_ok(), "the rename landed, its reply was lost");
        assert_eq!(store.operation_log()[1], (OpKind::Rename, "staging/a.staged -> final/a".to_owned()));
    }
}
