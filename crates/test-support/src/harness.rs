//! The crash and race harnesses every commit path is tested with.
//!
//! Both take async closures over an `Arc<dyn ObjectStore>`:
//! - `setup` prepares a fresh store (source data, an existing table) and is not under test;
//! - `run` is one run of the code under test, as a new process would do it (open, recover, load,
//!   commit); it must be safe to repeat — a second run after a successful one finds nothing new;
//! - `observe` returns what must not depend on crashes or races (rows, watermark, live files by
//!   content), and panics itself if it sees anything uncommitted (files that are not live).

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;

use crate::backend::Backend;
use crate::fault::{Fault, FaultStore};

/// What the crash harness did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrashReport {
    /// Store operations of a clean run.
    pub operations: u64,
    /// Crash trials run (two per operation: before and after it).
    pub trials: u64,
}

/// Crashes a run at every operation of a clean run, before and after the operation lands; after
/// each crash, "restarts" (reruns on the same store without faults) and checks that the outcome
/// equals a clean run's.
///
/// # Panics
/// When a rerun fails or an outcome differs from the clean run's.
pub async fn crash_harness<T, Setup, Run, Observe>(
    backend: Backend,
    setup: Setup,
    run: Run,
    observe: Observe,
) -> CrashReport
where
    T: PartialEq + Debug,
    Setup: AsyncFn(Arc<dyn ObjectStore>),
    Run: AsyncFn(Arc<dyn ObjectStore>) -> Result<(), String>,
    Observe: AsyncFn(Arc<dyn ObjectStore>) -> T,
{
    let clean = backend.fresh();
    setup(Arc::clone(&clean.store)).await;
    let counting = FaultStore::new(Arc::clone(&clean.store));
    run(counting.clone().into_dyn()).await.unwrap_or_else(|error| panic!("the clean run failed: {error}"));
    let operations = counting.operations();
    let expected = observe(Arc::clone(&clean.store)).await;
    // The run is idempotent: running it again changes nothing.
    run(Arc::clone(&clean.store)).await.unwrap_or_else(|error| panic!("a repeated clean run failed: {error}"));
    assert_eq!(observe(Arc::clone(&clean.store)).await, expected, "a second clean run changed the outcome");

    let mut trials = 0;
    for op in 0..operations {
        for after in [false, true] {
            let fixture = backend.fresh();
            setup(Arc::clone(&fixture.store)).await;
            let faulty = FaultStore::new(Arc::clone(&fixture.store)).with_fault(Fault::CrashAt { op, after });
            let outcome = run(faulty.into_dyn()).await;
            // The process is dead; a new one runs on the same store.
            run(Arc::clone(&fixture.store)).await.unwrap_or_else(|error| {
                panic!("rerun after a crash at operation {op} (after: {after}, first run: {outcome:?}) failed: {error}")
            });
            let observed = observe(Arc::clone(&fixture.store)).await;
            assert_eq!(observed, expected, "crash at operation {op} (after: {after}; first run: {outcome:?})");
            trials += 1;
        }
    }
    CrashReport { operations, trials }
}

/// How one racing run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RaceOutcome {
    /// It committed this version.
    Committed(u64),
    /// It found nothing to do.
    NothingToDo,
    /// It lost the race for a version (a typed conflict; nothing of it is visible).
    Conflict,
}

/// What the race harness saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaceReport {
    /// The outcome of each runner.
    pub outcomes: Vec<RaceOutcome>,
}

/// Runs `runners` copies of `run` at once on one store (every store operation delayed so that
/// they interleave), then checks: each committed version was committed by exactly one runner, the
/// others got a conflict or had nothing to do, and nothing of a loser is visible; then reruns
/// every loser and checks the outcome equals one clean run's — rerunning duplicates nothing.
///
/// # Panics
/// When any of those checks fails.
pub async fn race_harness<T, Setup, Run, Observe>(
    backend: Backend,
    runners: usize,
    setup: Setup,
    run: Run,
    observe: Observe,
) -> RaceReport
where
    T: PartialEq + Debug,
    Setup: AsyncFn(Arc<dyn ObjectStore>),
    Run: AsyncFn(Arc<dyn ObjectStore>) -> Result<RaceOutcome, String>,
    Observe: AsyncFn(Arc<dyn ObjectStore>) -> T,
{
    let clean = backend.fresh();
    setup(Arc::clone(&clean.store)).await;
    run(Arc::clone(&clean.store)).await.unwrap_or_else(|error| panic!("the clean run failed: {error}"));
    let expected = observe(Arc::clone(&clean.store)).await;

    let fixture = backend.fresh();
    setup(Arc::clone(&fixture.store)).await;
    let latency = match backend {
        Backend::Memory => Duration::from_millis(1),
        Backend::Local | Backend::S3 => Duration::ZERO,
    };
    let racing: Vec<_> = (0..runners)
        .map(|_| {
            let store = FaultStore::new(Arc::clone(&fixture.store)).with_latency(latency).into_dyn();
            let run = &run;
            async move { run(store).await }
        })
        .collect();
    let outcomes: Vec<RaceOutcome> = futures::future::join_all(racing)
        .await
        .into_iter()
        .map(|outcome| {
            outcome.unwrap_or_else(|error| panic!("a racing run failed with something other than a conflict: {error}"))
        })
        .collect();
    let mut versions: Vec<u64> =
        outcomes.iter().filter_map(|o| if let RaceOutcome::Committed(v) = o { Some(*v) } else { None }).collect();
    assert!(!versions.is_empty(), "no runner committed: {outcomes:?}");
    let committed = versions.len();
    versions.sort_unstable();
    versions.dedup();
    assert_eq!(versions.len(), committed, "a version was committed twice: {outcomes:?}");
    // Observing checks that nothing of a loser is visible; the losers' work is not done yet.
    let _ = observe(Arc::clone(&fixture.store)).await;
    for outcome in &outcomes {
        if *outcome == RaceOutcome::Conflict {
            match run(Arc::clone(&fixture.store)).await {
                Ok(RaceOutcome::Conflict) => panic!("a rerun alone still conflicted"),
                Ok(_) => {}
                Err(error) => panic!("a loser's rerun failed: {error}"),
            }
        }
    }
    assert_eq!(
        observe(Arc::clone(&fixture.store)).await,
        expected,
        "after the race and the losers' reruns ({outcomes:?})"
    );
    RaceReport { outcomes }
}
