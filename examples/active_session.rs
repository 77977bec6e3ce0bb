//! An active-learning session over a folder of images: train, score the current pool window,
//! show the chosen candidates to an expert, journal every answer the moment it is given,
//! retrain, and repeat. Stop at any point (`q` at the terminal, Ctrl-C, a crash) and run the
//! same command again to resume where it stopped.
//!
//! ```sh
//! cargo run --release --example active_session                # built-in data/gz1-mini, simulated
//! cargo run --release --example active_session -- --images DIR --labels labeled_data.csv \
//!     [--oracle terminal|file:answers.csv|simulated:classes.csv] [--session out/session]
//!     [--query top|uncertainty|mix:top=0.7,uncertainty=0.2,diverse=0.1|...] [--cycles 3]
//!     [--iters 40] [--per-cycle 10] [--n-to-load 2000] [--size 96] [--seed 42] [--quiet]
//! ```
//!
//! The terminal oracle asks about each candidate (anomaly / normal / skip / remember / quit).
//! The file oracle takes answers from a `filename,label` CSV that the expert fills in. The
//! simulated expert answers from a `classes.csv` with `filename` and `class_name` columns,
//! `merger` being the anomaly class; with the built-in data it is the default.
//!
//! At the end the session's labels are written merged over the user's file (which is never
//! touched) to `SESSION/labeled_data.csv`, and the remember list to `SESSION/remembered.csv`.

#![allow(clippy::unwrap_used)]

use anomalymatch::active::session::{Session, SessionConfig, SessionEnd};
use anomalymatch::active::store::FolderStore;
use anomalymatch::active::{FileOracle, SimulatedExpert, TerminalOracle, by_name};
use anomalymatch::augment::FixMatchAugmenter;
use anomalymatch::core::fixmatch::FixMatch;
use anomalymatch::core::{
    ClassTable, Config, FolderDataset, Label, LabelTable, LoaderConfig, Oracle, Validate,
};
use anomalymatch::models::pretrained_lite0;
use candle_core::Device;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[global_allocator]
static GLOBAL: anomalymatch::allocator::MiMalloc = anomalymatch::allocator::MiMalloc;

struct Args {
    images: PathBuf,
    labels: PathBuf,
    session: PathBuf,
    oracle: String,
    query: String,
    cycles: usize,
    iters: usize,
    per_cycle: usize,
    n_to_load: usize,
    size: usize,
    seed: u64,
    quiet: bool,
}

fn parse_args() -> Result<Args, String> {
    let mini = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/gz1-mini");
    let mut a = Args {
        images: mini.join("images"),
        labels: mini.join("labeled_data.csv"),
        session: "out/session".into(),
        oracle: format!("simulated:{}", mini.join("classes.csv").display()),
        query: "top".into(),
        cycles: 3,
        iters: 40,
        per_cycle: 10,
        n_to_load: 2000,
        size: 96,
        seed: 42,
        quiet: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|_| format!("bad number {v:?}"));
        match flag.as_str() {
            "--images" => a.images = value()?.into(),
            "--labels" => a.labels = value()?.into(),
            "--session" => a.session = value()?.into(),
            "--oracle" => a.oracle = value()?,
            "--query" => a.query = value()?,
            "--cycles" => a.cycles = num(value()?)? as usize,
            "--iters" => a.iters = num(value()?)? as usize,
            "--per-cycle" => a.per_cycle = num(value()?)? as usize,
            "--n-to-load" => a.n_to_load = num(value()?)? as usize,
            "--size" => a.size = num(value()?)? as usize,
            "--seed" => a.seed = num(value()?)?,
            "--quiet" => a.quiet = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(a)
}

/// The oracle named by `--oracle`.
fn oracle(spec: &str) -> Result<Box<dyn Oracle>, Box<dyn std::error::Error>> {
    Ok(match spec.split_once(':') {
        None if spec == "terminal" => Box::new(TerminalOracle::stdio()),
        Some(("file", path)) => Box::new(FileOracle::new(path)),
        // gz1's classes: `merger` is the anomaly, `uncertain` left out, other classes normal.
        Some(("simulated", path)) => {
            let truth = ClassTable::read(Path::new(path))?.labels("merger", Some("uncertain"));
            Box::new(SimulatedExpert::new(truth))
        }
        _ => return Err(format!("unknown oracle {spec:?}").into()),
    })
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    anomalymatch::allocator::keep_freed_pages();
    let args = parse_args()?;
    let table = LabelTable::read(&args.labels)?;
    let start: BTreeMap<String, Label> = table
        .rows()
        .iter()
        .map(|r| (r.filename.clone(), r.label))
        .collect();
    let loader = LoaderConfig {
        size: args.size,
        ..LoaderConfig::default()
    }
    .build()?;
    let data = FolderDataset::open(&args.images, start.clone(), &loader, !args.quiet)?;
    if !data.report.missing.is_empty() {
        eprintln!(
            "warning: {} labelled file(s) not found, first: {}",
            data.report.missing.len(),
            data.report.missing[0]
        );
    }
    let store = FolderStore::new(
        &args.images,
        data.unlabelled.clone(),
        args.n_to_load,
        loader,
        !args.quiet,
    )?;
    let model = pretrained_lite0(3, 2, &Device::Cpu)?;
    let train = Config::default().train.validate()?;
    let mut trainer = FixMatch::new(model, FixMatchAugmenter::fixmatch(), train, args.seed)?;
    trainer.set_progress(!args.quiet);
    let config = SessionConfig {
        cycles: args.cycles,
        iterations: args.iters,
        queries_per_cycle: args.per_cycle,
        score_batch: 128,
        seed: args.seed,
    };
    let mut session = Session::open(&args.session, config, trainer, store, start)?;
    println!(
        "session {}: {} of {} cycles done, {} labels",
        args.session.display(),
        session.cycles_done(),
        args.cycles,
        session.labels().len()
    );
    let strategy = by_name(&args.query)?;
    let mut oracle = oracle(&args.oracle)?;
    let end = session.run(strategy.as_ref(), oracle.as_mut(), &mut |_| {}, &mut |r| {
        println!(
            "cycle {}: {} of {} queried were anomalies (precision {:.2}); {} found so far; \
             labels normal/anomaly {}/{}; about {:.0} anomalies left in the window; \
             {} unreadable image(s) left out",
            r.cycle,
            r.batch_anomalies,
            r.queried,
            r.batch_precision,
            r.anomalies_found,
            r.labels_per_class[0],
            r.labels_per_class[1],
            r.estimated_unfound,
            r.unreadable
        );
    })?;
    let labels_out = args.session.join("labeled_data.csv");
    let merge = session.export_labels(Some(&args.labels), &labels_out)?;
    let remembered_out = args.session.join("remembered.csv");
    session.export_remembered(&remembered_out)?;
    println!(
        "{}: wrote {} ({} added, {} changed) and {}",
        match end {
            SessionEnd::Finished => "finished",
            SessionEnd::Stopped => "stopped; run again to resume",
        },
        labels_out.display(),
        merge.added,
        merge.changed,
        remembered_out.display()
    );
    Ok(())
}

fn main() {
    anomalymatch::threads::one_candle_thread();
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
