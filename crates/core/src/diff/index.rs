//! The snapshot index: a snapshot's entries — key fingerprint, row hash, optionally one hash per
//! compared column, and the key values — stored as Arrow IPC stream bytes.
//!
//! ```text
//! schema metadata "highwater.snapshot_index" = JSON IndexMeta {format, hash_spec, spec, families, rows, bucket_bits}
//! batch 0 … batch 2^bucket_bits - 1: the entries of bucket b (fingerprints whose top bits are b),
//!                                    sorted by fingerprint; empty buckets are empty batches
//! ```
//!
//! In memory every entry starts with its fingerprint; the bytes (format 2) leave it out, since
//! the key values determine it, and reading computes it again and checks the order.
//!
//! The bucket count depends only on the row count ([`bucket_bits`]), so the native crate and the
//! wasm build write the same bytes for the same rows. An index records how it was made (the
//! compared columns, quantisation, hash spec): a later run cannot compare under other rules.

use std::sync::Arc;

use arrow_array::{RecordBatch, UInt64Array};
use arrow_schema::{Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use super::{DiffSpec, SnapshotHasher, sort_entries, split_entries};
use crate::error::{Error, Result};
use crate::hash::HASH_SPEC_VERSION;

/// The index format this build writes. Format 2 leaves the key fingerprints out of the bytes
/// (readers compute them again from the key values: 16 bytes a row less to write, store and
/// read); format 1, which stored them, is still read.
pub const INDEX_FORMAT: u32 = 2;
/// The oldest format this build reads.
const OLDEST_READABLE_FORMAT: u32 = 1;
/// The schema-metadata key holding [`IndexMeta`].
pub const META_KEY: &str = "highwater.snapshot_index";
/// Rows per bucket an index aims at.
const ROWS_PER_BUCKET: u64 = 64 * 1024;
/// At most `2^MAX_BITS` buckets.
const MAX_BITS: u32 = 12;
/// An in-memory column of entries: where the row came from (`batch << 32 | row`).
pub(crate) const POSITION_COLUMN: &str = "_position";

/// How an index was made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexMeta {
    /// [`INDEX_FORMAT`].
    pub format: u32,
    /// The row-hash spec version of its hashes.
    pub hash_spec: u32,
    /// What was compared.
    pub spec: DiffSpec,
    /// The type family (spec-v1 tag) of each compared column, in `spec.columns` order (0 when
    /// the snapshot lacked it).
    pub families: Vec<u8>,
    /// Rows (keys) indexed.
    pub rows: u64,
    /// Fingerprint bits that pick a bucket ([`bucket_bits`] of `rows`).
    pub bucket_bits: u32,
}

/// Bucket bits for an index of `rows` rows: about 64 Ki rows a bucket, at most 4096 buckets.
pub fn bucket_bits(rows: u64) -> u32 {
    let buckets = rows.div_ceil(ROWS_PER_BUCKET).max(1);
    buckets.next_power_of_two().trailing_zeros().min(MAX_BITS)
}

/// A snapshot's index: one sorted batch of entries per bucket.
#[derive(Clone, Debug)]
pub struct SnapshotIndex {
    /// How it was made.
    pub meta: IndexMeta,
    /// The entries' schema.
    pub schema: SchemaRef,
    /// `2^bucket_bits` batches, each sorted by fingerprint.
    pub buckets: Vec<RecordBatch>,
}

impl SnapshotIndex {
    /// The index of a snapshot held in memory.
    pub fn build(spec: &DiffSpec, batches: &[RecordBatch]) -> Result<Self> {
        let hasher = SnapshotHasher::new(spec)?;
        SnapshotIndex::build_with(&hasher, batches, false)
    }

    /// The same with `hasher`; with `positions`, entries keep where each row came from.
    pub(crate) fn build_with(hasher: &SnapshotHasher, batches: &[RecordBatch], positions: bool) -> Result<Self> {
        let schema = batches.first().map_or_else(|| Arc::new(Schema::empty()), RecordBatch::schema);
        let mut entry_schema = if batches.is_empty() {
            // An empty snapshot: no key types to record, no entries to hold.
            hasher.fixed_entry_schema()
        } else {
            hasher.entry_schema(&schema)?
        };
        if positions {
            let mut fields: Vec<_> = entry_schema.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.push(arrow_schema::Field::new(POSITION_COLUMN, arrow_schema::DataType::UInt64, false));
            entry_schema = Arc::new(Schema::new(fields));
        }
        let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        let bits = bucket_bits(rows);
        let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); 1 << bits];
        for (index, batch) in batches.iter().enumerate() {
            let mut entries = hasher.entries(batch)?;
            if positions {
                let base = (index as u64) << 32;
                let column = UInt64Array::from_iter_values((0..batch.num_rows() as u64).map(|r| base | r));
                let mut columns = entries.columns().to_vec();
                columns.push(Arc::new(column));
                entries = RecordBatch::try_new(Arc::clone(&entry_schema), columns)?;
            }
            for (bucket, rows) in split_entries(&entries, bits)? {
                parts[bucket].push(rows);
            }
        }
        let spec = hasher.spec().clone();
        let buckets = parts
            .iter()
            .map(|entries| sort_entries(&entry_schema, entries, &spec.key, "one snapshot"))
            .collect::<Result<Vec<_>>>()?;
        let meta = IndexMeta {
            format: INDEX_FORMAT,
            hash_spec: HASH_SPEC_VERSION,
            families: hasher.families(&schema),
            spec,
            rows,
            bucket_bits: bits,
        };
        Ok(SnapshotIndex { meta, schema: entry_schema, buckets })
    }

    /// The index without the in-memory position column.
    pub(crate) fn without_positions(self) -> Result<Self> {
        let Ok(index) = self.schema.index_of(POSITION_COLUMN) else { return Ok(self) };
        let keep: Vec<usize> = (0..self.schema.fields().len()).filter(|i| *i != index).collect();
        let schema = Arc::new(self.schema.project(&keep)?);
        let buckets = self.buckets.iter().map(|b| b.project(&keep)).collect::<Result<Vec<_>, _>>()?;
        Ok(SnapshotIndex { meta: self.meta, schema, buckets })
    }

    /// The entries of `bucket` among `2^bits` buckets (this index may use other bits).
    pub fn bucket(&self, bucket: usize, bits: u32) -> Result<RecordBatch> {
        let own = self.meta.bucket_bits;
        if bits == own {
            return Ok(self.buckets[bucket].clone());
        }
        if bits < own {
            let span = 1usize << (own - bits);
            let parts = &self.buckets[bucket * span..(bucket + 1) * span];
            return Ok(arrow_select::concat::concat_batches(&self.schema, parts)?);
        }
        // A finer bucket: a contiguous slice of the coarser one (buckets are top bits).
        let parent = &self.buckets[bucket >> (bits - own)];
        let fingerprints = super::values16(parent.column(0).as_ref())?;
        let first = (bucket as u128) << (128 - bits);
        let start = fingerprints.partition_point(|f| *f < first);
        let end = match (bucket as u128 + 1).checked_shl(128 - bits) {
            Some(next) if bucket + 1 < (1 << bits) => fingerprints.partition_point(|f| *f < next),
            _ => fingerprints.len(),
        };
        Ok(parent.slice(start, end - start))
    }

    /// Checks that a run comparing by `spec` may diff against this index.
    pub fn check_compatible(&self, spec: &DiffSpec) -> Result<()> {
        if self.meta.hash_spec != HASH_SPEC_VERSION {
            return Err(Error::InvalidInput(format!(
                "the snapshot index was hashed with row-hash spec v{}, this build uses v{HASH_SPEC_VERSION}: take a new \
                 snapshot (re-snapshot) instead of diffing",
                self.meta.hash_spec
            )));
        }
        let own = &self.meta.spec;
        if own.key != spec.key {
            return Err(Error::InvalidInput(format!(
                "the snapshot index is keyed by ({}), this run by ({})",
                own.key.join(", "),
                spec.key.join(", ")
            )));
        }
        if own.quantize != spec.quantize || own.hash != spec.hash {
            return Err(Error::InvalidInput(
                "the snapshot index was hashed under other quantisation or zone rules: a diff would report \
                 differences of rules, not of data; re-snapshot to change them"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The index as Arrow IPC stream bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.clone().into_bytes()
    }

    /// [`SnapshotIndex::to_bytes`], freeing each bucket once written: the entries and their
    /// bytes are not both held whole.
    pub fn into_bytes(self) -> Result<Vec<u8>> {
        let mut index = self.without_positions()?;
        index.meta.format = INDEX_FORMAT;
        let meta = serde_json::to_string(&index.meta).map_err(|e| Error::InvalidInput(e.to_string()))?;
        // Every column but the fingerprint (the first), which the key values determine.
        let stored: Vec<usize> = (1..index.schema.fields().len()).collect();
        let schema =
            Arc::new(index.schema.project(&stored)?.with_metadata([(META_KEY.to_owned(), meta)].into_iter().collect()));
        // Sized up front: an index can be hundreds of megabytes, and growing by doubling copies it.
        let body: usize = index.buckets.iter().map(RecordBatch::get_array_memory_size).sum();
        let mut bytes = Vec::with_capacity(body + (index.buckets.len() + 1) * 1024);
        {
            let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut bytes, &schema)?;
            for bucket in std::mem::take(&mut index.buckets) {
                let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(bucket.num_rows()));
                let columns = bucket.project(&stored)?.columns().to_vec();
                writer.write(&RecordBatch::try_new_with_options(Arc::clone(&schema), columns, &options)?)?;
            }
            writer.finish()?;
        }
        Ok(bytes)
    }

    /// Reads an index written by [`SnapshotIndex::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::from_buffer(arrow_buffer::Buffer::from(bytes))
    }

    /// [`SnapshotIndex::from_bytes`] without copying: the entries' arrays are slices of
    /// `bytes` (e.g. a `bytes::Bytes` read from a store, converted with `Buffer::from`).
    pub fn from_buffer(bytes: arrow_buffer::Buffer) -> Result<Self> {
        let damaged = |detail: String| Error::InvalidInput(format!("not a snapshot index: {detail}"));
        let (schema, buckets) = read_stream(bytes).map_err(damaged)?;
        let meta = schema.metadata().get(META_KEY).ok_or_else(|| damaged(format!("no `{META_KEY}` metadata")))?;
        let meta: IndexMeta = serde_json::from_str(meta).map_err(|e| damaged(e.to_string()))?;
        if !(OLDEST_READABLE_FORMAT..=INDEX_FORMAT).contains(&meta.format) {
            return Err(damaged(format!(
                "format {} (this build reads {OLDEST_READABLE_FORMAT} to {INDEX_FORMAT})",
                meta.format
            )));
        }
        let stores_fingerprints = meta.format == 1;
        if meta.bucket_bits > MAX_BITS {
            return Err(damaged(format!("{} bucket bits (at most {MAX_BITS})", meta.bucket_bits)));
        }
        if buckets.len() != 1 << meta.bucket_bits {
            return Err(damaged(format!("{} buckets, the metadata says {}", buckets.len(), 1u64 << meta.bucket_bits)));
        }
        // The entries must be what the metadata's spec writes — fingerprint, row hash, [column
        // hashes], then the key columns (none for an empty snapshot) — as every reader assumes.
        let hasher = SnapshotHasher::new(&meta.spec).map_err(|e| damaged(e.to_string()))?;
        let fixed = hasher.fixed_entry_schema();
        let fixed_fields = &fixed.fields()[usize::from(!stores_fingerprints)..];
        let fields = schema.fields();
        let (head, keys) = fields.split_at(fixed_fields.len().min(fields.len()));
        let fixed_ok = head.len() == fixed_fields.len()
            && head.iter().zip(fixed_fields).all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
        let keys_ok = keys.is_empty() || keys.iter().map(|f| f.name()).eq(meta.spec.key.iter());
        if !fixed_ok || !keys_ok {
            let found: Vec<String> = fields.iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect();
            return Err(damaged(format!(
                "its entry columns ({}) are not what its metadata describes",
                found.join(", ")
            )));
        }
        let mut schema = schema.as_ref().clone().with_metadata(std::collections::HashMap::default());
        let mut buckets = buckets;
        if !stores_fingerprints {
            buckets = buckets
                .iter()
                .enumerate()
                .map(|(number, bucket)| with_fingerprints(&hasher, bucket, number, meta.bucket_bits))
                .collect::<std::result::Result<_, String>>()
                .map_err(damaged)?;
            let mut all = vec![fixed.field(0).clone()];
            all.extend(schema.fields().iter().map(|f| f.as_ref().clone()));
            schema = Schema::new(all);
        }
        let schema = Arc::new(schema);
        let buckets = buckets
            .into_iter()
            .map(|b| RecordBatch::try_new(Arc::clone(&schema), b.columns().to_vec()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SnapshotIndex { meta, schema, buckets })
    }
}

/// A stored bucket with its fingerprints computed again from its key values in front; they must
/// be ascending and belong to bucket `number`, as the writer sorted them (else the bytes are not
/// the index they claim to be).
fn with_fingerprints(
    hasher: &SnapshotHasher,
    bucket: &RecordBatch,
    number: usize,
    bits: u32,
) -> std::result::Result<RecordBatch, String> {
    let fingerprints = if bucket.num_rows() == 0 {
        Vec::new()
    } else {
        hasher.keys.fingerprints(bucket).map_err(|e| format!("bucket {number}: {e}"))?
    };
    if fingerprints.windows(2).any(|pair| pair[0] >= pair[1])
        || fingerprints.iter().any(|f| crate::key::bucket_of(*f, bits) != number)
    {
        return Err(format!("bucket {number}'s keys are not the sorted keys of that bucket"));
    }
    let mut columns: Vec<arrow_array::ArrayRef> = vec![Arc::new(super::fixed16(&fingerprints))];
    columns.extend(bucket.columns().iter().cloned());
    let mut fields =
        vec![arrow_schema::Field::new(super::FINGERPRINT_COLUMN, arrow_schema::DataType::FixedSizeBinary(16), false)];
    fields.extend(bucket.schema().fields().iter().map(|f| f.as_ref().clone()));
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(bucket.num_rows()));
    RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), columns, &options).map_err(|e| e.to_string())
}

/// The schema and batches of Arrow IPC stream bytes. The push decoder slices each message out of
/// the bytes it has, so a length field that lies cannot make it allocate more than `bytes` holds
/// (the pull `StreamReader` allocates what a message header claims). arrow-ipc panics on some
/// malformed schemas: where panics unwind (native builds), that becomes an error too.
fn read_stream(bytes: arrow_buffer::Buffer) -> std::result::Result<(SchemaRef, Vec<RecordBatch>), String> {
    let decode = move || -> std::result::Result<_, arrow_schema::ArrowError> {
        let mut decoder = arrow_ipc::reader::StreamDecoder::new();
        let mut rest = bytes;
        let mut batches = Vec::new();
        while !rest.is_empty() {
            if let Some(batch) = decoder.decode(&mut rest)? {
                batches.push(batch);
            }
        }
        decoder.finish()?;
        Ok((decoder.schema(), batches))
    };
    match std::panic::catch_unwind(decode) {
        Ok(Ok((Some(schema), batches))) => Ok((schema, batches)),
        Ok(Ok((None, _))) => Err("no schema".into()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned());
            Err(format!("the Arrow IPC decoder panicked: {}", message.unwrap_or_default()))
        }
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::{ArrayRef, Int64Array};

    use super::*;

    fn index() -> SnapshotIndex {
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
            ("v", Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])) as ArrayRef),
        ])
        .unwrap();
        let spec = DiffSpec::for_schema(&batch.schema(), &["id".into()], &[]).unwrap();
        SnapshotIndex::build(&spec, &[batch]).unwrap()
    }

    /// The offsets of each message's metadata length and body length in IPC stream bytes.
    fn lengths(bytes: &[u8]) -> Vec<(usize, usize)> {
        let mut at = 0;
        let mut found = Vec::new();
        while at + 8 <= bytes.len() {
            let meta_len = i32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
            if meta_len == 0 {
                break;
            }
            let meta = &bytes[at + 8..at + 8 + meta_len];
            let body = arrow_ipc::root_as_message(meta).unwrap().bodyLength();
            let field = meta.windows(8).position(|w| w == body.to_le_bytes()).map_or(0, |p| at + 8 + p);
            found.push((at + 4, field));
            at += 8 + meta_len + body as usize;
        }
        found
    }

    // Found by the `index_decode` fuzz target: the pull reader allocated what a message claimed.
    #[test]
    fn lying_lengths_are_errors_not_allocations() {
        let bytes = index().to_bytes().unwrap();
        let messages = lengths(&bytes);
        let (_, body) = messages[1];
        assert_ne!(body, 0, "the batch's body length is in its metadata");
        let mut huge_body = bytes.clone();
        huge_body[body..body + 8].copy_from_slice(&0x7fff_ffff_ffff_0000_i64.to_le_bytes());
        assert!(SnapshotIndex::from_bytes(&huge_body).unwrap_err().to_string().contains("not a snapshot index"));
        let mut huge_meta = bytes.clone();
        huge_meta[messages[0].0..messages[0].0 + 4].copy_from_slice(&i32::MAX.to_le_bytes());
        assert!(SnapshotIndex::from_bytes(&huge_meta).is_err());
        assert!(SnapshotIndex::from_bytes(&bytes[..bytes.len() - 1]).is_err(), "truncated");
        assert!(SnapshotIndex::from_bytes(&[]).is_err());
    }

    // Found by the `index_decode` fuzz target: arrow-ipc panics on unknown type ids in a schema
    // (`not implemented: Type <UNKNOWN 59> not supported`).
    #[test]
    fn decoder_panics_are_errors() {
        let bytes = index().to_bytes().unwrap();
        let schema_end = lengths(&bytes)[1].0 - 4;
        let mut panicked = 0;
        for at in 8..schema_end {
            let mut changed = bytes.clone();
            changed[at] = 59;
            if let Err(error) = SnapshotIndex::from_bytes(&changed) {
                panicked += usize::from(error.to_string().contains("decoder panicked"));
            }
        }
        assert!(panicked > 0, "no byte of the schema message is a type id");
    }

    // Found by the `index_decode` fuzz target: an index of fewer entry columns than its spec
    // says made a diff against it index out of bounds (`RecordBatch::column(1)`).
    #[test]
    fn entry_columns_must_match_the_metadata() {
        let honest = index();
        let mut lying = honest.clone();
        lying.schema = Arc::new(honest.schema.project(&[0]).unwrap());
        lying.buckets = honest.buckets.iter().map(|b| b.project(&[0]).unwrap()).collect();
        let error = SnapshotIndex::from_bytes(&lying.to_bytes().unwrap()).unwrap_err();
        assert!(error.to_string().contains("not what its metadata describes"), "{error}");
        let mut swapped = honest.clone();
        swapped.schema = Arc::new(honest.schema.project(&[1, 0, 2]).unwrap());
        swapped.buckets = honest.buckets.iter().map(|b| b.project(&[1, 0, 2]).unwrap()).collect();
        assert!(SnapshotIndex::from_bytes(&swapped.to_bytes().unwrap()).is_err());
        let empty = SnapshotIndex::build(&honest.meta.spec, &[]).unwrap();
        let read = SnapshotIndex::from_bytes(&empty.to_bytes().unwrap()).unwrap();
        assert_eq!(read.meta.rows, 0);
    }

    /// Format 2 stores no fingerprints: the reader computes them from the key values, and keys
    /// out of order (or of another bucket) mean the bytes are not an index.
    #[test]
    fn stored_keys_must_be_the_sorted_keys_of_their_bucket() {
        let honest = index();
        let bytes = honest.to_bytes().unwrap();
        let read = SnapshotIndex::from_bytes(&bytes).unwrap();
        assert_eq!(read.buckets, honest.buckets, "fingerprints computed again");
        assert_eq!(read.schema, honest.schema);
        let mut reversed = honest.clone();
        let rows = honest.buckets[0].num_rows() as u32;
        let backwards = arrow_array::UInt32Array::from_iter_values((0..rows).rev());
        reversed.buckets = vec![arrow_select::take::take_record_batch(&honest.buckets[0], &backwards).unwrap()];
        let error = SnapshotIndex::from_bytes(&reversed.to_bytes().unwrap()).unwrap_err();
        assert!(error.to_string().contains("not the sorted keys of that bucket"), "{error}");
    }

    // Found by the `index_decode` fuzz target: 64 bucket bits overflowed the bucket-count check
    // (a panic in debug builds; in release the index decoded and `bucket` panicked).
    #[test]
    fn bucket_bits_beyond_the_maximum_are_errors() {
        let mut lying = index();
        lying.meta.bucket_bits = 64;
        let error = SnapshotIndex::from_bytes(&lying.to_bytes().unwrap()).unwrap_err();
        assert!(error.to_string().contains("64 bucket bits"), "{error}");
        let honest = index();
        let read = SnapshotIndex::from_bytes(&honest.to_bytes().unwrap()).unwrap();
        assert_eq!(read.meta, honest.meta);
        assert_eq!(read.buckets[0].num_rows(), 3);
    }
}
