//! For random sequences of appends (gaps, duplicates, late gap fills) and runs, the target holds
//! every distinct source id exactly once.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use highwater_sequence::SequenceLoader;
use highwater_store::TableOptions;
use object_store::ObjectStore;
use object_store::memory::InMemory;
use object_store::path::Path;
use proptest::prelude::*;

use crate::batch;

#[derive(Clone, Debug)]
enum Step {
    Append(Vec<i64>),
    Run,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![3 => prop::collection::vec(1i64..60, 1..8).prop_map(Step::Append), 2 => Just(Step::Run)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn every_id_loaded_exactly_once(steps in prop::collection::vec(step(), 1..10)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
            let loader = SequenceLoader::new("memory://unused", "memory://unused")
                .source_store(Arc::clone(&store), Path::from("source"), "source")
                .target_store(Arc::clone(&store), Path::from("target"))
                .table_options(TableOptions { retry_delay: Duration::ZERO, ..TableOptions::default() });
            let mut expected = BTreeSet::new();
            for (index, step) in steps.iter().chain([&Step::Run]).enumerate() {
                match step {
                    Step::Append(ids) => {
                        expected.extend(ids.iter().copied());
                        let bytes = highwater_test_support::data::parquet_bytes(&batch(ids, "v"), 3);
                        object_store::ObjectStoreExt::put(&*store, &Path::from(format!("source/f{index:03}.parquet")), bytes.into()).await.unwrap();
                    }
                    Step::Run => {
                        loader.run().await.unwrap();
                    }
                }
            }
            let mut loaded: Vec<i64> = match highwater_store::Table::open_with(Arc::clone(&store), Path::from("target"), TableOptions::default()).await {
                Ok(table) => {
                    let batch = table.read_all().await.unwrap();
                    arrow_array::cast::AsArray::as_primitive::<arrow_array::types::Int64Type>(batch.column_by_name("sequence_id").unwrap()).values().to_vec()
                }
                Err(_) => Vec::new(),
            };
            loaded.sort_unstable();
            assert_eq!(loaded, expected.into_iter().collect::<Vec<_>>());
        });
    }
}
