// Node tests of the `--target nodejs` build in wasm/pkg/node (built by wasm/build.sh).
// The fixtures are written and pinned by the native test wasm/tests/native.rs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tableFromIPC } from "apache-arrow";

const require = createRequire(import.meta.url);
const hw = require(process.env.HIGHWATER_WASM_NODE ?? "../../pkg/node/highwater_wasm.js");
const fixture = (name) => new Uint8Array(readFileSync(new URL(`../fixtures/${name}`, import.meta.url)));
const KEY = { key: ["region", "id"] };
const CSV_SCHEMA = {
  region: "Utf8", id: "Int64", name: "Utf8", price: "Float64", active: "Boolean",
  updated: 'Timestamp(Microsecond, Some("UTC"))',
};

/** The change feed as sorted `kind region/id name price [changed]` lines. */
function rows(ipc) {
  const table = tableFromIPC(ipc);
  const out = [];
  for (const row of table) {
    const changed = row._changed_columns ? ` [${[...row._changed_columns].join(",")}]` : "";
    out.push(`${row._change_type} ${row.region}/${row.id} ${row.name} ${row.price}${changed}`);
  }
  return out.sort();
}

const EXPECTED = [
  "delete ap/2 null null",
  "delete eu/3 null null",
  "insert eu/4 jo null",
  "insert sa/1 hal 9",
  "update eu/2 bob 21 [price]",
  "update us/1 cy 2 [price]",
  "update us/3 ivy 1 [active,name]",
];
const COUNTS = { rowsBefore: 8, rowsAfter: 8, inserted: 2, updated: 3, deleted: 2, unchanged: 3 };

test("Parquet snapshots, every codec: exact changes, counts, changed columns", () => {
  for (const codec of ["snappy", "zstd", "lz4"]) {
    const result = hw.diff(fixture("previous.parquet"), fixture(`current.${codec}.parquet`), KEY);
    assert.deepEqual(result.counts, COUNTS, codec);
    assert.deepEqual(result.changedColumns, { active: 1, name: 1, price: 2 }, codec);
    assert.deepEqual(result.formats, { previous: "parquet", current: "parquet" });
    assert.deepEqual(rows(result.changes), EXPECTED, codec);
  }
});

test("the change set is the native diff, byte for byte", () => {
  const result = hw.diff(fixture("previous.parquet"), fixture("current.snappy.parquet"), KEY);
  assert.deepEqual(result.changes, fixture("expected-diff.arrows"));
});

test("Arrow IPC file and stream snapshots", () => {
  const result = hw.diff(fixture("previous.arrow"), fixture("current.arrows"), KEY);
  assert.deepEqual(result.formats, { previous: "arrow-file", current: "arrow-stream" });
  assert.deepEqual(rows(result.changes), EXPECTED);
});

test("CSV snapshots: declared types, or the other side's", () => {
  const declared = hw.diff(fixture("previous.csv"), fixture("current.csv"), { ...KEY, csvSchema: CSV_SCHEMA });
  assert.deepEqual(declared.counts, COUNTS);
  assert.deepEqual(rows(declared.changes), EXPECTED);
  const fromParquet = hw.diff(fixture("previous.csv"), fixture("current.snappy.parquet"), KEY);
  assert.deepEqual(rows(fromParquet.changes), EXPECTED);
});

test("split output in the IPC file format", () => {
  const result = hw.diff(fixture("previous.parquet"), fixture("current.zstd.parquet"), {
    ...KEY, output: "split", ipc: "file",
  });
  assert.equal(result.changes, undefined);
  assert.deepEqual(tableFromIPC(result.inserts).numRows, 2);
  assert.deepEqual(tableFromIPC(result.updates).numRows, 3);
  const deletes = tableFromIPC(result.deletes);
  assert.deepEqual(deletes.schema.fields.map((f) => f.name), ["region", "id"]);
  assert.deepEqual([...deletes].map((r) => `${r.region}/${r.id}`).sort(), ["ap/2", "eu/3"]);
});

test("an index round trip, and a natively written index diffs like native", () => {
  const index = hw.snapshotIndex(fixture("previous.parquet"), KEY);
  assert.deepEqual(index, fixture("previous.index"), "the index bytes native highwater-diff stores");
  const result = hw.diffAgainstIndex(fixture("previous.index"), fixture("current.snappy.parquet"));
  assert.deepEqual(result.counts, COUNTS);
  assert.deepEqual(result.changes, fixture("expected-against-index.arrows"));
  assert.deepEqual(result.index, fixture("current.index"));
  // Tomorrow: diff against today's index, produced in Node.
  const again = hw.diffAgainstIndex(result.index, fixture("current.lz4.parquet"), KEY);
  assert.deepEqual(again.counts, { ...COUNTS, inserted: 0, updated: 0, deleted: 0, unchanged: 8 });
});

test("progress is reported by stage", () => {
  const stages = [];
  hw.diff(fixture("previous.parquet"), fixture("current.snappy.parquet"), KEY, (p) => stages.push(p.stage));
  assert.deepEqual([...new Set(stages)], ["read previous", "read current", "diff", "write"]);
});

test("inspect reads a schema without diffing", () => {
  const info = hw.inspect(fixture("previous.parquet"));
  assert.equal(info.format, "parquet");
  assert.equal(info.rows, 8);
  assert.deepEqual(info.columns.map((c) => c.name), ["region", "id", "name", "price", "active", "updated"]);
});

test("errors are Errors with the native messages", () => {
  const good = fixture("previous.parquet");
  assert.throws(() => hw.diff(good, good, { key: ["nope"] }), (e) => e instanceof Error && /nope/.test(e.message));
  assert.throws(() => hw.diff(new Uint8Array([80, 65, 82, 49, 0]), good, KEY), /^Error: previous: /);
  assert.throws(() => hw.diff(good, good, { keys: ["id"] }), /unknown field `keys`/);
  assert.throws(() => hw.diff(good, good, {}), /`key` is required/);
  assert.throws(() => hw.diffAgainstIndex(new Uint8Array([1, 2, 3]), good), /index: .*not a snapshot index/);
  const doubled = fixture("previous.csv");
  const text = new TextDecoder().decode(doubled) + "eu,1,ada,10,true,2023-11-14T22:13:20Z\n";
  assert.throws(
    () => hw.diff(good, new TextEncoder().encode(text), KEY),
    (e) => /region=eu, id=1/.test(e.message),
  );
  // The instance survives its errors.
  assert.deepEqual(hw.diff(good, good, KEY).counts.unchanged, 8);
});

test("preview rows and CSV export, timestamps shown as UTC instants", () => {
  const result = hw.diff(fixture("previous.parquet"), fixture("current.snappy.parquet"), { ...KEY, preview: 3 });
  assert.equal(result.preview.length, 3);
  const inserted = result.preview.find((r) => r.region === "sa");
  assert.deepEqual(inserted, {
    region: "sa", id: "1", name: "hal", price: "9.0", active: null, updated: "2023-11-14T22:15:00Z",
    _changed_columns: null, _change_type: "insert",
  });
  const csv = new TextDecoder().decode(hw.toCsv(result.changes)).split("\n");
  assert.equal(csv[0], "region,id,name,price,active,updated,_changed_columns,_change_type");
  assert.equal(csv.length, 9, "header, 7 changes, final newline");
  assert.ok(csv.includes("us,3,ivy,1.0,false,2023-11-14T22:13:20Z,active|name,update"), csv.join("\n"));
});
