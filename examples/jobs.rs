//! The jobs from Rust, as the command line runs them: `discover` on data/gz1-mini, then one
//! cycle of the benchmark protocol on it. Settings are the defaults with a few keys set,
//! checked once by `load`; each job returns typed results. Run with
//! `cargo run --release --example jobs`.

use anomalymatch::jobs::{JobError, Override, Settings, Silent, benchmark, discover, load};

/// The defaults with `keys` (`KEY=VALUE`, as `--set` takes them) set, checked.
fn settings(keys: &[String]) -> Result<Settings, JobError> {
    let keys: Result<Vec<Override>, JobError> =
        keys.iter().map(|k| Override::parse_set(k)).collect();
    load(None, &keys?)
}

fn main() -> Result<(), JobError> {
    let mini = concat!(env!("CARGO_MANIFEST_DIR"), "/data/gz1-mini");
    let out = std::env::temp_dir().join("anomalymatch-example-jobs");
    let common = [
        format!("output.dir='{}'", out.display()),
        "data.size=64".into(),
        "train.iterations=20".into(),
    ];
    let images = [
        format!("data.images='{mini}/images'"),
        format!("data.labels='{mini}/labeled_data.csv'"),
    ];
    let found = discover::discover(&settings(&[&common[..], &images].concat())?, &Silent)?;
    for r in found.ranking.top(5) {
        println!("{:<28} {:.3}", r.name, r.score);
    }
    if let Some(t) = &found.truth {
        println!("AUROC {:.3} on the hidden classes", t.metrics.auroc);
    }
    let protocol = [
        format!("benchmark.data='{mini}'"),
        "benchmark.seeds=[42]".into(),
        "active.cycles=1".into(),
    ];
    let config = settings(&[&common[..], &protocol].concat())?;
    benchmark::benchmark(&config, "example jobs", &Silent, &mut |line| {
        println!("{line}")
    })?;
    Ok(())
}
