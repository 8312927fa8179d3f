//! Stopped runs settle in the background. A run dropped without a commit or an abort — a
//! cancelled future (Ctrl-C, a timeout, a `select!` that lost), or a panic — cleans up after
//! itself: dropping the [`Transaction`] spawns a task that deletes the run's staged files and
//! state. A commit, once begun, is a task of its own that a cancelled caller does not stop
//! halfway. [`stopped_runs_settled`] waits for both kinds of task, so a process that stops its
//! runs can exit with each of them either committed and published whole or gone without trace.
//!
//! [`Transaction`]: crate::Transaction

use std::sync::Mutex;
use std::time::Duration;

use tokio::task::JoinHandle;

/// The cleanup tasks of dropped runs not yet awaited.
static PENDING: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// Runs `work` (a cleanup or a commit) on the current runtime; without one (a transaction
/// dropped outside any runtime) the files stay for vacuum.
pub(crate) fn spawn(run_id: &str, work: impl Future<Output = ()> + Send + 'static) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(run_id, "a run was dropped outside a runtime: vacuum will remove its staged files");
        return;
    };
    let task = runtime.spawn(work);
    if let Ok(mut pending) = PENDING.lock() {
        pending.retain(|task| !task.is_finished());
        pending.push(task);
    }
}

/// Waits, at most `timeout`, for the cleanups of runs dropped so far and for commits that had
/// begun; `true` when all of them finished (a cleanup that fails leaves the files for vacuum
/// and logs a warning).
pub async fn stopped_runs_settled(timeout: Duration) -> bool {
    let tasks: Vec<JoinHandle<()>> = match PENDING.lock() {
        Ok(mut pending) => pending.drain(..).collect(),
        Err(_) => return false,
    };
    tokio::time::timeout(timeout, futures::future::join_all(tasks)).await.is_ok()
}
