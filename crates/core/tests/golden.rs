//! Recomputes every golden vector of row-hash spec v1 (`tests/golden/row_hash_v1.json`).
//!
//! The file is data: the wasm crate checks the same file, so native and wasm cannot drift. A
//! failing vector means the spec changed; that needs a new spec version, never a re-bless.

#[path = "golden/cases.rs"]
mod cases;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use highwater_core::hash::{HashOptions, RowHasher};
use highwater_core::key::{KeyHasher, KeyOptions};
use serde_json::{Value, json};

fn golden_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/row_hash_v1.json")
}

struct Computed {
    columns: BTreeMap<String, Vec<String>>,
    rows: Vec<String>,
    fingerprints: Option<Vec<String>>,
}

fn compute(case: &cases::Case) -> Computed {
    let options = HashOptions { naive_timezone: case.naive_timezone.clone() };
    let schema = case.batch.schema();
    let hasher = RowHasher::for_schema(&schema, &[], &options).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let hashes = hasher.hash_batch(&case.batch).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let columns = hasher
        .columns()
        .enumerate()
        .map(|(index, name)| (name.to_owned(), hashes.column(index).iter().map(|h| cases::hex64(*h)).collect()))
        .collect();
    let rows = hashes.rows().iter().map(|h| cases::hex128(*h)).collect();
    let fingerprints = case.key.as_ref().map(|key| {
        let key = KeyHasher::new(key, &KeyOptions { allow_null_keys: false, hash: options.clone() }).unwrap();
        key.fingerprints(&case.batch).unwrap().iter().map(|f| cases::hex128(*f)).collect()
    });
    Computed { columns, rows, fingerprints }
}

#[test]
fn row_hash_v1_golden_vectors() {
    let text = std::fs::read_to_string(golden_path()).unwrap();
    let (mut root, cases) = cases::load(&text).unwrap();
    assert!(cases.len() >= 40, "the golden file needs at least 40 cases");
    let bless = std::env::var("HIGHWATER_BLESS").is_ok_and(|v| v == "1");
    let mut computed = BTreeMap::new();
    let mut failures = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let result = compute(case);
        if bless {
            let mut expect = json!({ "columns": result.columns, "rows": result.rows });
            if let Some(fingerprints) = &result.fingerprints {
                expect["fingerprints"] = json!(fingerprints);
            }
            root["cases"][index]["expect"] = expect;
        } else {
            let expect = &case.json["expect"];
            assert!(!expect.is_null(), "{}: no expected values", case.name);
            if expect["rows"] != json!(result.rows) {
                failures.push(format!("{}: rows {:?} != expected {}", case.name, result.rows, expect["rows"]));
            }
            if expect["columns"] != json!(result.columns) {
                failures.push(format!(
                    "{}: column hashes {:?} != expected {}",
                    case.name, result.columns, expect["columns"]
                ));
            }
            if let Some(fingerprints) = &result.fingerprints {
                if expect["fingerprints"] != json!(fingerprints) {
                    failures.push(format!(
                        "{}: fingerprints {fingerprints:?} != expected {}",
                        case.name, expect["fingerprints"]
                    ));
                }
            }
        }
        computed.insert(case.name.clone(), result);
    }
    check_relations(&root, &computed);
    if bless {
        std::fs::write(golden_path(), serde_json::to_string_pretty(&root).unwrap() + "\n").unwrap();
    }
    assert!(failures.is_empty(), "golden vectors changed:\n{}", failures.join("\n"));
}

/// The properties the file states about its own cases (equal layouts, distinct separators, …).
fn check_relations(root: &Value, computed: &BTreeMap<String, Computed>) {
    let get = |name: &Value| computed.get(name.as_str().unwrap()).unwrap_or_else(|| panic!("no case {name}"));
    for relation in root["relations"].as_array().unwrap() {
        if let Some(names) = relation["equal"].as_array() {
            let first = get(&names[0]);
            for name in &names[1..] {
                assert_eq!(first.rows, get(name).rows, "{} vs {name}: {}", names[0], relation["why"]);
            }
        }
        if let Some(names) = relation["equal_fingerprints"].as_array() {
            assert_eq!(get(&names[0]).fingerprints, get(&names[1]).fingerprints, "{}", relation["why"]);
        }
        if let Some(names) = relation["distinct"].as_array() {
            let (a, b) = (get(&names[0]), get(&names[1]));
            let rows: Vec<usize> = match relation["rows"].as_array() {
                Some(rows) => rows.iter().map(|r| r.as_u64().unwrap() as usize).collect(),
                None => (0..a.rows.len()).collect(),
            };
            for row in rows {
                assert_ne!(a.rows[row], b.rows[row], "{} vs {} row {row}: {}", names[0], names[1], relation["why"]);
            }
        }
        if let Some(name) = relation["distinct_rows"].as_str() {
            let case = &computed[name];
            let equal_pairs: Vec<(usize, usize)> = relation["except"]
                .as_array()
                .map(|pairs| {
                    pairs.iter().map(|p| (p[0].as_u64().unwrap() as usize, p[1].as_u64().unwrap() as usize)).collect()
                })
                .unwrap_or_default();
            for hashes in [Some(&case.rows), case.fingerprints.as_ref()].into_iter().flatten() {
                for i in 0..hashes.len() {
                    for j in i + 1..hashes.len() {
                        if equal_pairs.contains(&(i, j)) {
                            assert_eq!(hashes[i], hashes[j], "{name}: rows {i} and {j} must hash equal");
                        } else {
                            assert_ne!(hashes[i], hashes[j], "{name}: rows {i} and {j} collide");
                        }
                    }
                }
            }
        }
    }
}

/// The separator-collision pairs of `../shared/fixtures` (real keys from dbt-utils, recce and
/// spirit issues) fingerprint apart. Skipped when the fixtures are absent, except under CI.
#[test]
fn separator_collision_fixture_keys_stay_apart() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/snapshot-diff/separator-collisions/composite_key_collisions.csv");
    let Ok(text) = std::fs::read_to_string(&path) else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "fixture missing under CI: {}", path.display());
        eprintln!("skipped: {} not found", path.display());
        return;
    };
    let mut k1 = Vec::new();
    let mut k2 = Vec::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        k1.push(Value::from(fields[2]));
        k2.push(Value::from(fields[3]));
    }
    let data_type = cases::parse_type("utf8").unwrap();
    let batch = highwater_core::arrow::array::RecordBatch::try_from_iter([
        ("k1", cases::build(&data_type, &k1).unwrap()),
        ("k2", cases::build(&data_type, &k2).unwrap()),
    ])
    .unwrap();
    let key = KeyHasher::new(["k1", "k2"], &KeyOptions::default()).unwrap();
    let fingerprints = key.fingerprints(&batch).unwrap();
    for i in 0..fingerprints.len() {
        for j in i + 1..fingerprints.len() {
            assert_ne!(fingerprints[i], fingerprints[j], "rows {i} and {j} of {}", path.display());
        }
    }
    assert!(fingerprints.len() >= 6);
}
