//! The real Debezium envelopes of `../shared/fixtures/debezium/` (its README says where each came
//! from): every change event decodes, and the MySQL and PostgreSQL sequences apply, through
//! core's CDC reduction, to the end state their documentation describes. Skipped when the
//! fixtures are absent (a published crate), except under `CI=true`.

use std::collections::HashMap;
use std::path::PathBuf;

use highwater_core::cdc::{EventOp, EventOrigin, KeyState, TiePolicy, decode_events, reduce};
use highwater_core::debezium::{DebeziumOptions, SequenceSource, decode_envelopes};
use highwater_core::key::KeyFingerprint;

fn fixtures() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/debezium");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI needs ../shared/fixtures/debezium");
    None
}

fn read(names: &[&str]) -> Vec<u8> {
    let dir = fixtures().expect("checked by the caller");
    let mut bytes = Vec::new();
    for name in names {
        bytes.extend(std::fs::read(dir.join(name)).unwrap());
        bytes.push(b'\n');
    }
    bytes
}

#[test]
fn every_change_event_fixture_decodes() {
    let Some(dir) = fixtures() else { return };
    let mut decoded = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        // Keys, the unwrapped row and the reconstructed header sequences are not envelopes.
        if name.contains("-key.") || name.contains("unwrapped") || name.contains("reconstructed") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let events =
            decode_envelopes(&bytes, &name, &DebeziumOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        if name.contains("tombstone") {
            assert_eq!((events.batch.num_rows(), events.tombstones), (0, 1), "{name}");
        } else {
            assert_eq!(events.batch.num_rows(), 1, "{name}");
        }
        decoded += 1;
    }
    assert!(decoded >= 14, "only {decoded} fixtures decoded");
    // With the schema, Kafka Connect types: `id` is int32 there.
    let events =
        decode_envelopes(&read(&["postgresql-create.schema-payload.json"]), "pg", &DebeziumOptions::default()).unwrap();
    assert_eq!(events.batch.schema().field_with_name("id").unwrap().data_type(), &arrow_schema::DataType::Int32);
    assert_eq!(events.sequence, SequenceSource::Postgres);
    // Not an envelope: a clear error.
    let error =
        decode_envelopes(&read(&["test-resource-serde-unwrapped.json"]), "unwrapped.json", &DebeziumOptions::default())
            .unwrap_err();
    assert!(error.to_string().contains("no `op`"), "{error}");
}

/// The winning operation per key (sorted) after applying the envelopes of `bytes` in order.
fn winners(bytes: &[u8], key: &str, name: &str) -> Vec<EventOp> {
    let events = decode_envelopes(bytes, name, &DebeziumOptions::default()).unwrap();
    let spec = events.spec(&[key]);
    let origin = EventOrigin { source: name, first_row: 0 };
    let decoded = decode_events(&events.batch, 0, &spec, &events.data_columns(), origin).unwrap();
    let state: HashMap<KeyFingerprint, KeyState> = HashMap::new();
    let reduction = reduce(decoded, &state, None, TiePolicy::Error, &|e| format!("{e:?}")).unwrap();
    let mut ops: Vec<EventOp> = reduction.winners.values().map(|e| e.op).collect();
    ops.sort_by_key(|op| format!("{op:?}"));
    ops
}

/// The same for fixture files, in the given order.
fn apply(files: &[&str], key: &str) -> Vec<EventOp> {
    winners(&read(files), key, "sequence")
}

#[test]
fn the_documented_sequences_apply_to_their_end_state() {
    if fixtures().is_none() {
        return;
    }
    // MySQL tutorial: snapshot read, update, delete, tombstone of customer 1004 -> deleted.
    let mysql = [
        "mysql-tutorial-snapshot-read.schema-payload.json",
        "mysql-tutorial-update.payload-only.json",
        "mysql-tutorial-delete.payload-only.json",
        "mysql-tutorial-tombstone-as-printed.json",
    ];
    assert_eq!(apply(&mysql, "id"), [EventOp::Delete]);
    // Any arrival order gives the same end state: the binlog position decides.
    let mut reversed = mysql;
    reversed.reverse();
    assert_eq!(apply(&reversed, "id"), [EventOp::Delete]);
    // PostgreSQL: create, update, delete (REPLICA IDENTITY DEFAULT: the delete's before is the key).
    let postgres = [
        "postgresql-create.schema-payload.json",
        "postgresql-update.payload-only.json",
        "postgresql-delete.payload-only.json",
    ];
    assert_eq!(apply(&postgres, "id"), [EventOp::Delete]);
    let mut reversed = postgres;
    reversed.reverse();
    assert_eq!(apply(&reversed, "id"), [EventOp::Delete]);
}

/// A primary-key change as Debezium emits it (delete of the old key with a `__debezium.newkey`
/// header, a tombstone, a create of the new key), from the sequences Debezium's own integration
/// tests assert: the old key ends deleted, the new one inserted, in any arrival order.
#[test]
fn a_primary_key_change_applies_as_delete_then_create() {
    let Some(dir) = fixtures() else { return };
    let text = std::fs::read_to_string(dir.join("pk-change-sequences.reconstructed.json")).unwrap();
    let root: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut checked = 0;
    for (name, scenario) in root.as_object().unwrap() {
        let Some(records) = scenario.get("records_in_order").and_then(|r| r.as_array()) else { continue };
        let mut lines = Vec::new();
        for (position, record) in records.iter().enumerate() {
            let source = serde_json::json!({"connector": "mysql", "file": "bin.000001", "pos": 100 + position});
            let line = match (record.get("op").and_then(|o| o.as_str()), record.get("kind")) {
                (Some("d"), _) => serde_json::json!({"op": "d", "before": record["key"], "source": source}),
                (Some("c"), _) => serde_json::json!({"op": "c", "after": record["key"], "source": source}),
                (None, Some(_)) => serde_json::Value::Null,
                other => panic!("{name}: unexpected record {other:?}"),
            };
            lines.push(line.to_string());
        }
        let key = records[0]["key"].as_object().unwrap().keys().next().unwrap().clone();
        let new_key = records[0]["headers"]["__debezium.newkey"].as_object().unwrap()[&key].clone();
        let expected = |lines: &[String]| winners(lines.join("\n").as_bytes(), &key, name);
        assert_eq!(expected(&lines), [EventOp::Delete, EventOp::Insert], "{name} (new key {new_key})");
        lines.reverse();
        assert_eq!(expected(&lines), [EventOp::Delete, EventOp::Insert], "{name}, reversed");
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} scenarios");
}
