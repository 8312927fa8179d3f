//! Watermark text parsing: never a panic on any text, kind or zone; whatever parses survives
//! the display form and serde unchanged.
#![no_main]

use arbitrary::Unstructured;
use highwater_core::watermark::{TimestampUnit, WatermarkKind, WatermarkValue};
use highwater_core::zone::Zone;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let kinds = [
        WatermarkKind::Int64,
        WatermarkKind::Date,
        WatermarkKind::Utf8,
        WatermarkKind::Timestamp { unit: TimestampUnit::Second, timezone: Some("UTC".into()) },
        WatermarkKind::Timestamp { unit: TimestampUnit::Millisecond, timezone: Some("+02:00".into()) },
        WatermarkKind::Timestamp { unit: TimestampUnit::Microsecond, timezone: Some("Europe/Berlin".into()) },
        WatermarkKind::Timestamp { unit: TimestampUnit::Nanosecond, timezone: None },
        WatermarkKind::Tuple { elements: vec![WatermarkKind::Utf8, WatermarkKind::Int64, WatermarkKind::Int64] },
    ];
    let Ok(kind) = u.choose(&kinds) else { return };
    let zone_text: &str = u.arbitrary().unwrap_or("UTC");
    let zone = Zone::parse(zone_text).unwrap_or(Zone::UTC);
    let text: &str = u.arbitrary().unwrap_or("");
    let Ok(value) = WatermarkValue::parse(text, kind, &zone) else { return };
    let json = serde_json::to_string(&value).expect("serialises");
    let back: WatermarkValue = serde_json::from_str(&json).expect("deserialises");
    assert_eq!(back, value);
    if matches!(kind, WatermarkKind::Int64 | WatermarkKind::Date | WatermarkKind::Timestamp { .. }) {
        // Display then parse gives the same value wherever the calendar can print it.
        let shown = value.to_string();
        if let Ok(again) = WatermarkValue::parse(&shown, kind, &zone) {
            assert_eq!(again, value, "{text:?} -> {shown}");
        }
    }
    let _ = value.to_seed_string(&zone);
});
