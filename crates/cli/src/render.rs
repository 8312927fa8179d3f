//! Reports as a readable block on a terminal, or as JSON (`--json`).

use std::fmt::Write as _;

use highwater::LoadReport;
use highwater::core::report::PatternReport;
use serde::Serialize;

/// The outcome of one table, as printed with `--json`.
#[derive(Debug, Serialize)]
pub struct TableOutcome {
    /// The table's name in the pipeline.
    pub table: String,
    /// `timestamp`, `sequence`, `cdc` or `diff`.
    pub pattern: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// The report, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<LoadReport>,
    /// The error, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Stopped by SIGINT or SIGTERM before its commit (only present when it was).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
}

fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A report as a few aligned lines.
pub fn human(report: &LoadReport) -> String {
    let mut out = String::new();
    let verb = match (report.planned, report.commit_version) {
        (true, _) => "plan (nothing written)".to_owned(),
        (false, Some(version)) => format!("committed version {version}"),
        (false, None) => "nothing new, nothing committed".to_owned(),
    };
    let _ = writeln!(out, "{} ({}) — {verb} in {:.2} s", report.table, report.pattern(), report.total_seconds());
    let rows = &report.rows;
    let _ = writeln!(
        out,
        "  rows       read {}  written {}  (+{} inserted, ~{} updated, -{} deleted, {} skipped)",
        thousands(rows.read),
        thousands(rows.written),
        thousands(rows.inserted),
        thousands(rows.updated),
        thousands(rows.deleted),
        thousands(rows.skipped)
    );
    let files = &report.files;
    let _ = writeln!(
        out,
        "  files      {} listed, {} new, {} scanned, {} pruned, {} late, {} written",
        files.listed, files.new, files.scanned, files.pruned, files.late, files.written
    );
    let show = |w: &Option<highwater::core::watermark::WatermarkValue>| {
        w.as_ref().map_or_else(|| "none".to_owned(), ToString::to_string)
    };
    let _ = writeln!(out, "  watermark  {} → {}", show(&report.watermark_before), show(&report.watermark_after));
    match &report.details {
        PatternReport::Timestamp(t) => {
            let _ = writeln!(
                out,
                "  timestamp  boundary duplicates {}, lookback re-reads {}, held by settle {}, null cursors {}",
                t.boundary_duplicates, t.lookback_duplicates, t.held_back, t.null_cursors
            );
        }
        PatternReport::Sequence(s) => {
            let gaps: Vec<String> = s
                .gaps
                .iter()
                .take(5)
                .map(|g| if g.first == g.last { g.first.to_string() } else { format!("{}–{}", g.first, g.last) })
                .collect();
            let _ = writeln!(
                out,
                "  sequence   duplicates {}, gaps {} ({} ids{}), held back {}",
                s.duplicates,
                s.gap_count,
                s.missing_ids,
                if gaps.is_empty() { String::new() } else { format!(": {}", gaps.join(", ")) },
                s.held_back
            );
        }
        PatternReport::Cdc(c) => {
            let _ = writeln!(
                out,
                "  cdc        events {}, stale {}, replayed {}, superseded {}, tombstoned {}, purged {}, truncates {}",
                c.events, c.ignored_stale, c.ignored_duplicate, c.superseded, c.tombstoned, c.purged, c.truncates
            );
        }
        PatternReport::Diff(d) => {
            let _ = writeln!(
                out,
                "  diff       {} → {} rows: +{} ~{} -{} ={}{}",
                thousands(d.rows_before),
                thousands(d.rows_after),
                thousands(d.inserted),
                thousands(d.updated),
                thousands(d.deleted),
                thousands(d.unchanged),
                if d.schema_changes.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; schema: {}",
                        d.schema_changes
                            .iter()
                            .map(|c| format!("{} {}", c.column, c.change))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            );
        }
    }
    for warning in &report.warnings {
        let _ = writeln!(out, "  warning    {warning}");
    }
    out
}
