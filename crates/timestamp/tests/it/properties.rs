//! For random sequences of appends (ties, late rows inside the lookback, late files) and runs,
//! everything loaded equals the source rows, none twice.

use std::sync::Arc;
use std::time::Duration;

use highwater_store::TableOptions;
use highwater_timestamp::TimestampLoader;
use object_store::ObjectStore;
use object_store::memory::InMemory;
use object_store::path::Path;
use proptest::prelude::*;

use crate::batch;

#[derive(Clone, Debug)]
enum Step {
    /// A new file of rows at these minutes (relative to the newest row so far; negative: late).
    Append(Vec<i64>),
    Run,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => prop::collection::vec(-90i64..5, 1..6).prop_map(Step::Append),
        2 => Just(Step::Run),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn every_row_loaded_exactly_once(steps in prop::collection::vec(step(), 1..12), keyed in any::<bool>(), lookback in any::<bool>()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
            let mut loader = TimestampLoader::new("memory://unused", "memory://unused")
                .source_store(Arc::clone(&store), Path::from("source"), "source")
                .target_store(Arc::clone(&store), Path::from("target"))
                .table_options(TableOptions { retry_delay: Duration::ZERO, ..TableOptions::default() });
            if keyed {
                loader = loader.key(&["id"]);
            }
            if lookback {
                loader = loader.lookback(Duration::from_secs(30 * 60));
            }
            let (mut next_id, mut newest, mut files) = (1i64, 100i64, 0);
            let mut expected = Vec::new();
            for step in steps.iter().chain([&Step::Run]) {
                match step {
                    Step::Append(offsets) => {
                        let rows: Vec<(i64, i64)> = offsets.iter().map(|o| {
                            let row = (next_id, newest + o);
                            next_id += 1;
                            row
                        }).collect();
                        newest = rows.iter().map(|r| r.1).max().unwrap_or(newest).max(newest);
                        expected.extend(rows.iter().map(|r| r.0));
                        let bytes = highwater_test_support::data::parquet_bytes(&batch(&rows, "v"), 2);
                        object_store::ObjectStoreExt::put(&*store, &Path::from(format!("source/f{files:03}.parquet")), bytes.into()).await.unwrap();
                        files += 1;
                    }
                    Step::Run => {
                        loader.run().await.unwrap();
                    }
                }
            }
            let table = highwater_store::Table::open_with(Arc::clone(&store), Path::from("target"), TableOptions::default()).await;
            let mut loaded = match table {
                Ok(table) => {
                    let batch = table.read_all().await.unwrap();
                    arrow_array::cast::AsArray::as_primitive::<arrow_array::types::Int64Type>(batch.column_by_name("id").unwrap()).values().to_vec()
                }
                Err(_) => Vec::new(),
            };
            loaded.sort_unstable();
            expected.sort_unstable();
            assert_eq!(loaded, expected);
        });
    }
}
