//! The real-world cases of `shared/fixtures/snapshot-diff/`: tables from reladiff's tests, column
//! equality cases from datacompy's, and composite keys whose naive concatenation collides.
//!
//! Each file is read as text and typed with a declared schema (no inference), written as Parquet
//! snapshots A (older) and B (newer), and diffed A → B by key; the expected change sets (keys of
//! inserts, updates and deletes) or errors are the upstream assertions translated to highwater.
//! The tests skip when the fixtures folder is absent, and fail under `CI=true`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_cast::{CastOptions, cast_with_options};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use highwater_core::report::PatternReport;
use highwater_core::watermark::TimestampUnit;
use highwater_diff::{DiffLoader, Error, Tolerance};
use highwater_store::TableOptions;

use crate::{folder, snapshot};

// ---------------------------------------------------------------------------------------------
// Reading the fixtures

/// The `snapshot-diff` fixtures folder, or `None` when it is absent (outside CI).
fn fixtures() -> Option<PathBuf> {
    highwater_test_support::fixtures::shared_fixtures().map(|root| root.join("snapshot-diff"))
}

/// Which cells of a file are NULL.
#[derive(Clone, Copy, Debug)]
enum Nulls {
    /// reladiff: `\N` is NULL; every other cell, `""` too, is a value.
    Backslash,
    /// pandas' default `read_csv` (and dbt seeds): empty cells, `NaN` and `NULL` are NULL.
    Missing,
    /// pandas with `keep_default_na=False`: no cell is NULL, an empty cell is `""`.
    Never,
}

impl Nulls {
    fn is_null(self, cell: &str) -> bool {
        match self {
            Nulls::Backslash => cell == "\\N",
            Nulls::Missing => matches!(cell, "" | "NaN" | "NULL"),
            Nulls::Never => false,
        }
    }
}

/// One delimited line: quotes keep delimiters and spaces, `""` inside quotes is a quote.
fn split(line: &str, delimiter: char) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let cell = cells.last_mut().expect("one cell at least");
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            '"' => quoted = !quoted,
            c if c == delimiter && !quoted => cells.push(String::new()),
            c => cell.push(c),
        }
    }
    cells
}

/// A fixture file as text cells (`None` is NULL), typed column by column on demand.
#[derive(Clone, Debug)]
struct Fixture {
    header: Vec<String>,
    rows: Vec<Vec<Option<String>>>,
}

impl Fixture {
    /// Reads a `.csv` (comma) or `.psv` (pipe) file.
    fn read(path: &Path, nulls: Nulls) -> Fixture {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let delimiter = if path.extension().is_some_and(|e| e == "psv") { '|' } else { ',' };
        let mut lines = text.lines();
        let header = split(lines.next().expect("a header"), delimiter);
        let rows: Vec<Vec<Option<String>>> = lines
            .map(|line| split(line, delimiter).into_iter().map(|c| (!nulls.is_null(&c)).then_some(c)).collect())
            .collect();
        assert!(rows.iter().all(|r| r.len() == header.len()), "{}: ragged rows", path.display());
        Fixture { header, rows }
    }

    /// The cells of column `name`.
    fn texts(&self, name: &str) -> Vec<Option<&str>> {
        let index = self.header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column `{name}`"));
        self.rows.iter().map(|row| row[index].as_deref()).collect()
    }

    /// Column `name` parsed as `data_type`; a cell that does not parse fails the test.
    fn column(&self, name: &str, data_type: &DataType) -> ArrayRef {
        typed(&self.texts(name), data_type)
    }

    /// The named columns with their declared types.
    fn batch(&self, fields: &[(&str, DataType)]) -> RecordBatch {
        batch(fields.iter().map(|(name, data_type)| (*name, self.column(name, data_type))).collect())
    }

    /// The rows whose `column` satisfies `keep`.
    fn rows_where(&self, column: &str, keep: impl Fn(Option<&str>) -> bool) -> Fixture {
        let keep: Vec<bool> = self.texts(column).into_iter().map(keep).collect();
        let rows = self.rows.iter().zip(keep).filter(|(_, k)| *k).map(|(row, _)| row.clone()).collect();
        Fixture { header: self.header.clone(), rows }
    }
}

/// Text cells parsed as `data_type` (arrow's parsers: `inf`, fractional seconds, dates, …).
fn typed(cells: &[Option<&str>], data_type: &DataType) -> ArrayRef {
    let text = StringArray::from(cells.to_vec());
    let strict = CastOptions { safe: false, ..CastOptions::default() };
    cast_with_options(&text, data_type, &strict).unwrap_or_else(|e| panic!("{cells:?} as {data_type}: {e}"))
}

/// A batch of nullable columns.
fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = columns.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns.into_iter().map(|(_, a)| a).collect()).unwrap()
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

// ---------------------------------------------------------------------------------------------
// Diffing

/// A change set: the rows of each folder rendered as `col=value, …` (sorted), and the count of
/// unchanged rows.
#[derive(Debug, Default, PartialEq, Eq)]
struct Changes {
    inserts: Vec<String>,
    updates: Vec<String>,
    deletes: Vec<String>,
    unchanged: u64,
}

fn sorted(rows: &[impl AsRef<str>]) -> Vec<String> {
    let mut rows: Vec<String> = rows.iter().map(|r| r.as_ref().to_owned()).collect();
    rows.sort();
    rows
}

impl Changes {
    fn inserts(mut self, rows: &[impl AsRef<str>]) -> Self {
        self.inserts = sorted(rows);
        self
    }
    fn updates(mut self, rows: &[impl AsRef<str>]) -> Self {
        self.updates = sorted(rows);
        self
    }
    fn deletes(mut self, rows: &[impl AsRef<str>]) -> Self {
        self.deletes = sorted(rows);
        self
    }
    fn unchanged(mut self, rows: u64) -> Self {
        self.unchanged = rows;
        self
    }
}

/// No change at all among `rows` rows.
fn no_changes(rows: u64) -> Changes {
    Changes::default().unchanged(rows)
}

/// Snapshots A (older) and B (newer) in a temporary folder, diffed into a fresh target each time.
struct Pair {
    dir: tempfile::TempDir,
    runs: AtomicUsize,
}

impl Pair {
    fn new(a: &[RecordBatch], b: &[RecordBatch]) -> Pair {
        let dir = tempfile::tempdir().unwrap();
        snapshot(&dir.path().join("a"), a);
        snapshot(&dir.path().join("b"), b);
        Pair { dir, runs: AtomicUsize::new(0) }
    }

    /// A snapshot diffed against itself.
    fn same(rows: &RecordBatch) -> Pair {
        Pair::new(std::slice::from_ref(rows), std::slice::from_ref(rows))
    }

    /// A snapshot diffed against an empty older one.
    fn from_nothing(rows: &RecordBatch) -> Pair {
        Pair::new(&[], std::slice::from_ref(rows))
    }

    /// The reverse diff, B → A.
    fn reversed(&self) -> Pair {
        let dir = tempfile::tempdir().unwrap();
        for (from, to) in [("a", "b"), ("b", "a")] {
            std::fs::create_dir_all(dir.path().join(to)).unwrap();
            for file in std::fs::read_dir(self.dir.path().join(from)).unwrap() {
                let file = file.unwrap();
                std::fs::copy(file.path(), dir.path().join(to).join(file.file_name())).unwrap();
            }
        }
        Pair { dir, runs: AtomicUsize::new(0) }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    /// A → B keyed by `key`, with the rows rendered over the key.
    async fn diff(&self, key: &[&str], options: impl FnOnce(DiffLoader) -> DiffLoader) -> Result<Changes, Error> {
        self.diff_showing(key, key, options).await
    }

    /// A → B keyed by `key`, with inserts and updates rendered over `columns` (deletes over the
    /// key).
    async fn diff_showing(
        &self,
        key: &[&str],
        columns: &[&str],
        options: impl FnOnce(DiffLoader) -> DiffLoader,
    ) -> Result<Changes, Error> {
        let target = self.path(&format!("changes-{}", self.runs.fetch_add(1, Ordering::Relaxed)));
        let loader = DiffLoader::new(self.path("b"), &target)
            .previous(self.path("a"))
            .key(key)
            .table_options(TableOptions { retry_delay: std::time::Duration::ZERO, ..TableOptions::default() });
        let report = options(loader).run().await?;
        let PatternReport::Diff(details) = &report.details else { panic!("not a diff report: {report:?}") };
        Ok(Changes {
            inserts: folder(&target, "inserts", columns).await,
            updates: folder(&target, "updates", columns).await,
            deletes: folder(&target, "deletes", key).await,
            unchanged: details.unchanged,
        })
    }
}

/// No options.
fn plain(loader: DiffLoader) -> DiffLoader {
    loader
}

fn allow_null_keys(loader: DiffLoader) -> DiffLoader {
    loader.allow_null_keys(true)
}

/// The key and side (`older` or `new`) of a duplicate-key error.
fn duplicate_key(result: Result<Changes, Error>) -> (String, &'static str) {
    match result {
        Err(Error::DuplicateKey { key, side, .. }) => (key, side),
        other => panic!("expected a duplicate key, got {other:?}"),
    }
}

/// The column and row of a null-key error.
fn null_key(result: Result<Changes, Error>) -> (String, usize) {
    match result {
        Err(Error::Core(highwater_core::Error::NullKey { column, row })) => (column, row),
        other => panic!("expected a null key, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// reladiff (erezsh/reladiff tests/test_diff_tables.py, test_joindiff.py, test_database_types.py)

fn reladiff(name: &str) -> Option<Fixture> {
    fixtures().map(|root| Fixture::read(&root.join("reladiff").join(name), Nulls::Backslash))
}

/// Both files of a reladiff pair, `NN_name_a.csv` and `NN_name_b.csv`.
fn reladiff_pair(name: &str) -> Option<(Fixture, Fixture)> {
    Some((reladiff(&format!("{name}_a.csv"))?, reladiff(&format!("{name}_b.csv"))?))
}

/// The pair's snapshots with the declared fields.
fn reladiff_snapshots(name: &str, fields: &[(&str, DataType)]) -> Option<Pair> {
    let (a, b) = reladiff_pair(name)?;
    Some(Pair::new(&[a.batch(fields)], &[b.batch(fields)]))
}

/// `id` (Int64) and `columns` of one type.
fn id_and<'a>(columns: &[&'a str], data_type: &DataType) -> Vec<(&'a str, DataType)> {
    let mut fields = vec![("id", DataType::Int64)];
    fields.extend(columns.iter().map(|c| (*c, data_type.clone())));
    fields
}

/// reladiff `TestDiffSets.test_diff_sets` (`diff_sets([(1, None)], [(1, '')])` and back): NULL
/// and the empty string are different values, in both directions.
#[tokio::test]
async fn reladiff_null_is_not_the_empty_string() {
    let Some(pair) = reladiff_snapshots("01_null_vs_empty", &id_and(&["c"], &DataType::Utf8)) else { return };
    let forward = pair.diff_showing(&["id"], &["id", "c"], plain).await.unwrap();
    assert_eq!(forward, Changes::default().updates(&["id=1, c="]));
    let backward = pair.reversed().diff_showing(&["id"], &["id", "c"], plain).await.unwrap();
    assert_eq!(backward, Changes::default().updates(&["id=1, c=null"]));
}

/// reladiff `TestDiffSets.test_diff_sets` (`diff_sets([(1, None), (1, None)], [(1, None)])`):
/// upstream diffs rows as a multiset; highwater refuses the repeated key of A.
#[tokio::test]
async fn reladiff_identical_duplicate_rows_are_a_duplicate_key() {
    let Some(pair) = reladiff_snapshots("01b_dup_null_rows", &id_and(&["c"], &DataType::Utf8)) else { return };
    assert_eq!(duplicate_key(pair.diff(&["id"], plain).await), ("id=1".into(), "older"));
}

/// reladiff `TestTableNullRowChecksum.test_uuid_columns_with_nulls`: the row whose only value is
/// NULL is deleted, not lost in a checksum.
#[tokio::test]
async fn reladiff_row_with_a_null_value_is_deleted() {
    let fields = [("id", DataType::Utf8), ("text_comment", DataType::Utf8)];
    let Some(pair) = reladiff_snapshots("02_null_only_column_in_segment", &fields) else { return };
    assert_eq!(
        pair.diff(&["id"], plain).await.unwrap(),
        Changes::default().deletes(&["id=4b272e99-e8b4-11f1-82c9-000000000001"]).unchanged(1)
    );
}

/// reladiff `TestConcatMultipleColumnWithNulls.test_tables_are_different`: a trailing NULL column
/// (NULL on both sides) does not hide the change of the column before it.
#[tokio::test]
async fn reladiff_trailing_null_column_does_not_hide_a_change() {
    let fields = [("id", DataType::Utf8), ("c1", DataType::Utf8), ("c2", DataType::Utf8)];
    let Some(pair) = reladiff_snapshots("03_concat_with_nulls", &fields) else { return };
    let ids = [
        "4b2733be-e8b4-11f1-ab36-000000000000",
        "4b27341b-e8b4-11f1-b589-000000000001",
        "4b27348a-e8b4-11f1-89e8-000000000002",
        "4b2734c7-e8b4-11f1-b6df-000000000003",
        "4b2734fa-e8b4-11f1-a759-000000000004",
        "4b27353c-e8b4-11f1-9e4e-000000000005",
        "4b27359b-e8b4-11f1-9da0-000000000006",
        "4b273602-e8b4-11f1-b059-000000000007",
    ];
    let updates: Vec<String> =
        ids.iter().enumerate().map(|(i, id)| format!("id={id}, c1={i}-different, c2=null")).collect();
    assert_eq!(
        pair.diff_showing(&["id"], &["id", "c1", "c2"], plain).await.unwrap(),
        Changes::default().updates(&updates)
    );
}

/// reladiff `TestTableUUID.test_uuid_column_with_nulls`: the extra row of A, with a NULL value
/// column, is a delete.
#[tokio::test]
async fn reladiff_uuid_row_with_null_value_is_deleted() {
    let fields = [("id", DataType::Utf8), ("text_comment", DataType::Utf8)];
    let Some(pair) = reladiff_snapshots("04_uuid_value_col_with_null", &fields) else { return };
    assert_eq!(
        pair.diff(&["id"], plain).await.unwrap(),
        Changes::default().deletes(&["id=4b273d0c-e8b4-11f1-a73e-000001ea4c23"]).unchanged(10)
    );
}

/// reladiff `TestDuplicateTables.test_duplicates` and `TestDuplicates2.test_duplicates2`:
/// upstream reports surplus copies; highwater refuses A's repeated key first, and B's when A
/// is clean.
#[tokio::test]
async fn reladiff_duplicate_rows_are_duplicate_keys() {
    let fields = id_and(&["data"], &DataType::Utf8);
    for name in ["05_duplicates", "06_duplicates2"] {
        let Some((a, b)) = reladiff_pair(name) else { return };
        let pair = Pair::new(&[a.batch(&fields)], &[b.batch(&fields)]);
        assert_eq!(duplicate_key(pair.diff(&["id"], plain).await), ("id=12".into(), "older"), "{name}");
        // B alone: its first repeated key (id 4 comes three times, before id 6).
        let b_only = Pair::from_nothing(&b.batch(&fields));
        assert_eq!(duplicate_key(b_only.diff(&["id"], plain).await), ("id=4".into(), "new"), "{name}");
    }
}

/// reladiff `TestSkipSortResults.test_skip_sort_results`: two plain updates (the output order is
/// not part of highwater's contract).
#[tokio::test]
async fn reladiff_plain_updates() {
    let Some(pair) = reladiff_snapshots("07_updates", &id_and(&["data"], &DataType::Utf8)) else { return };
    assert_eq!(
        pair.diff_showing(&["id"], &["id", "data"], plain).await.unwrap(),
        Changes::default().updates(&["id=3, data=z", "id=4, data=d"]).unchanged(2)
    );
}

/// reladiff `TestCompoundKeySimple1.test_simple1`: keyed by `id` the changed `id2` is an update;
/// keyed by `(id, id2)` it is a delete and an insert.
#[tokio::test]
async fn reladiff_compound_key_simple1() {
    let Some(pair) = reladiff_snapshots("08_compound_simple1", &id_and(&["id2"], &DataType::Int64)) else { return };
    assert_eq!(
        pair.diff_showing(&["id"], &["id", "id2"], plain).await.unwrap(),
        Changes::default().updates(&["id=1001, id2=1000002"]).unchanged(1000)
    );
    assert_eq!(
        pair.diff(&["id", "id2"], plain).await.unwrap(),
        Changes::default().inserts(&["id=1001, id2=1000002"]).deletes(&["id=1001, id2=1001"]).unchanged(1000)
    );
}

/// reladiff `TestCompoundKeySimple2.test_simple2` (A is 08's A): B holds `id=0` twice, so keyed
/// by `id` it is a duplicate key of B; keyed by `(id, id2)` the upstream result.
#[tokio::test]
async fn reladiff_compound_key_simple2() {
    let fields = id_and(&["id2"], &DataType::Int64);
    let (Some(a), Some(b)) = (reladiff("08_compound_simple1_a.csv"), reladiff("09_compound_simple2_b.csv")) else {
        return;
    };
    let pair = Pair::new(&[a.batch(&fields)], &[b.batch(&fields)]);
    assert_eq!(duplicate_key(pair.diff(&["id"], plain).await), ("id=0".into(), "new"));
    assert_eq!(
        pair.diff(&["id", "id2"], plain).await.unwrap(),
        Changes::default().inserts(&["id=0, id2=1000002"]).deletes(&["id=1001, id2=1001"]).unchanged(1000)
    );
}

/// reladiff `TestCompoundKeySimple3.test_negative_keys`: negative keys and values, both key
/// shapes.
#[tokio::test]
async fn reladiff_negative_keys() {
    let Some(pair) = reladiff_snapshots("10_negative_keys", &id_and(&["id2"], &DataType::Int64)) else { return };
    assert_eq!(
        pair.diff_showing(&["id"], &["id", "id2"], plain).await.unwrap(),
        Changes::default().updates(&["id=-999, id2=-999998"]).unchanged(1000)
    );
    assert_eq!(
        pair.diff(&["id", "id2"], plain).await.unwrap(),
        Changes::default().inserts(&["id=-999, id2=-999998"]).deletes(&["id=-999, id2=1001"]).unchanged(1000)
    );
}

/// reladiff `TestCompoundKeyAlphanum.test_compound_key`: a UUID text key with an integer second
/// key column. (Upstream's last assertion, a `ValueError` for sides keyed differently, is not a
/// fixture outcome.)
#[tokio::test]
async fn reladiff_compound_key_alphanum() {
    let fields = [("id", DataType::Utf8), ("id2", DataType::Int64), ("comment", DataType::Utf8)];
    let Some(pair) = reladiff_snapshots("11_compound_key_alphanum", &fields) else { return };
    let id = "4b284623-e8b4-11f1-a894-000000000009";
    assert_eq!(
        pair.diff_showing(&["id"], &["id", "id2", "comment"], plain).await.unwrap(),
        Changes::default().updates(&[format!("id={id}, id2=9000, comment=9")]).unchanged(99)
    );
    assert_eq!(
        pair.diff(&["id", "id2"], plain).await.unwrap(),
        Changes::default().inserts(&[format!("id={id}, id2=9000")]).deletes(&[format!("id={id}, id2=9")]).unchanged(99)
    );
}

fn ratings() -> Vec<(&'static str, DataType)> {
    let mut fields = id_and(&["userid", "movieid", "rating"], &DataType::Int64);
    fields.push(("timestamp", utc_micros()));
    fields
}

/// reladiff `TestDiffTables.test_diff_sorted_by_key` and `TestJoindiff.test_diff_sorted_by_key`:
/// the timestamps of ids 2 and 4 move from 2021 to 2022.
#[tokio::test]
async fn reladiff_timestamp_updates() {
    let Some(pair) = reladiff_snapshots("12_timestamp_updates", &ratings()) else { return };
    assert_eq!(
        pair.diff_showing(&["id"], &["id", "timestamp"], plain).await.unwrap(),
        Changes::default()
            .updates(&["id=2, timestamp=2022-01-01T00:00:00Z", "id=4, timestamp=2022-01-01T00:00:00Z"])
            .unchanged(3)
    );
}

/// reladiff `TestCompositeKey.test_composite_key` (joindiff): keyed by `id` the changed `userid`
/// is an update; keyed by `(id, userid)` an exclusive row on each side.
#[tokio::test]
async fn reladiff_joindiff_composite_key() {
    let Some(pair) = reladiff_snapshots("13_joindiff_composite_key", &ratings()) else { return };
    assert_eq!(
        pair.diff_showing(&["id"], &["id", "userid"], plain).await.unwrap(),
        Changes::default().updates(&["id=2, userid=3"]).unchanged(1)
    );
    assert_eq!(
        pair.diff(&["id", "userid"], plain).await.unwrap(),
        Changes::default().inserts(&["id=2, userid=3"]).deletes(&["id=2, userid=2"]).unchanged(1)
    );
}

/// reladiff `TestJoindiff.test_dup_pks`: two different rows of A under one key.
#[tokio::test]
async fn reladiff_duplicate_primary_key() {
    let fields = [("id", DataType::Int64), ("rating", DataType::Int64), ("timestamp", utc_micros())];
    let Some(pair) = reladiff_snapshots("14_dup_pk", &fields) else { return };
    assert_eq!(duplicate_key(pair.diff(&["id"], plain).await), ("id=1".into(), "older"));
}

/// reladiff `TestJoindiff.test_null_pks`: a NULL key is an error; allowed, it is a key like any
/// other (not upstream).
#[tokio::test]
async fn reladiff_null_primary_key() {
    let fields = [("id", DataType::Int64), ("rating", DataType::Int64), ("timestamp", utc_micros())];
    let Some(pair) = reladiff_snapshots("15_null_pk", &fields) else { return };
    assert_eq!(null_key(pair.diff(&["id"], plain).await), ("id".into(), 0));
    assert_eq!(
        pair.diff(&["id"], allow_null_keys).await.unwrap(),
        Changes::default().inserts(&["id=1"]).deletes(&["id=null"])
    );
}

/// reladiff `TestVaryingAlphanumericKeys.test_varying_alphanum_keys`: the nine keys are distinct.
/// highwater promises no output order, so only the file's order is checked to be byte-wise.
#[tokio::test]
async fn reladiff_varying_alphanumeric_keys() {
    let Some(file) = reladiff("16_alphanum_key_sort_order.csv") else { return };
    let keys: Vec<&str> = file.texts("key").into_iter().map(|k| k.expect("no null key")).collect();
    let mut bytewise = keys.clone();
    bytewise.sort_unstable();
    assert_eq!(keys, bytewise, "upstream's order is byte-wise");
    let rows = file.batch(&[("key", DataType::Utf8)]);
    assert_eq!(Pair::same(&rows).diff(&["key"], plain).await.unwrap(), no_changes(9));
    let inserts: Vec<String> = keys.iter().map(|k| format!("key={k}")).collect();
    assert_eq!(Pair::from_nothing(&rows).diff(&["key"], plain).await.unwrap(), Changes::default().inserts(&inserts));
}

/// reladiff `TestDiffCrossDatabaseTables.test_types` (the `MANUAL_FAKES` samples): each sample
/// table diffed against a copy of itself, same column type, has no changes. (Upstream's real
/// claim, no diff across column types and precisions, has no automatic highwater equivalent.)
#[tokio::test]
async fn reladiff_type_samples_against_themselves() {
    let samples = [
        ("17_type_samples_bool.csv", DataType::Boolean, 4),
        ("17_type_samples_datetime.csv", utc_micros(), 6),
        ("17_type_samples_float.csv", DataType::Float64, 16),
        ("17_type_samples_int.csv", DataType::Int64, 6),
    ];
    for (name, data_type, rows) in samples {
        let Some(file) = reladiff(name) else { return };
        let sample = file.batch(&[("id", DataType::Int64), ("col", data_type)]);
        assert_eq!(sample.num_rows(), rows, "{name}");
        assert_eq!(Pair::same(&sample).diff(&["id"], plain).await.unwrap(), no_changes(rows as u64), "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// datacompy (capitalone/datacompy tests/test_pandas.py)

fn datacompy(name: &str, nulls: Nulls) -> Option<Fixture> {
    fixtures().map(|root| Fixture::read(&root.join("datacompy").join(name), nulls))
}

/// One side of a column-equality case: key `row` (the 1-based file row) and `v`, the file's
/// column `column`.
fn side(file: &Fixture, column: &str, data_type: &DataType) -> RecordBatch {
    numbered(file.column(column, data_type))
}

/// `row` (1, 2, …) beside the values `v`.
fn numbered(v: ArrayRef) -> RecordBatch {
    let rows = v.len() as i64;
    batch(vec![("row", Arc::new(Int64Array::from_iter_values(1..=rows)) as ArrayRef), ("v", v)])
}

/// A column-equality case: A holds column `a`, B column `b`, both as `data_type`.
fn equality(file: &Fixture, a: &str, b: &str, data_type: &DataType) -> Pair {
    Pair::new(&[side(file, a, data_type)], &[side(file, b, data_type)])
}

/// Updates of exactly the rows `unequal` among `rows` rows.
fn unequal_rows(unequal: &[i64], rows: u64) -> Changes {
    let keys: Vec<String> = unequal.iter().map(|r| format!("row={r}")).collect();
    Changes::default().updates(&keys).unchanged(rows - unequal.len() as u64)
}

fn tolerance(absolute: f64, relative: f64) -> impl FnOnce(DiffLoader) -> DiffLoader {
    move |loader| loader.tolerance("v", Tolerance { absolute, relative })
}

/// datacompy `test_numeric_columns_equal_abs` (`abs_tol=0.2`): exact, rows 2–5 differ; within
/// 0.2, row 2 (|2 − 2.1|) is equal; NULL equals only NULL.
#[tokio::test]
async fn datacompy_numeric_absolute_tolerance() {
    let Some(file) = datacompy("numeric_abs_tol_0.2.psv", Nulls::Missing) else { return };
    let pair = equality(&file, "a", "b", &DataType::Float64);
    assert_eq!(pair.diff(&["row"], plain).await.unwrap(), unequal_rows(&[2, 3, 4, 5], 6));
    assert_eq!(pair.diff(&["row"], tolerance(0.2, 0.0)).await.unwrap(), unequal_rows(&[3, 4, 5], 6));
}

/// datacompy `test_numeric_columns_equal_rel` (`rel_tol=0.2`): row 2 is within 0.2 · 2.1, row 3
/// is not within 0.2 · 4.
#[tokio::test]
async fn datacompy_numeric_relative_tolerance() {
    let Some(file) = datacompy("numeric_rel_tol_0.2.psv", Nulls::Missing) else { return };
    let pair = equality(&file, "a", "b", &DataType::Float64);
    assert_eq!(pair.diff(&["row"], plain).await.unwrap(), unequal_rows(&[2, 3, 4, 5], 6));
    assert_eq!(pair.diff(&["row"], tolerance(0.0, 0.2)).await.unwrap(), unequal_rows(&[3, 4, 5], 6));
}

/// datacompy `test_string_columns_equal` and `test_string_pyarrow_columns_equal`: strings compare
/// byte for byte (spaces, accents, emoji, case); empty cells are NULL (default `read_csv`).
#[tokio::test]
async fn datacompy_strings_exact() {
    let Some(file) = datacompy("strings_exact.psv", Nulls::Missing) else { return };
    let pair = equality(&file, "a", "b", &DataType::Utf8);
    assert_eq!(pair.diff(&["row"], plain).await.unwrap(), unequal_rows(&[3, 4, 7, 9, 10, 11, 12], 13));
}

/// datacompy `test_string_columns_equal_with_ignore_spaces` and
/// `test_string_columns_equal_with_ignore_spaces_and_case` (read with `keep_default_na=False`):
/// the exact comparison; under the options rows 3 and 9 (and with case, 10) would be equal.
#[tokio::test]
async fn datacompy_strings_ignoring_spaces_and_case() {
    for name in ["strings_ignore_spaces.psv", "strings_ignore_spaces_and_case.psv"] {
        let Some(file) = datacompy(name, Nulls::Never) else { return };
        let pair = equality(&file, "a", "b", &DataType::Utf8);
        // ignore_spaces / ignore_case: no highwater equivalent, so the exact outcome.
        let exact = pair.diff(&["row"], plain).await.unwrap();
        assert_eq!(exact, unequal_rows(&[3, 4, 7, 9, 10, 11, 12], 13), "{name}");
    }
}

/// datacompy `test_date_columns_equal`: as text and as dates, in both directions.
#[tokio::test]
async fn datacompy_dates_exact() {
    let Some(file) = datacompy("dates_exact.psv", Nulls::Missing) else { return };
    for data_type in [DataType::Utf8, DataType::Date32] {
        let pair = equality(&file, "a", "b", &data_type);
        assert_eq!(pair.diff(&["row"], plain).await.unwrap(), unequal_rows(&[3, 4, 5], 6), "{data_type}");
        assert_eq!(pair.reversed().diff(&["row"], plain).await.unwrap(), unequal_rows(&[3, 4, 5], 6), "{data_type}");
    }
}

/// datacompy `test_date_columns_equal_with_ignore_spaces` and
/// `test_date_columns_equal_with_ignore_spaces_and_case`: as text the trailing spaces count;
/// parsed as dates (upstream's `pd.to_datetime` half, a loading choice) only rows 3–5 differ.
#[tokio::test]
async fn datacompy_dates_with_spaces() {
    let Some(file) = datacompy("dates_ignore_spaces.psv", Nulls::Never) else { return };
    // ignore_spaces: no highwater equivalent, so the exact outcome.
    let text = equality(&file, "a", "b", &DataType::Utf8);
    assert_eq!(text.diff(&["row"], plain).await.unwrap(), unequal_rows(&[1, 2, 3, 4, 5], 6));
    let Some(file) = datacompy("dates_ignore_spaces.psv", Nulls::Missing) else { return };
    let dates = |column: &str| {
        let trimmed: Vec<Option<&str>> = file.texts(column).into_iter().map(|c| c.map(str::trim)).collect();
        numbered(typed(&trimmed, &DataType::Date32))
    };
    let parsed = Pair::new(&[dates("a")], &[dates("b")]);
    assert_eq!(parsed.diff(&["row"], plain).await.unwrap(), unequal_rows(&[3, 4, 5], 6));
    assert_eq!(parsed.reversed().diff(&["row"], plain).await.unwrap(), unequal_rows(&[3, 4, 5], 6));
}

/// datacompy `test_decimal_columns_equal` (exact) and `test_decimal_columns_equal_rel` (which
/// passes `abs_tol=0.001`): decimals on both sides; the tolerance compares them as floats.
#[tokio::test]
async fn datacompy_decimal_vs_decimal() {
    let Some(file) = datacompy("decimal_vs_decimal.csv", Nulls::Missing) else { return };
    let pair = equality(&file, "a_decimal", "b_decimal", &DataType::Decimal128(20, 9));
    assert_eq!(pair.diff(&["row"], plain).await.unwrap(), unequal_rows(&[4, 5, 7, 8], 8));
    assert_eq!(pair.diff(&["row"], tolerance(0.001, 0.0)).await.unwrap(), unequal_rows(&[5, 7, 8], 8));
}

/// datacompy `test_decimal_float_columns_equal` and `test_decimal_float_columns_equal_rel`
/// (`abs_tol=0.001`): both sides as floats, as datacompy compares them, with the `NaN` cells
/// as NULL (pandas' missing) and as float NaN (equal to NaN, like `equal_nan=True`).
#[tokio::test]
async fn datacompy_decimal_vs_float() {
    for nulls in [Nulls::Missing, Nulls::Never] {
        let Some(file) = datacompy("decimal_vs_float.csv", nulls) else { return };
        let pair = equality(&file, "a_decimal", "b_number", &DataType::Float64);
        assert_eq!(pair.diff(&["row"], plain).await.unwrap(), unequal_rows(&[4, 5, 7, 8], 8), "{nulls:?}");
        let tolerant = pair.diff(&["row"], tolerance(0.001, 0.0)).await.unwrap();
        assert_eq!(tolerant, unequal_rows(&[5, 7, 8], 8), "{nulls:?}");
    }
}

/// datacompy `test_infinity_and_beyond`: infinities equal only themselves, with or without a
/// finite tolerance; row 6 (1 vs 0) becomes equal only at a tolerance of 1.
#[tokio::test]
async fn datacompy_infinity() {
    let Some(file) = datacompy("infinity.csv", Nulls::Missing) else { return };
    let pair = equality(&file, "a", "b", &DataType::Float64);
    assert_eq!(pair.diff(&["row"], plain).await.unwrap(), unequal_rows(&[3, 4, 6], 6));
    assert_eq!(pair.diff(&["row"], tolerance(0.5, 0.5)).await.unwrap(), unequal_rows(&[3, 4, 6], 6));
    assert_eq!(pair.diff(&["row"], tolerance(1.0, 0.0)).await.unwrap(), unequal_rows(&[3, 4], 6));
}

/// datacompy `test_rounded_date_columns`: upstream parses the string side as a datetime (no
/// highwater equivalent); with both sides loaded as timestamps the result is upstream's, as text
/// every row differs, and truncated to seconds only row 3 does.
#[tokio::test]
async fn datacompy_rounded_dates() {
    let Some(file) = datacompy("rounded_date_vs_string.csv", Nulls::Missing) else { return };
    // Coercing the string side to a datetime: no highwater equivalent, so both sides typed alike.
    let timestamps = equality(&file, "a_date_parsed", "b_string", &utc_micros());
    assert_eq!(timestamps.diff(&["row"], plain).await.unwrap(), unequal_rows(&[2, 3], 4));
    let text = equality(&file, "a_date_parsed", "b_string", &DataType::Utf8);
    assert_eq!(text.diff(&["row"], plain).await.unwrap(), unequal_rows(&[1, 2, 3, 4], 4));
    let seconds = |loader: DiffLoader| loader.truncate_timestamps("v", TimestampUnit::Second);
    assert_eq!(timestamps.diff(&["row"], seconds).await.unwrap(), unequal_rows(&[3], 4));
}

/// datacompy `test_strings_with_joins_with_ignore_spaces`: all rows overlap and both differ by
/// a space; the `ignore_spaces=True` half (no changes) has no highwater equivalent.
#[tokio::test]
async fn datacompy_strings_with_spaces() {
    let (Some(a), Some(b)) = (
        datacompy("strings_with_spaces_df1.csv", Nulls::Missing),
        datacompy("strings_with_spaces_df2.csv", Nulls::Missing),
    ) else {
        return;
    };
    let fields = [("a", DataType::Utf8), ("b", DataType::Utf8)];
    let pair = Pair::new(&[a.batch(&fields)], &[b.batch(&fields)]);
    // ignore_spaces: no highwater equivalent, so the exact outcome.
    assert_eq!(
        pair.diff_showing(&["a"], &["a", "b"], plain).await.unwrap(),
        Changes::default().updates(&["a=hi, b=A", "a=bye, b=A "])
    );
}

/// `tolerances_per_column_df1.csv` → `_df2.csv`, keyed by `id`.
fn per_column_tolerances() -> Option<Pair> {
    let a = datacompy("tolerances_per_column_df1.csv", Nulls::Missing)?;
    let b = datacompy("tolerances_per_column_df2.csv", Nulls::Missing)?;
    let fields = id_and(&["col1", "col2"], &DataType::Float64);
    Some(Pair::new(&[a.batch(&fields)], &[b.batch(&fields)]))
}

/// An absolute tolerance.
fn absolute(absolute: f64) -> Tolerance {
    Tolerance { absolute, relative: 0.0 }
}

/// datacompy `test_per_column_tolerances` (`abs_tol={"col1": 0.5, "col2": 0.00001}`): col1 is
/// within its tolerance, col2 is not (upstream asserts only `> 0` unequal; all 3 rows differ by
/// about 0.01), so every row is still an update, through col2 alone.
#[tokio::test]
async fn datacompy_per_column_tolerances() {
    let Some(pair) = per_column_tolerances() else { return };
    let updates = Changes::default().updates(&["id=1", "id=2", "id=3"]);
    assert_eq!(pair.diff(&["id"], plain).await.unwrap(), updates);
    let both = |loader: DiffLoader| loader.tolerance("col1", absolute(0.5)).tolerance("col2", absolute(0.00001));
    assert_eq!(pair.diff(&["id"], both).await.unwrap(), updates);
    // Each column alone, the other ignored: col1 is equal within 0.5, col2 is not within 1e-5.
    let col1 = |loader: DiffLoader| loader.ignore_columns(&["col2"]).tolerance("col1", absolute(0.5));
    assert_eq!(pair.diff(&["id"], col1).await.unwrap(), no_changes(3));
    let col2 = |loader: DiffLoader| loader.ignore_columns(&["col1"]).tolerance("col2", absolute(0.00001));
    assert_eq!(pair.diff(&["id"], col2).await.unwrap(), updates);
}

/// datacompy `test_per_column_tolerances`, with the changed columns named: exactly both
/// columns, within the tolerances col2 alone.
#[tokio::test]
async fn datacompy_per_column_tolerances_name_the_changed_column() {
    let Some(pair) = per_column_tolerances() else { return };
    let shown = ["id", highwater_diff::CHANGED_COLUMNS_COLUMN];
    let every_row = |columns: &str| -> Changes {
        let rows: Vec<String> = (1..=3).map(|id| format!("id={id}, _changed_columns=[{columns}]")).collect();
        Changes::default().updates(&rows)
    };
    let exact = pair.diff_showing(&["id"], &shown, |l| l.changed_columns(true)).await.unwrap();
    assert_eq!(exact, every_row("col1, col2"));
    let tolerant = |loader: DiffLoader| {
        loader.changed_columns(true).tolerance("col1", absolute(0.5)).tolerance("col2", absolute(0.00001))
    };
    assert_eq!(pair.diff_showing(&["id"], &shown, tolerant).await.unwrap(), every_row("col2"));
}

/// datacompy `test_dupes_with_nulls`: upstream matches NULL join keys and pairs duplicates by
/// order; highwater refuses the NULL key, and allowed, the repeated `(2, NULL)` of A.
#[tokio::test]
async fn datacompy_duplicates_with_null_keys() {
    let (Some(a), Some(b)) = (
        datacompy("dupes_with_nulls_in_join_key_df1.csv", Nulls::Missing),
        datacompy("dupes_with_nulls_in_join_key_df2.csv", Nulls::Missing),
    ) else {
        return;
    };
    let fields = [("fld_1", DataType::Int64), ("fld_2", DataType::Utf8)];
    let pair = Pair::new(&[a.batch(&fields)], &[b.batch(&fields)]);
    let key = ["fld_1", "fld_2"];
    assert_eq!(null_key(pair.diff(&key, plain).await), ("fld_2".into(), 1));
    assert_eq!(duplicate_key(pair.diff(&key, allow_null_keys).await), ("fld_1=2, fld_2=null".into(), "older"));
    assert_eq!(duplicate_key(pair.diff(&["fld_1"], plain).await), ("fld_1=2".into(), "older"));
}

/// datacompy `test_generate_id_within_group_valueerror`: datacompy's NULL sentinel collides with
/// the literal `DATACOMPY_NULL`; in highwater NULL and that literal are different keys.
#[tokio::test]
async fn datacompy_null_sentinel_is_no_collision() {
    let Some(file) = datacompy("null_sentinel_collision.csv", Nulls::Missing) else { return };
    let fields = [("a", DataType::Utf8), ("b", DataType::Int64)];
    let rows = file.batch(&fields);
    let same = Pair::same(&rows);
    assert_eq!(null_key(same.diff(&["a", "b"], plain).await), ("a".into(), 1));
    assert_eq!(same.diff(&["a", "b"], allow_null_keys).await.unwrap(), no_changes(3));
    assert_eq!(same.diff(&["a"], allow_null_keys).await.unwrap(), no_changes(3));
    // NULL → "DATACOMPY_NULL" is a delete and an insert, not an update (inferred, not upstream).
    let null = file.rows_where("a", |a| a.is_none()).batch(&fields);
    let sentinel = file.rows_where("a", |a| a == Some("DATACOMPY_NULL")).batch(&fields);
    let pair = Pair::new(&[null], &[sentinel]);
    assert_eq!(
        pair.diff(&["a"], allow_null_keys).await.unwrap(),
        Changes::default().inserts(&["a=DATACOMPY_NULL"]).deletes(&["a=null"])
    );
}

// ---------------------------------------------------------------------------------------------
// Separator collisions (dbt-labs/dbt-utils#1015, thoughtworks/recce#66, block/spirit#920, and
// dbt-utils' data_generate_surrogate_key.csv)

fn collisions(name: &str) -> Option<Fixture> {
    fixtures().map(|root| Fixture::read(&root.join("separator-collisions").join(name), Nulls::Missing))
}

/// dbt-utils#1015, recce#66 and spirit#920: composite keys whose naive concatenation collides
/// stay distinct keys, and as value columns their changes are updates.
#[tokio::test]
async fn composite_keys_colliding_when_concatenated_stay_apart() {
    let Some(file) = collisions("composite_key_collisions.csv") else { return };
    let fields = [("k1", DataType::Utf8), ("k2", DataType::Utf8)];
    let key = ["k1", "k2"];
    let all = file.batch(&fields);
    assert_eq!(Pair::same(&all).diff(&key, plain).await.unwrap(), no_changes(6));
    assert_eq!(Pair::from_nothing(&all).diff(&key, plain).await.unwrap().inserts.len(), 6);
    let a = file.rows_where("case_id", |c| c.is_some_and(|c| c.ends_with("-a")));
    let b = file.rows_where("case_id", |c| c.is_some_and(|c| c.ends_with("-b")));
    let pair = Pair::new(&[a.batch(&fields)], &[b.batch(&fields)]);
    assert_eq!(
        pair.diff(&key, plain).await.unwrap(),
        Changes::default().inserts(&["k1=123, k2=-456", "k1=ab, k2=cdef", "k1=a, k2=b-#-c"]).deletes(&[
            "k1=123-, k2=456",
            "k1=abc, k2=def",
            "k1=a-#-b, k2=c"
        ])
    );
    // recce#66 on the row hash: keyed by the pair, k1 and k2 are values (inferred, not upstream).
    let by_pair = |side: &Fixture| {
        let pairs: Vec<Option<&str>> =
            side.texts("case_id").into_iter().map(|c| c.map(|c| &c[..c.len() - 2])).collect();
        batch(vec![
            ("pair", typed(&pairs, &DataType::Utf8)),
            ("k1", side.column("k1", &DataType::Utf8)),
            ("k2", side.column("k2", &DataType::Utf8)),
        ])
    };
    let pair = Pair::new(&[by_pair(&a)], &[by_pair(&b)]);
    assert_eq!(
        pair.diff(&["pair"], plain).await.unwrap(),
        Changes::default().updates(&["pair=dbtutils-1015", "pair=recce-66", "pair=spirit-920"])
    );
}

/// dbt-utils `test_generate_surrogate_key` (`data_generate_surrogate_key.csv`, empty cells NULL):
/// NULL key columns are an error; allowed, the four rows are four keys; `column_1` alone repeats.
#[tokio::test]
async fn dbt_surrogate_key_data() {
    let Some(file) = collisions("dbt_utils_data_generate_surrogate_key.csv") else { return };
    let key = ["column_1", "column_2", "column_3"];
    let rows = file.batch(&key.map(|c| (c, DataType::Utf8)));
    let same = Pair::same(&rows);
    // Key columns are checked one after another, so the reported null is column_1's at row 2,
    // not the first row with a null (column_2, row 1): either names a real null.
    let (column, row) = null_key(same.diff(&key, plain).await);
    assert!(file.texts(&column)[row].is_none(), "{column} is null at row {row}");
    assert_eq!(same.diff(&key, allow_null_keys).await.unwrap(), no_changes(4));
    assert_eq!(duplicate_key(same.diff(&["column_1"], allow_null_keys).await), ("column_1=a".into(), "older"));
}

/// dbt-utils' `generate_surrogate_key` also equates NULL with its placeholder
/// `_dbt_utils_surrogate_key_null_` (or with `''`), and `('a-', 'b')` with `('a', '-b')`; in
/// highwater each pair is two keys (inferred, not in the fixture).
#[tokio::test]
async fn dbt_surrogate_key_collisions_stay_apart() {
    if fixtures().is_none() {
        return;
    }
    let keys = |k1: Vec<Option<&str>>, k2: Vec<&str>| {
        batch(vec![("k1", typed(&k1, &DataType::Utf8)), ("k2", Arc::new(StringArray::from(k2)) as ArrayRef)])
    };
    let a = keys(vec![None, None, Some("a-")], vec!["x", "y", "b"]);
    let b = keys(vec![Some("_dbt_utils_surrogate_key_null_"), Some(""), Some("a")], vec!["x", "y", "-b"]);
    let key = ["k1", "k2"];
    let both = arrow_select::concat::concat_batches(&a.schema(), [&a, &b]).unwrap();
    assert_eq!(Pair::same(&both).diff(&key, allow_null_keys).await.unwrap(), no_changes(6));
    assert_eq!(
        Pair::new(&[a], &[b]).diff(&key, allow_null_keys).await.unwrap(),
        Changes::default()
            .inserts(&["k1=_dbt_utils_surrogate_key_null_, k2=x", "k1=, k2=y", "k1=a, k2=-b"])
            .deletes(&["k1=null, k2=x", "k1=null, k2=y", "k1=a-, k2=b"])
    );
}
