//! `anomalymatch discover`, the main job ([`anomalymatch_jobs::discover`]): from a handful of
//! labels, train FixMatch, rank every unlabelled image, and write `candidates.csv`,
//! `candidates.png` (a contact sheet of the top) and `checkpoint.safetensors` into the output
//! folder. With no arguments it runs on the built-in data set, whose hidden classes it uses to
//! say how many of the top are real anomalies (they are never shown to the model).

use crate::cli::{Common, DataFlags, TopFlag};
use crate::stdout::{Console, out};
use anomalymatch_core::printable;
use anomalymatch_jobs::Result;
use anomalymatch_jobs::discover::{HiddenTruth, discover};
use clap::Args;

/// Arguments of `discover`.
#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// Shared flags.
    #[command(flatten)]
    pub common: Common,
    /// Images, labels, size and iterations.
    #[command(flatten)]
    pub data: DataFlags,
    /// How many top candidates.
    #[command(flatten)]
    pub top: TopFlag,
}

/// Runs `discover`.
pub fn run(args: DiscoverArgs) -> Result<()> {
    let config = super::configure(&args.common, &[&args.data, &args.top])?;
    let report = Console::new(args.common.quiet);
    let found = discover(&config, &report)?;
    report.wrote(&found.written);
    for (i, r) in found.ranking.top(10).iter().enumerate() {
        out!("  #{:<3} {:<32} {:.4}", i + 1, printable(&r.name), r.score);
    }
    if let Some(truth) = &found.truth {
        out!("{}", truth_line(truth));
    }
    Ok(())
}

/// How many of the first look, of the top and of the top 1% are anomalies by the hidden
/// classes, each against what a random ranking would hold at the base rate.
fn truth_line(t: &HiddenTruth) -> String {
    let rate = t.base_rate();
    let hits = |(found, k): (usize, usize)| {
        format!("{found} of the top {k} (chance: {:.1})", rate * k as f64)
    };
    let m = &t.metrics;
    format!(
        "hidden truth ({}): anomalies among the candidates: {}, {}, {} of the top 1% \
         ({}; chance: {:.1}); {} among {} unlabelled (base rate {:.1}%); AUROC {:.3}, \
         AUPRC {:.3}",
        t.path.display(),
        hits(t.first_look),
        hits(t.top),
        t.top_1pct.0,
        t.top_1pct.1,
        rate * t.top_1pct.1 as f64,
        m.anomalies,
        m.n,
        100.0 * rate,
        m.auroc,
        m.average_precision
    )
}
