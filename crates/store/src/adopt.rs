//! Adopting an existing Parquet folder (a `PySpark` job's output) as version 0 of a table.
//!
//! Nothing is rewritten: the files stay where they are and become the table's live files; the
//! schema comes from their footers (they must agree), Hive partition values from their paths,
//! and a ledger of the adopted files (size, etag) is kept as the `adopted` state file.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_schema::{Field, Schema};
use bytes::Bytes;
use chrono::Utc;
use highwater_core::hash::HASH_SPEC_VERSION;
use object_store::ObjectStore;
use object_store::path::Path;

use crate::commit::{Commit, DataFile, FORMAT_VERSION, Operation, PersistedSchema};
use crate::error::{Error, Result};
use crate::io::Created;
use crate::layout::Layout;
use crate::location::{local_folder, store_for};
use crate::source::{Ledger, Scan, ScanOptions, Source, SourceOptions};
use crate::table::{Table, TableOptions};
use crate::transaction::new_run_id;

impl Table {
    /// Makes the Parquet folder at `location` a table: version 0 holds its files as they are.
    pub async fn adopt(location: &str, options: TableOptions) -> Result<Self> {
        let (store, root) = store_for(location)?;
        let mut table = Self::adopt_with(store, root, location, options).await?;
        table.local_folder = local_folder(location);
        Ok(table)
    }

    /// Adopts the folder at `root` of `store`; `label` names it in messages.
    pub async fn adopt_with(
        store: Arc<dyn ObjectStore>,
        root: Path,
        label: &str,
        options: TableOptions,
    ) -> Result<Self> {
        let table = Table::new(Arc::clone(&store), root.clone(), options);
        if let Some(version) = table.latest_version().await? {
            return Err(Error::TableExists { location: table.location().to_owned(), version });
        }
        let source = Source::from_store(store, root, label, SourceOptions::default());
        let listing = source.list().await?;
        if listing.files.is_empty() {
            return Err(Error::InvalidInput(format!("nothing to adopt: no Parquet files under {label}")));
        }
        // Footers only: the scan plan reads them and checks that every file agrees.
        let plan = Scan::plan(&listing, &listing.files, ScanOptions::default()).await?;
        let mut fields: Vec<Field> = plan.schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        for field in &mut fields {
            if listing.files.iter().any(|f| f.partitions.contains_key(field.name())) {
                *field = field.clone().with_nullable(true);
            }
        }
        let schema = Schema::new(fields);
        let files: Vec<DataFile> = plan
            .files
            .iter()
            .map(|planned| DataFile {
                path: planned.file.relative.clone(),
                rows: planned.metadata.metadata().file_metadata().num_rows() as u64,
                bytes: planned.file.size,
                partition_values: planned.file.partitions.clone(),
                publish_from: None,
            })
            .collect();
        let run_id = new_run_id();
        table.probe_put_if_absent(&run_id).await?;
        let ledger = Ledger::of(&listing).to_bytes()?;
        let mut state = BTreeMap::new();
        state.insert(
            "adopted".to_owned(),
            table.write_state_at(&Layout::state_file(0, &run_id, "adopted"), ledger).await?,
        );
        let (added, added_spill) = if files.len() > table.options.spill_threshold {
            let spill = table
                .write_state_at(
                    &Layout::state_file(0, &run_id, "added"),
                    Bytes::from(serde_json::to_vec(&files).unwrap_or_default()),
                )
                .await?;
            (Vec::new(), Some(spill))
        } else {
            (files, None)
        };
        let now = Utc::now();
        let commit = Commit {
            format_version: FORMAT_VERSION,
            version: 0,
            run_id: run_id.clone(),
            operation: Operation::Adopt,
            pattern: None,
            started_at: now,
            finished_at: now,
            publish: table.options.publish,
            retain_replaced: table.options.retain_replaced,
            schema: PersistedSchema::encode(&schema)?,
            watermark_before: None,
            watermark_after: None,
            added,
            added_spill,
            removed: Vec::new(),
            removed_spill: None,
            state,
            properties: BTreeMap::new(),
            hash_spec_version: HASH_SPEC_VERSION,
            report: None,
        };
        match table.io.create(&table.io.layout.log_entry(0), Bytes::from(commit.to_json())).await? {
            Created::Yes => Ok(table),
            Created::AlreadyExists => {
                let existing = table.commit(0).await?;
                if existing.run_id == run_id {
                    Ok(table)
                } else {
                    Err(Error::TableExists { location: table.location().to_owned(), version: 0 })
                }
            }
        }
    }
}
