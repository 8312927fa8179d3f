//! The JavaScript exports themselves, inside wasm32 (Node and headless Chromium): options as JS
//! objects, results read back through `Reflect`, errors as JS `Error`s.
#![cfg(target_arch = "wasm32")]

use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::wasm_bindgen_test;

fn object(json: &str) -> JsValue {
    js_sys::JSON::parse(json).unwrap()
}

fn get(value: &JsValue, path: &[&str]) -> JsValue {
    path.iter().fold(value.clone(), |v, key| Reflect::get(&v, &JsValue::from_str(key)).unwrap())
}

#[wasm_bindgen_test]
fn diff_returns_counts_changes_and_index() {
    let previous = include_bytes!("fixtures/previous.parquet").to_vec();
    let current = include_bytes!("fixtures/current.zstd.parquet").to_vec();
    let options = object(r#"{"key": ["region", "id"], "index": true, "preview": 2}"#);
    let result = highwater_wasm::wasm::diff(previous, current, &options, None).unwrap();
    assert_eq!(get(&result, &["counts", "inserted"]).as_f64(), Some(2.0));
    assert_eq!(get(&result, &["counts", "updated"]).as_f64(), Some(3.0));
    assert_eq!(get(&result, &["counts", "deleted"]).as_f64(), Some(2.0));
    assert_eq!(get(&result, &["changedColumns", "price"]).as_f64(), Some(2.0));
    let changes: Uint8Array = get(&result, &["changes"]).dyn_into().unwrap();
    assert_eq!(changes.to_vec(), include_bytes!("fixtures/expected-diff.arrows"));
    assert!(get(&result, &["index"]).is_instance_of::<Uint8Array>());
    assert_eq!(js_sys::Array::from(&get(&result, &["preview"])).length(), 2);
}

#[wasm_bindgen_test]
fn errors_are_js_errors_with_the_native_message() {
    let good = include_bytes!("fixtures/previous.parquet").to_vec();
    let error = highwater_wasm::wasm::diff(good.clone(), good, &object(r#"{"key": ["nope"]}"#), None).unwrap_err();
    let error: JsValue = error.into();
    let error: js_sys::Error = error.dyn_into().unwrap();
    let message = String::from(error.message());
    assert!(message.contains("nope"), "{message}");
}

#[wasm_bindgen_test]
fn to_csv_and_inspect() {
    let csv = highwater_wasm::wasm::to_csv(include_bytes!("fixtures/expected-diff.arrows").to_vec()).unwrap();
    let text = String::from_utf8(csv).unwrap();
    assert!(text.starts_with("region,id,name,price,active,updated,_changed_columns,_change_type\n"), "{text}");
    assert_eq!(text.lines().count(), 8);
    let info = highwater_wasm::wasm::inspect(include_bytes!("fixtures/current.lz4.parquet").to_vec()).unwrap();
    assert_eq!(get(&info, &["rows"]).as_f64(), Some(8.0));
}
