//! Store backends for tests: a fresh, isolated store per trial.
//!
//! `InMemory` and `LocalFileSystem` always work. S3 runs against the server at
//! `HIGHWATER_TEST_S3_ENDPOINT` (moto in CI, bucket `HIGHWATER_TEST_S3_BUCKET`, default
//! `highwater`), each trial under a unique prefix. Without the variable the S3 tests skip —
//! except under `CI=true`, where a missing endpoint fails them, so CI can never pass silently
//! without exercising S3.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use tempfile::TempDir;

/// A kind of store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `object_store::memory::InMemory`.
    Memory,
    /// `object_store::local::LocalFileSystem` in a temporary folder.
    Local,
    /// Amazon S3 API at `HIGHWATER_TEST_S3_ENDPOINT`.
    S3,
}

/// A store for one trial; dropping it removes a temporary folder.
pub struct Fixture {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// Keeps the local folder alive.
    pub dir: Option<TempDir>,
}

impl Backend {
    /// Every backend available here: memory and local always, S3 when configured.
    ///
    /// # Panics
    /// Under `CI=true` without `HIGHWATER_TEST_S3_ENDPOINT`.
    pub fn all() -> Vec<Backend> {
        let mut backends = vec![Backend::Memory, Backend::Local];
        if Backend::s3_available() {
            backends.push(Backend::S3);
        }
        backends
    }

    /// Whether the S3 server is configured. Under `CI=true` a missing server is a failure.
    ///
    /// # Panics
    /// Under `CI=true` without `HIGHWATER_TEST_S3_ENDPOINT`.
    pub fn s3_available() -> bool {
        let configured = std::env::var("HIGHWATER_TEST_S3_ENDPOINT").is_ok_and(|v| !v.is_empty());
        assert!(
            configured || std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but HIGHWATER_TEST_S3_ENDPOINT is not set: the S3 tests must run in CI"
        );
        configured
    }

    /// A fresh, empty store.
    ///
    /// # Panics
    /// When the backend cannot be set up (no temporary folder, no S3 configuration).
    pub fn fresh(self) -> Fixture {
        match self {
            Backend::Memory => Fixture { store: Arc::new(InMemory::new()), dir: None },
            Backend::Local => {
                let dir = tempfile::tempdir().expect("a temporary folder");
                let store =
                    LocalFileSystem::new_with_prefix(dir.path()).expect("a local store").with_automatic_cleanup(true);
                Fixture { store: Arc::new(store), dir: Some(dir) }
            }
            Backend::S3 => Fixture { store: s3_store(), dir: None },
        }
    }
}

/// A fresh S3 trial: its URL (`s3://bucket/trials/…`), the environment that lets a process
/// open that URL through `object_store`'s `AmazonS3Builder::from_env` (the `highwater` command's
/// path), and a store rooted at the trial.
#[cfg(feature = "s3")]
pub struct S3Trial {
    /// `s3://bucket/trials/…`.
    pub url: String,
    /// `AWS_*` variables for a child process.
    pub env: Vec<(&'static str, String)>,
    /// The trial's prefix as a store.
    pub store: Arc<dyn ObjectStore>,
}

/// A fresh S3 trial under a unique prefix.
///
/// # Panics
/// Without `HIGHWATER_TEST_S3_ENDPOINT`.
#[cfg(feature = "s3")]
pub fn s3_trial() -> S3Trial {
    let endpoint = std::env::var("HIGHWATER_TEST_S3_ENDPOINT").expect("HIGHWATER_TEST_S3_ENDPOINT");
    let bucket = std::env::var("HIGHWATER_TEST_S3_BUCKET").unwrap_or_else(|_| "highwater".to_owned());
    let prefix = trial_prefix();
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&endpoint)
        .with_bucket_name(&bucket)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_allow_http(true)
        .build()
        .expect("an S3 store");
    S3Trial {
        url: format!("s3://{bucket}/{prefix}"),
        env: vec![
            ("AWS_ENDPOINT", endpoint),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ],
        store: Arc::new(object_store::prefix::PrefixStore::new(store, prefix)),
    }
}

/// A prefix no other trial (of this or another process) uses.
#[cfg_attr(not(feature = "s3"), allow(dead_code))]
fn trial_prefix() -> String {
    static TRIAL: AtomicU64 = AtomicU64::new(0);
    format!(
        "trials/{}-{}-{}",
        std::process::id(),
        TRIAL.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default()
    )
}

#[cfg(feature = "s3")]
fn s3_store() -> Arc<dyn ObjectStore> {
    s3_trial().store
}

#[cfg(not(feature = "s3"))]
fn s3_store() -> Arc<dyn ObjectStore> {
    panic!("highwater-test-support was built without its `s3` feature")
}
