//! `anomalymatch report`: Markdown tables of benchmark results files, one row per setting,
//! each naming the commit and the command that made it. With `--readme FILE` it regenerates
//! every block of that file that reads
//!
//! ```text
//! <!-- report [--cycle N] FILE... -->
//! ...
//! <!-- /report -->
//! ```
//!
//! from the files the block names (relative to the document), so that the document's tables
//! are always those files' figures.

use crate::stdout::warning;
use anomalymatch_core::atomic::write_bytes_atomic;
use anomalymatch_jobs::benchmark::summary::{Spread, summarise};
use anomalymatch_jobs::{JobError, Result};
use clap::{Args, Parser};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Arguments of `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Results files (JSON lines, as `benchmark --results` appends them).
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Show this cycle (default: the last one every seed of the row reached).
    #[arg(long, value_name = "N")]
    pub cycle: Option<u64>,
    /// Regenerate the report blocks of this Markdown file in place instead of printing.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["files", "cycle"])]
    pub readme: Option<PathBuf>,
}

/// A block's arguments, parsed as the command's.
#[derive(Debug, Parser)]
#[command(name = "report", no_binary_name = true)]
struct BlockArgs {
    #[command(flatten)]
    args: ReportArgs,
}

const OPEN: &str = "<!-- report ";
const CLOSE: &str = "<!-- /report -->";

/// Runs `report`.
pub fn run(args: ReportArgs) -> Result<()> {
    match &args.readme {
        Some(doc) => regenerate(doc),
        None => {
            if args.files.is_empty() {
                return Err(JobError::Usage(
                    "report: name at least one results file, or --readme FILE".into(),
                ));
            }
            crate::stdout::write(format_args!("{}", table(&args.files, args.cycle)?));
            Ok(())
        }
    }
}

/// Rewrites every report block of `doc`, atomically.
fn regenerate(doc: &Path) -> Result<()> {
    let failed = |e: &dyn std::fmt::Display| JobError::Failed(format!("{}: {e}", doc.display()));
    let text = std::fs::read_to_string(doc).map_err(|e| failed(&e))?;
    let base = doc.parent().unwrap_or(Path::new("."));
    let mut out = String::new();
    let mut rest = text.as_str();
    let mut blocks = 0;
    // A block opens at the start of a line: the marker quoted in prose is not one.
    let opening = |s: &str| {
        if s.starts_with(OPEN) {
            Some(0)
        } else {
            s.find(&format!("\n{OPEN}")).map(|i| i + 1)
        }
    };
    while let Some(at) = opening(rest) {
        let line_no = text.len() - rest.len() + at;
        let line_no = text[..line_no].matches('\n').count() + 1;
        let (before, from) = rest.split_at(at);
        let head_end = from.find("-->").ok_or_else(|| {
            failed(&format!(
                "line {line_no}: a report block's opening is not closed by -->"
            ))
        })?;
        let words = from[OPEN.len()..head_end].split_whitespace();
        let parsed = BlockArgs::try_parse_from(words)
            .map_err(|e| failed(&format!("line {line_no}: {}", e.kind())))?
            .args;
        let files: Vec<PathBuf> = parsed.files.iter().map(|f| base.join(f)).collect();
        if files.is_empty() {
            return Err(failed(&format!(
                "line {line_no}: the block names no results file"
            )));
        }
        let body_start = head_end + "-->".len();
        let close = from[body_start..]
            .find(CLOSE)
            .ok_or_else(|| failed(&format!("line {line_no}: the report block has no {CLOSE}")))?;
        out.push_str(before);
        out.push_str(&from[..body_start]);
        out.push('\n');
        out.push_str(&table(&files, parsed.cycle)?);
        out.push_str(CLOSE);
        rest = &from[body_start + close + CLOSE.len()..];
        blocks += 1;
    }
    out.push_str(rest);
    if blocks == 0 {
        return Err(failed(&format!("no report block ({OPEN}FILE... -->)")));
    }
    write_bytes_atomic(doc, out.as_bytes())?;
    eprintln!("{}: {blocks} report block(s) regenerated", doc.display());
    Ok(())
}

/// The table of `files`: one row per setting (commit, preset, changed keys, query or
/// baseline, command), in the order rows first appear.
pub fn table(files: &[PathBuf], cycle: Option<u64>) -> Result<String> {
    let summary = summarise(files, cycle)?;
    let mut s = String::from(
        "| setting | seeds | cycle | AUROC | AUPRC | precision top 1% | s per seed | commit | command |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for row in &summary.rows {
        let secs = match row.seconds {
            None => String::new(),
            Some((lo, hi)) if hi - lo < 1.0 => format!("{lo:.0}"),
            Some((lo, hi)) => format!("{lo:.0}-{hi:.0}"),
        };
        let text = |k: &str| row.first.get(k).and_then(Value::as_str).unwrap_or("?");
        let seeds: Vec<String> = row.seeds.iter().map(u64::to_string).collect();
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {secs} | {} | `{}` |\n",
            setting(&row.first),
            seeds.join(","),
            row.cycle,
            spread(row.auroc),
            spread(row.auprc),
            spread(row.p_at_1pct),
            text("commit"),
            text("command").replace('|', "\\|"),
        ));
    }
    if summary.unreadable > 0 {
        warning!(
            "{} line(s) of the results files could not be read",
            summary.unreadable
        );
    }
    Ok(s)
}

/// `mean ± sd`, or the mean alone for one seed.
fn spread(s: Spread) -> String {
    if s.n > 1 {
        format!("{:.3} ± {:.3}", s.mean, s.sd)
    } else {
        format!("{:.3}", s.mean)
    }
}

/// A row's setting: the preset or baseline, the query when not the protocol's, and the
/// changed keys.
fn setting(l: &Value) -> String {
    let mut parts = Vec::new();
    match l.get("baseline").and_then(Value::as_str) {
        Some(b) => parts.push(format!("baseline `{b}`")),
        None => parts.push(
            l.get("preset")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string(),
        ),
    }
    if let Some(q) = l.get("query").and_then(Value::as_str)
        && q != anomalymatch_jobs::config::PROTOCOL
    {
        parts.push(format!("query `{q}`"));
    }
    if let Some(c) = l.get("changed").and_then(Value::as_object) {
        parts.extend(c.iter().map(|(k, v)| format!("`{k}={v}`")));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Write;

    fn line(seed: u64, cycle: u64, auroc: f64, changed: Value) -> String {
        json!({"seed": seed, "cycle": cycle, "auroc": auroc, "auprc": 0.1, "p_at_1pct": 0.2,
               "seed_s": 100.0 * cycle as f64, "preset": "recommended", "query": "protocol",
               "commit": "abc1234", "changed": changed, "command": "anomalymatch benchmark"})
        .to_string()
    }

    #[test]
    fn rows_group_by_setting_and_show_the_cycle_every_seed_reached() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("r.jsonl");
        let mut w = std::fs::File::create(&f).unwrap();
        for l in [
            line(42, 1, 0.6, json!({})),
            line(42, 2, 0.7, json!({})),
            line(43, 1, 0.8, json!({})),
            line(42, 1, 0.5, json!({"train.lr": 0.01})),
        ] {
            writeln!(w, "{l}").unwrap();
        }
        writeln!(w, "{{torn").unwrap();
        let t = table(std::slice::from_ref(&f), None).unwrap();
        let rows: Vec<&str> = t.lines().skip(2).collect();
        assert_eq!(rows.len(), 2, "{t}");
        // Seed 43 reached only cycle 1: the row shows cycle 1 of both seeds.
        assert!(
            rows[0].starts_with("| recommended | 42,43 | 1 | 0.700 ± 0.100 |"),
            "{t}"
        );
        assert!(
            rows[1].contains("`train.lr=0.01`") && rows[1].contains("| 0.500 |"),
            "{t}"
        );
        let t2 = table(&[f], Some(2)).unwrap();
        assert!(t2.contains("| recommended | 42 | 2 | 0.700 |"), "{t2}");
    }

    #[test]
    fn a_readme_block_is_regenerated_from_its_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("res")).unwrap();
        std::fs::write(
            dir.path().join("res/a.jsonl"),
            line(42, 1, 0.9, json!({})) + "\n",
        )
        .unwrap();
        let doc = dir.path().join("README.md");
        let text = "# T\n\nSee `<!-- report FILE -->`.\n<!-- report res/a.jsonl -->\nold table\n\
                    <!-- /report -->\n\nafter\n";
        std::fs::write(&doc, text).unwrap();
        regenerate(&doc).unwrap();
        let new = std::fs::read_to_string(&doc).unwrap();
        assert!(
            new.starts_with(
                "# T\n\nSee `<!-- report FILE -->`.\n<!-- report res/a.jsonl -->\n| setting |"
            ),
            "{new}"
        );
        assert!(
            new.contains("| 0.900 |") && !new.contains("old table"),
            "{new}"
        );
        assert!(new.ends_with("<!-- /report -->\n\nafter\n"), "{new}");
        // Regenerating again changes nothing.
        regenerate(&doc).unwrap();
        assert_eq!(std::fs::read_to_string(&doc).unwrap(), new);
        std::fs::write(&doc, "<!-- report res/b.jsonl -->\n<!-- /report -->\n").unwrap();
        let e = regenerate(&doc).unwrap_err().to_string();
        assert!(e.contains("b.jsonl: no such results file"), "{e}");
        std::fs::write(&doc, "<!-- report res/a.jsonl -->\nno end\n").unwrap();
        let e = regenerate(&doc).unwrap_err().to_string();
        assert!(
            e.contains("README.md: line 1") && e.contains("no <!-- /report -->"),
            "{e}"
        );
    }
}
