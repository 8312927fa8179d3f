//! The race harness: 8 runners commit the same load at once.

use highwater_test_support::{Backend, RaceOutcome, race_harness};

use crate::common::{load_batch, observe};

async fn eight_runners(backend: Backend) {
    let report = race_harness(
        backend,
        8,
        async |store| {
            // The table exists before the race (creating it races too, see `create_race`).
            crate::common::table(&store).await;
        },
        async |store| load_batch(store).await.map_err(|e| e.to_string()),
        async |store| observe(store).await,
    )
    .await;
    let winners = report.outcomes.iter().filter(|o| matches!(o, RaceOutcome::Committed(_))).count();
    assert_eq!(winners, 1, "{:?}", report.outcomes);
    // The runners really raced: at least one lost with a typed conflict (not only runs that
    // started after the winner and found nothing to do).
    let conflicts = report.outcomes.iter().filter(|o| **o == RaceOutcome::Conflict).count();
    assert!(conflicts >= 1, "no runner conflicted: {:?}", report.outcomes);
}

#[tokio::test]
async fn eight_runners_in_memory() {
    eight_runners(Backend::Memory).await;
}

#[tokio::test]
async fn eight_runners_on_local_disk() {
    eight_runners(Backend::Local).await;
}

#[tokio::test]
async fn eight_runners_on_s3() {
    if Backend::s3_available() {
        eight_runners(Backend::S3).await;
    }
}

/// Eight runners creating the same table at once end up on one table.
#[tokio::test]
async fn create_race() {
    for backend in Backend::all() {
        race_harness(
            backend,
            8,
            async |_store| {},
            async |store| load_batch(store).await.map_err(|e| e.to_string()),
            async |store| observe(store).await,
        )
        .await;
    }
}
