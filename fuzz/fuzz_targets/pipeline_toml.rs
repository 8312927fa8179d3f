//! The CLI's pipeline-file parser (`config::parse`, compiled here from the CLI's own source
//! file: the CLI is a binary) on arbitrary text: never a panic; an error names the file and a
//! line of it; a parsed pipeline keeps its path and places each table on a line of the file;
//! every duration it accepted (and `parse_duration` on any text) is the exact sum of its parts
//! — never a silently wrapped total.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

#[allow(dead_code, reason = "the CLI uses more of its config module than this target")]
#[path = "../../crates/cli/src/config.rs"]
mod config;

const FILE: &str = "fuzz/pipeline.toml";

/// `parse_duration`'s grammar computed without overflow: `None` where it must be refused.
fn reference_seconds(text: &str) -> Option<u128> {
    let (mut total, mut number, mut any) = (0u128, String::new(), false);
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        let value: u64 = number.parse().ok()?;
        total += u128::from(value) * unit;
        number.clear();
        any = true;
    }
    (number.is_empty() && any).then_some(total)
}

fn check_duration(text: &str) {
    let parsed = config::parse_duration(text).map(|d| u128::from(d.as_secs()));
    match reference_seconds(text) {
        Some(total) if total <= u128::from(u64::MAX) => assert_eq!(parsed, Ok(total), "{text:?}"),
        _ => assert!(parsed.is_err(), "{text:?} parses as {parsed:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if text.len() < 64 {
        check_duration(text);
    }
    let lines = text.lines().count().max(1);
    match config::parse(text, FILE, Path::new(FILE)) {
        Ok(pipeline) => {
            assert_eq!(pipeline.path, Path::new(FILE));
            assert!(pipeline.settings.concurrency >= 1);
            for (line, table) in &pipeline.tables {
                assert!((1..=lines).contains(line), "table `{}` at line {line} of {lines}", table.name);
                assert!(!table.name.is_empty());
                for value in [&table.lookback, &table.settle, &table.hold_on_gap].into_iter().flatten() {
                    check_duration(value);
                }
                if let Some(value) = table.tombstone_retention.as_deref().filter(|v| *v != "forever") {
                    check_duration(value);
                }
            }
        }
        Err(error) => {
            assert_eq!(error.file, FILE);
            assert!(error.to_string().starts_with(FILE), "{error}");
            assert!(error.line <= lines + 1, "line {} of {lines}: {error}", error.line);
        }
    }
});
