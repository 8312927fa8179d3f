//! The bounded-memory path: when the older side is larger than the memory budget, both sides
//! are split by key bucket into the run's staging area and diffed one bucket at a time, each
//! bucket's entries sorted by fingerprint and merge-joined.
//!
//! ```text
//! older snapshot ─► entries (+ tolerance values) ─► spilled by bucket ┐
//! new snapshot ──► rows + fingerprint + row hash ─► spilled by bucket ┴─► per bucket: sort, join
//! ```

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow_schema::{DataType, Field, Schema};
use futures::StreamExt;
use highwater_core::change::ChangeKind;
use highwater_core::diff::{COLUMN_HASHES_COLUMN, SnapshotHasher, fixed16, values16};
use highwater_core::key::{bucket_of, describe_row};
use highwater_store::source::{Listing, ScanPlan};
use highwater_store::write::{Spill, SpilledBatch};

use crate::error::{Error, Result};
use crate::loader::Tolerance;
use crate::output::ChangeWriter;
use crate::run::{NewEntries, with_changed_columns, within};

const FINGERPRINT: &str = "__highwater_fingerprint";
const ROW_HASH: &str = "__highwater_row_hash";
const COLUMN_HASHES: &str = "__highwater_column_hashes";

/// One side's rows, by bucket, in memory until the budget and spilled past it.
struct Sides {
    parts: Vec<Vec<Part>>,
    spill: Spill,
    held: usize,
    budget: usize,
}

enum Part {
    Memory(RecordBatch),
    Spilled(SpilledBatch),
}

impl Sides {
    fn new(buckets: usize, spill: Spill, budget: usize) -> Self {
        Sides { parts: (0..buckets).map(|_| Vec::new()).collect(), spill, held: 0, budget }
    }

    async fn push(&mut self, bits: u32, fingerprints: &[u128], batch: &RecordBatch) -> Result<()> {
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); self.parts.len()];
        for (row, fingerprint) in fingerprints.iter().enumerate() {
            rows[bucket_of(*fingerprint, bits)].push(row as u32);
        }
        for (bucket, rows) in rows.into_iter().enumerate() {
            if !rows.is_empty() {
                self.held += rows.len();
                let part = arrow_select::take::take_record_batch(batch, &UInt32Array::from(rows))?;
                self.parts[bucket].push(Part::Memory(part));
            }
        }
        if self.held > self.budget {
            for parts in &mut self.parts {
                let held: Vec<RecordBatch> = parts
                    .iter()
                    .filter_map(|p| match p {
                        Part::Memory(b) => Some(b.clone()),
                        Part::Spilled(_) => None,
                    })
                    .collect();
                parts.retain(|p| matches!(p, Part::Spilled(_)));
                if let Some(first) = held.first() {
                    let batch = arrow_select::concat::concat_batches(&first.schema(), &held)?;
                    parts.push(Part::Spilled(self.spill.put(&batch).await?));
                }
            }
            self.held = 0;
        }
        Ok(())
    }

    async fn take(&mut self, bucket: usize) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        for part in std::mem::take(&mut self.parts[bucket]) {
            out.push(match part {
                Part::Memory(batch) => batch,
                Part::Spilled(spilled) => self.spill.get(&spilled).await?,
            });
        }
        Ok(out)
    }
}

/// `batch` with its fingerprints, row hashes and (when kept) column hashes appended.
fn tagged(batch: &RecordBatch, hasher: &SnapshotHasher) -> Result<(Vec<u128>, RecordBatch)> {
    let hashed = hasher.hash(batch)?;
    let entries = hasher.entries_of(batch, &hashed)?;
    let mut fields: Vec<Field> = batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns = batch.columns().to_vec();
    fields.push(Field::new(FINGERPRINT, DataType::FixedSizeBinary(16), false));
    columns.push(Arc::new(fixed16(&hashed.fingerprints)));
    fields.push(Field::new(ROW_HASH, DataType::FixedSizeBinary(16), false));
    columns.push(Arc::new(fixed16(hashed.rows.rows())));
    if let Some(list) = entries.column_by_name(COLUMN_HASHES_COLUMN) {
        fields.push(Field::new(COLUMN_HASHES, list.data_type().clone(), false));
        columns.push(Arc::clone(list));
    }
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok((hashed.fingerprints, RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), columns, &options)?))
}

/// One bucket's rows, sorted, with their fingerprints and row hashes.
type SortedBucket = (RecordBatch, Vec<u128>, Vec<u128>);

/// One bucket's rows sorted by fingerprint; a fingerprint twice is `Err` with the row.
fn sorted(batches: &[RecordBatch]) -> Result<std::result::Result<SortedBucket, usize>> {
    let Some(first) = batches.first() else {
        return Ok(Ok((RecordBatch::new_empty(Arc::new(Schema::empty())), Vec::new(), Vec::new())));
    };
    let all = arrow_select::concat::concat_batches(&first.schema(), batches)?;
    let fingerprints = values16(all.column_by_name(FINGERPRINT).map_or(all.column(0), |c| c).as_ref())?;
    let mut order: Vec<u32> = (0..fingerprints.len() as u32).collect();
    order.sort_unstable_by_key(|&i| fingerprints[i as usize]);
    if let Some(pair) = order.windows(2).find(|p| fingerprints[p[0] as usize] == fingerprints[p[1] as usize]) {
        return Ok(Err(pair[0] as usize));
    }
    let all = arrow_select::take::take_record_batch(&all, &UInt32Array::from(order))?;
    let fingerprints = values16(all.column_by_name(FINGERPRINT).map_or(all.column(0), |c| c).as_ref())?;
    let hashes = values16(all.column_by_name(ROW_HASH).map_or(all.column(1), |c| c).as_ref())?;
    Ok(Ok((all, fingerprints, hashes)))
}

/// What the bucketed path needs from the run.
pub(crate) struct Bucketed<'a> {
    pub(crate) hasher: &'a SnapshotHasher,
    pub(crate) key: &'a [String],
    pub(crate) new_schema: &'a arrow_schema::SchemaRef,
    pub(crate) key_schema: &'a arrow_schema::SchemaRef,
    pub(crate) tolerance: &'a [(String, Tolerance)],
    pub(crate) changed_columns: bool,
    pub(crate) budget: usize,
}

/// Counts of the bucketed diff.
#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) rows_before: u64,
    pub(crate) rows_after: u64,
    pub(crate) inserted: u64,
    pub(crate) updated: u64,
    pub(crate) deleted: u64,
    pub(crate) unchanged: u64,
    pub(crate) buckets: u64,
}

impl Bucketed<'_> {
    /// Diffs `old` → `new` bucket by bucket into `writer`; `entries` collects the new index.
    #[allow(clippy::too_many_lines, clippy::too_many_arguments, reason = "one merge-join, read top to bottom")]
    pub(crate) async fn run(
        &self,
        old: ScanPlan,
        new: ScanPlan,
        old_listing: &Listing,
        new_listing: &Listing,
        spill: (Spill, Spill),
        mut writer: Option<&mut ChangeWriter>,
        mut entries: Option<&mut NewEntries>,
    ) -> Result<Counts> {
        let budget_bits = highwater_core::diff::bucket_bits(
            (old.rows().max(new.rows()) * 2).div_ceil(self.budget.max(1) as u64) * 65_536,
        );
        let bits = budget_bits.max(highwater_core::diff::bucket_bits(old.rows())).max(1);
        let buckets = 1usize << bits;
        let mut counts = Counts { buckets: buckets as u64, ..Counts::default() };
        let (old_spill, new_spill) = spill;
        let mut old_side = Sides::new(buckets, old_spill, self.budget / 2);
        let mut new_side = Sides::new(buckets, new_spill, self.budget / 2);
        let mut stream = old.stream();
        while let Some(scanned) = stream.next().await {
            let batch = scanned?.batch;
            let (fingerprints, tagged) = tagged(&batch, self.hasher)?;
            counts.rows_before += batch.num_rows() as u64;
            old_side.push(bits, &fingerprints, &tagged).await?;
        }
        let mut stream = new.stream();
        while let Some(scanned) = stream.next().await {
            let batch = scanned?.batch;
            let (fingerprints, tagged) = tagged(&batch, self.hasher)?;
            counts.rows_after += batch.num_rows() as u64;
            new_side.push(bits, &fingerprints, &tagged).await?;
        }
        for bucket in 0..buckets {
            let old_batches = old_side.take(bucket).await?;
            let new_batches = new_side.take(bucket).await?;
            let (old_rows, old_keys, old_hashes) = match sorted(&old_batches)? {
                Ok(done) => done,
                Err(row) => {
                    let all = arrow_select::concat::concat_batches(&old_batches[0].schema(), &old_batches)?;
                    return Err(Error::DuplicateKey {
                        key: describe_row(&all, row, self.key),
                        side: "older",
                        files: files(old_listing),
                    });
                }
            };
            let (new_rows, new_keys, new_hashes) = match sorted(&new_batches)? {
                Ok(done) => done,
                Err(row) => {
                    let all = arrow_select::concat::concat_batches(&new_batches[0].schema(), &new_batches)?;
                    return Err(Error::DuplicateKey {
                        key: describe_row(&all, row, self.key),
                        side: "new",
                        files: files(new_listing),
                    });
                }
            };
            let column = |batch: &RecordBatch, name: &str| -> Option<arrow_array::Float64Array> {
                batch
                    .column_by_name(name)
                    .and_then(|a| arrow_cast::cast(a, &DataType::Float64).ok())
                    .map(|a| a.as_primitive().clone())
            };
            let tolerant_old: Vec<Option<arrow_array::Float64Array>> =
                self.tolerance.iter().map(|(c, _)| column(&old_rows, c)).collect();
            let tolerant_new: Vec<Option<arrow_array::Float64Array>> =
                self.tolerance.iter().map(|(c, _)| column(&new_rows, c)).collect();
            let value = |array: &Option<arrow_array::Float64Array>, row: usize| {
                array.as_ref().and_then(|a| (!a.is_null(row)).then(|| a.value(row)))
            };
            let column_hashes = |batch: &RecordBatch, row: usize| -> Option<Vec<u64>> {
                let list = batch.column_by_name(COLUMN_HASHES)?.as_fixed_size_list();
                Some(list.value(row).as_primitive::<UInt64Type>().values().to_vec())
            };
            let (mut inserts, mut updates, mut deletes, mut changed) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let (mut i, mut j) = (0, 0);
            while i < old_keys.len() || j < new_keys.len() {
                match (old_keys.get(i), new_keys.get(j)) {
                    (Some(a), Some(b)) if a == b => {
                        let mut columns = Vec::new();
                        let differs = old_hashes[i] != new_hashes[j];
                        if differs && self.changed_columns {
                            if let (Some(before), Some(after)) =
                                (column_hashes(&old_rows, i), column_hashes(&new_rows, j))
                            {
                                columns.extend(
                                    self.hasher
                                        .spec()
                                        .columns
                                        .iter()
                                        .enumerate()
                                        .filter(|(c, _)| before[*c] != after[*c])
                                        .map(|(_, n)| n.clone()),
                                );
                            }
                        }
                        let mut tolerant_differs = false;
                        for (index, (name, tolerance)) in self.tolerance.iter().enumerate() {
                            if !within(value(&tolerant_old[index], i), value(&tolerant_new[index], j), tolerance) {
                                tolerant_differs = true;
                                columns.push(name.clone());
                            }
                        }
                        if differs || tolerant_differs {
                            updates.push(j as u32);
                            changed.push(columns);
                        } else {
                            counts.unchanged += 1;
                        }
                        i += 1;
                        j += 1;
                    }
                    (Some(a), Some(b)) if a < b => {
                        deletes.push(i as u32);
                        i += 1;
                    }
                    (Some(_), None) => {
                        deletes.push(i as u32);
                        i += 1;
                    }
                    _ => {
                        inserts.push(j as u32);
                        j += 1;
                    }
                }
            }
            counts.inserted += inserts.len() as u64;
            counts.updated += updates.len() as u64;
            counts.deleted += deletes.len() as u64;
            if let Some(writer) = writer.as_deref_mut() {
                if !inserts.is_empty() {
                    let rows = Self::project(&new_rows, self.new_schema, &inserts)?;
                    writer.write(ChangeKind::Insert, &rows).await?;
                }
                if !updates.is_empty() {
                    let mut rows = Self::project(&new_rows, self.new_schema, &updates)?;
                    if self.changed_columns {
                        rows = with_changed_columns(&rows, &changed)?;
                    }
                    writer.write(ChangeKind::Update, &rows).await?;
                }
                if !deletes.is_empty() {
                    let rows = Self::project(&old_rows, self.key_schema, &deletes)?;
                    writer.write(ChangeKind::Delete, &rows).await?;
                }
            }
            if let Some(entries) = entries.as_deref_mut() {
                if new_rows.num_rows() > 0 {
                    let rows = Self::project(
                        &new_rows,
                        self.new_schema,
                        &(0..new_rows.num_rows() as u32).collect::<Vec<_>>(),
                    )?;
                    entries.push(&self.hasher.entries(&rows)?)?;
                }
            }
        }
        old_side.spill.clear().await;
        new_side.spill.clear().await;
        Ok(counts)
    }

    /// Rows `rows` of a bucket's batch, as columns of `schema` (the tags dropped).
    fn project(batch: &RecordBatch, schema: &arrow_schema::SchemaRef, rows: &[u32]) -> Result<RecordBatch> {
        let taken = arrow_select::take::take_record_batch(batch, &UInt32Array::from(rows.to_vec()))?;
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| {
                taken
                    .column_by_name(f.name())
                    .map_or_else(|| arrow_array::new_null_array(f.data_type(), taken.num_rows()), Arc::clone)
            })
            .collect();
        let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(taken.num_rows()));
        Ok(RecordBatch::try_new_with_options(Arc::clone(schema), columns, &options)?)
    }
}

fn files(listing: &Listing) -> String {
    let names: Vec<&str> = listing.files.iter().take(5).map(|f| f.key.as_str()).collect();
    let more = listing.files.len().saturating_sub(5);
    if more > 0 { format!("{} and {more} more", names.join(", ")) } else { names.join(", ") }
}
