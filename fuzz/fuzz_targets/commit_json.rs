//! The table log's JSON objects on arbitrary bytes — a commit (`Commit::from_json`), a
//! checkpoint (`Checkpoint::from_json`), the `_last_checkpoint` pointer — and a decoded
//! object's persisted schema: a typed error naming the object's path, or a value; never a
//! panic. What decodes re-encodes to an equal value (and the encoding is then stable), and
//! is refused under a version its name does not say.
#![no_main]

use highwater_store::{Checkpoint, Commit, Error, last_checkpoint_from_json};
use libfuzzer_sys::fuzz_target;

const PATH: &str = "_highwater/log/fuzz.json";

/// The `version` the object says, so that a well-formed object gets past the name check. (`None`
/// also where serde_json reads the typed object but not a `Value`: it does not check UTF-8 in
/// the strings of fields it skips.)
fn claimed_version(data: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(data).ok()?.get("version")?.as_u64()
}

fn check_error(error: &Error) {
    let text = error.to_string();
    assert!(matches!(error, Error::Corrupt { .. } | Error::UnsupportedFormat { .. }), "{text}");
    assert!(text.contains(PATH), "the error does not name the object: {text}");
}

static HOOK: std::sync::Once = std::sync::Once::new();

fuzz_target!(|data: &[u8]| {
    // libfuzzer-sys aborts on any panic from its hook; highwater catches arrow-ipc's decoder
    // panics, so print them and let them unwind (an uncaught one still aborts).
    HOOK.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("{info}"))));
    let claimed = claimed_version(data);
    let version = claimed.unwrap_or(0);

    match Commit::from_json(data, PATH, version) {
        Ok(commit) => {
            let _ = commit.schema.decode();
            let json = commit.to_json();
            let again = Commit::from_json(&json, PATH, version).expect("a commit's own JSON decodes");
            assert_eq!(again, commit);
            assert_eq!(again.to_json(), json, "the commit's encoding is not stable");
            let error = Commit::from_json(data, PATH, version.wrapping_add(1)).expect_err("the version is checked");
            check_error(&error);
        }
        Err(error) => check_error(&error),
    }

    match Checkpoint::from_json(data, PATH, version) {
        Ok(checkpoint) => {
            let _ = checkpoint.schema.decode();
            let json = serde_json::to_vec_pretty(&checkpoint).expect("encodes");
            let again = Checkpoint::from_json(&json, PATH, version).expect("a checkpoint's own JSON decodes");
            let value = serde_json::to_value(&checkpoint).expect("encodes");
            assert_eq!(serde_json::to_value(&again).expect("encodes"), value);
            assert_eq!(serde_json::to_vec_pretty(&again).expect("encodes"), json, "the encoding is not stable");
            let error = Checkpoint::from_json(data, PATH, version.wrapping_add(1)).expect_err("the version is checked");
            check_error(&error);
        }
        Err(error) => check_error(&error),
    }

    match last_checkpoint_from_json(data, PATH) {
        Ok(pointed) => assert!(claimed.is_none_or(|claimed| claimed == pointed), "{pointed} vs {claimed:?}"),
        Err(error) => check_error(&error),
    }
});
