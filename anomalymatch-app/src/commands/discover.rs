//! `anomalymatch discover`, the main job: from a handful of labels, train FixMatch, rank every
//! unlabelled image, and write `candidates.csv`, `candidates.png` (a contact sheet of the top)
//! and `checkpoint.safetensors` into the output folder. With no arguments it runs on the
//! built-in data set, whose hidden classes it uses to say how many of the top are real anomalies
//! (they are never shown to the model).

use crate::assemble::{self, say};
use crate::cli::{Common, DataFlags, TopFlag};
use crate::config::Config;
use crate::error::Result;
use crate::outputs;
use crate::stdout::{out, warning};
use anomalymatch_core::atomic::AtomicGroup;
use anomalymatch_core::fixmatch::TrainData;
use anomalymatch_core::metrics::top_k_for_fraction;
use anomalymatch_core::{Label, Ranking, RankingMetrics, UnlabelledPool, printable, score_source};
use clap::Args;
use std::collections::HashMap;
use std::time::Instant;

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
    discover(&config, args.common.quiet)
}

fn discover(config: &Config, quiet: bool) -> Result<()> {
    let (images, labels_path) = assemble::images_and_labels(config)?;
    let labels_path = labels_path.ok_or_else(|| {
        crate::error::AppError::Usage(
            "discover needs starting labels: --labels FILE (data.labels)".into(),
        )
    })?;
    let out = &config.output.dir;
    let _lock = assemble::prepare_output(out, None, quiet)?;
    let labels = assemble::read_labels(&labels_path)?;
    let truth = assemble::truth(&config.truth, &images)?;

    let t0 = Instant::now();
    let loader = assemble::loader(config)?;
    let spec = loader.spec();
    let model = assemble::model(config, spec)?;
    let mut pool = UnlabelledPool::new(
        assemble::open_source(config, &images, true)?,
        loader.clone(),
        config.data.n_to_load,
    )?;
    let labelled = assemble::labelled_set(&mut pool, &labels, quiet)?;
    let known = assemble::name_set(labelled.names());
    let window = pool.next_window(&known, !quiet)?;
    say(
        quiet,
        format!(
            "loaded {} labelled ({} anomalies) and {} unlabelled images in {:.1} s",
            labelled.len(),
            labelled.count(Label::Anomaly),
            window.names.len(),
            t0.elapsed().as_secs_f64()
        ),
    );

    let mut trainer = assemble::trainer(config, model, spec, quiet)?;
    let t1 = Instant::now();
    let mut last = None;
    let data = TrainData {
        labelled: labelled.images(),
        labels: labelled.labels(),
        unlabelled: &window.images,
    };
    trainer.fit(&data, config.train.iterations, &mut |m| last = Some(*m))?;
    if let Some(m) = last {
        say(
            quiet,
            format!(
                "trained {} steps in {:.1} s: loss {:.3}, labelled accuracy {:.2}, mask ratio {:.2}",
                m.iteration,
                t1.elapsed().as_secs_f64(),
                m.loss,
                m.labelled_accuracy,
                m.mask_ratio
            ),
        );
    }
    // The most valuable output first: the training itself.
    let checkpoint = out.join("checkpoint.safetensors");
    trainer.save_checkpoint(&checkpoint)?;

    let t2 = Instant::now();
    let (mut names, mut scores) = (Vec::new(), Vec::new());
    let mut source = assemble::open_source(config, &images, false)?;
    let report = score_source(
        trainer.ema(),
        &loader,
        source.as_mut(),
        config.score.batch_size,
        config.score.views,
        !quiet,
        |n, s| {
            for (name, &score) in n.iter().zip(s) {
                if !known.contains(name) {
                    names.push(name.clone());
                    scores.push(score);
                }
            }
            Ok(())
        },
    )?;
    say(
        quiet,
        format!(
            "scored {} unlabelled images in {:.1} s; {} unreadable",
            names.len(),
            t2.elapsed().as_secs_f64(),
            report.failed.len()
        ),
    );
    for f in report.failed.iter().take(5) {
        warning!("unreadable {}: {}", f.origin, f.message);
    }

    let ranking = Ranking::new(&names, &scores)?;
    let (csv, sheet) = (out.join("candidates.csv"), out.join("candidates.png"));
    let mut group = AtomicGroup::new();
    outputs::ranking_csv(&mut group, &csv, &ranking)?;
    let top = ranking.top(config.score.top);
    outputs::contact_sheet(&mut group, &sheet, top, &loader, source.as_mut())?;
    group.commit()?;
    say(
        quiet,
        format!(
            "wrote {}, {} and {}",
            csv.display(),
            sheet.display(),
            checkpoint.display()
        ),
    );
    for (i, r) in ranking.top(10).iter().enumerate() {
        out!("  #{:<3} {:<32} {:.4}", i + 1, printable(&r.name), r.score);
    }
    if let Some((path, truth)) = truth {
        report_truth(&path, &truth, &names, &scores, &ranking, top.len())?;
    }
    Ok(())
}

/// The candidates an expert looks at first: the hidden-truth line always counts them.
const FIRST_LOOK: usize = 32;

/// How many of the first look, of the top and of the top 1% are anomalies by the hidden
/// classes, each against what a random ranking would hold at the base rate.
fn report_truth(
    path: &std::path::Path,
    truth: &HashMap<String, Label>,
    names: &[String],
    scores: &[f32],
    ranking: &Ranking,
    top: usize,
) -> Result<()> {
    let is_anomaly = |n: &str| truth.get(n) == Some(&Label::Anomaly);
    let flags: Vec<bool> = names.iter().map(|n| is_anomaly(n)).collect();
    let m = RankingMetrics::compute(scores, &flags)?;
    let rate = m.anomalies as f64 / m.n.max(1) as f64;
    let top_1pct = top_k_for_fraction(m.n, 0.01)?;
    let found = |k: usize| {
        ranking
            .top(k)
            .iter()
            .filter(|r| is_anomaly(&r.name))
            .count()
    };
    // "N of the top K (chance: E)", K no larger than the ranking.
    let hits = |k: usize| {
        let k = k.min(m.n);
        format!(
            "{} of the top {k} (chance: {:.1})",
            found(k),
            rate * k as f64
        )
    };
    out!(
        "hidden truth ({}): anomalies among the candidates: {}, {}, {} of the top 1% \
         ({top_1pct}; chance: {:.1}); {} among {} unlabelled (base rate {:.1}%); AUROC {:.3}, \
         AUPRC {:.3}",
        path.display(),
        hits(FIRST_LOOK),
        hits(top),
        found(top_1pct),
        rate * top_1pct as f64,
        m.anomalies,
        m.n,
        100.0 * rate,
        m.auroc,
        m.average_precision
    );
    Ok(())
}
