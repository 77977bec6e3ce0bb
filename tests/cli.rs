#![allow(clippy::unwrap_used)]
//! The `anomalymatch` binary run as a user runs it: every subcommand on the built-in
//! data/gz1-demo or on data/gz1-mini, at 32 pixels and a few iterations, what each writes, and
//! the one-line errors and exit codes of bad input.

use anomalymatch::core::checkpoint::{CheckpointInfo, CheckpointState, save_checkpoint};
use anomalymatch::core::{ChannelMode, Check, DataSpec, Stretch, TrainConfig};
use anomalymatch::models::EfficientNetConfig;
use std::path::PathBuf;

mod common;

use common::{MINI, fails, ok, rows, run, s, score_rows};

#[test]
fn help_and_version_work_everywhere() {
    let top = ok(&["--help"]);
    for sub in ["discover", "train", "score", "label", "benchmark", "config"] {
        assert!(top.contains(sub), "{sub} not in --help");
        let help = ok(&[sub, "--help"]);
        assert!(help.contains("Usage: anomalymatch"), "{sub}: {help}");
        assert!(ok(&[sub, "--version"]).contains(env!("CARGO_PKG_VERSION")));
    }
    assert!(ok(&["discover", "--help"]).contains("[key: train.iterations]"));
    let out = run(&["discover", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn discover_then_score_and_train_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let stdout = ok(&[
        "discover",
        "--quiet",
        "--out",
        s(&out),
        "--iters",
        "2",
        "--size",
        "32",
        "--top",
        "12",
    ]);
    // The built-in gz1-demo: 2,000 images, 100 labelled: 1,900 ranked, best first, with the
    // hidden-truth report.
    let candidates = rows(&out.join("candidates.csv"));
    assert_eq!(candidates[0], "rank,filename,score");
    assert_eq!(candidates.len(), 1 + 1900);
    let scores: Vec<f32> = candidates[1..]
        .iter()
        .map(|r| r.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]));
    assert!(stdout.contains("hidden truth"), "{stdout}");
    assert!(stdout.contains("of the top 32 (chance: 0.4), "), "{stdout}");
    assert!(stdout.contains("of the top 12 (chance: 0.2), "), "{stdout}");
    assert!(stdout.contains("of the top 1% (19;"), "{stdout}");
    let sheet = image::open(out.join("candidates.png")).unwrap();
    assert!(sheet.width() > 8 * 64 && sheet.height() > 64, "{sheet:?}");
    let checkpoint = out.join("checkpoint.safetensors");
    let info = CheckpointInfo::read(&checkpoint).unwrap();
    assert_eq!(info.data.size, 32);
    assert_eq!(info.iteration, 2);

    // The checkpoint alone tells `score` how to decode and what to build (a size asked
    // against it is refused: `hardening.rs`).
    let scored = dir.path().join("scored");
    ok(&[
        "score",
        "--quiet",
        "--checkpoint",
        s(&checkpoint),
        "--images",
        &format!("{MINI}/images"),
        "--out",
        s(&scored),
        "--top",
        "5",
    ]);
    let all = score_rows(&scored.join("scores.parquet"));
    assert_eq!(all.len(), 400);
    assert!(
        all.origins[0].ends_with(&all.names[0]),
        "{:?}",
        all.origins[0]
    );
    assert!(all.scores.iter().all(|s| (0.0..=1.0).contains(s)));
    assert!(
        !scored.join("score-run").exists(),
        "the run folder is left behind"
    );
    assert_eq!(rows(&scored.join("top_candidates.csv")).len(), 1 + 5);
    assert!(image::open(scored.join("top_candidates.png")).is_ok());

    // `train --from` continues the run's iteration count.
    let more = dir.path().join("more");
    ok(&[
        "train",
        "--quiet",
        "--out",
        s(&more),
        "--iters",
        "1",
        "--size",
        "32",
        "--from",
        s(&checkpoint),
    ]);
    let info = CheckpointInfo::read(&more.join("checkpoint.safetensors")).unwrap();
    assert_eq!(info.iteration, 3);
    // ... on the same pixels only.
    fails(
        &[
            "train",
            "--quiet",
            "--out",
            s(&more),
            "--iters",
            "1",
            "--size",
            "48",
            "--from",
            s(&checkpoint),
        ],
        1,
        &["checkpoint.safetensors", "32x32", "48x48"],
    );
}

#[test]
fn a_labelling_session_runs_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("label");
    let args = [
        "label",
        "--quiet",
        "--out",
        s(&out),
        "--oracle",
        "simulated",
        "--cycles",
        "2",
        "--per-cycle",
        "3",
        "--iters",
        "1",
        "--set",
        "data.size=32",
    ];
    let stdout = ok(&args);
    assert!(stdout.contains("finished"), "{stdout}");
    let journal = rows(&out.join("session/journal.jsonl"));
    assert_eq!(journal.len(), 6, "2 cycles x 3 answers");
    // gz1-demo's 100 starting labels and the 6 answers, merged; the user's file is untouched.
    assert_eq!(
        rows(&out.join("session/labeled_data.csv")).len(),
        1 + 100 + 6
    );
    // Run again: nothing left to do, nothing asked twice.
    let again = ok(&args);
    assert!(again.contains("finished"), "{again}");
    assert_eq!(rows(&out.join("session/journal.jsonl")).len(), 6);
}

/// The JSON lines of a benchmark's stdout (one per cycle).
fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_benchmark_runs_the_protocol_through_a_session() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b");
    // One seed, two cycles, small images: the settings both runs below share.
    let small = [
        "benchmark",
        "--quiet",
        "--data",
        MINI,
        "--seeds",
        "1",
        "--cycles",
        "2",
        "--size",
        "32",
        "--out",
        s(&out),
    ];
    let stdout = ok(&[&small[..], &["--iters", "1"]].concat());
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), 2, "{stdout}");
    // 400 images less 10 + 90 start labels; the expert then labels 10 + 10 per cycle.
    assert_eq!(lines[0]["pool"], 300);
    assert_eq!(lines[1]["pool"], 280);
    assert_eq!(lines[0]["found"], 10);
    for l in &lines {
        let auroc = l["auroc"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&auroc), "{l}");
    }
    assert!(stdout.contains("| cycle | AUROC |"), "{stdout}");
    // The finished run is in the results file; rerun alike, it is taken from there (the
    // same seconds), not run again, and not appended twice.
    let results = out.join("benchmark/results.jsonl");
    assert_eq!(rows(&results).len(), 2);
    let again = json_lines(&ok(&[&small[..], &["--iters", "1"]].concat()));
    for (a, l) in again.iter().zip(&lines) {
        assert_eq!((&a["auroc"], &a["seed_s"]), (&l["auroc"], &l["seed_s"]));
    }
    assert_eq!(again.len(), 2);
    let kept = json_lines(&std::fs::read_to_string(&results).unwrap());
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[1]["seed_s"], lines[1]["seed_s"]);
    assert_eq!(kept[0]["changed"]["train.iterations"], 1);
    assert!(
        kept[0]["command"]
            .as_str()
            .unwrap()
            .starts_with("anomalymatch benchmark")
    );
    // Another configuration in the same run folder is refused, naming what differs.
    fails(
        &[&small[..], &["--iters", "2"]].concat(),
        2,
        &["seed-1-protocol", "train.iterations was 1"],
    );
    // The report makes a table row of the run.
    let table = ok(&["report", s(&results)]);
    assert!(table.contains("| recommended, "), "{table}");
    assert!(
        table.contains("`train.iterations=1`") && table.contains("| 1 | 2 |"),
        "{table}"
    );
    // The baselines go through the same protocol on frozen embeddings, FixMatch left out.
    let baselines = [
        "--baseline",
        "probe",
        "--baseline",
        "knn",
        "--baseline",
        "iforest",
        "--set",
        "benchmark.queries=[]",
    ];
    let stdout = ok(&[
        &small[..],
        &baselines,
        &["--baseline", "supervised", "--iters", "1"],
    ]
    .concat());
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), 8, "{stdout}");
    for (l, name) in lines
        .chunks(2)
        .zip(["probe", "knn", "iforest", "supervised"])
    {
        assert_eq!(l[0]["baseline"], name, "{stdout}");
        assert_eq!((&l[0]["pool"], &l[1]["pool"]), (&300.into(), &280.into()));
        assert_eq!(l[0]["found"], 10);
        assert!(stdout.contains(&format!("--baseline {name}")), "{stdout}");
    }
    assert!(!stdout.contains("--query"), "{stdout}");
    fails(
        &["benchmark", "--quiet", "--data", MINI, "--baseline", "svm"],
        2,
        &["benchmark.baselines", "unknown baseline \"svm\""],
    );
    // The protocol needs more anomalies than it starts with.
    fails(
        &[
            "benchmark",
            "--quiet",
            "--data",
            MINI,
            "--seeds",
            "1",
            "--set",
            "benchmark.start_anomalies=30",
        ],
        1,
        &["classes.csv", "30 anomalies"],
    );
}

#[test]
fn config_prints_every_key_and_checks_files() {
    let text = ok(&["config"]);
    assert!(text.contains("[train]") && text.contains("p_cutoff = 0.95"));
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, &text).unwrap();
    assert!(ok(&["config", "check", s(&good)]).contains("ok"));

    let unknown = dir.path().join("unknown.toml");
    std::fs::write(&unknown, "seed = 1\n[train]\nlearning_rate = 0.1\n").unwrap();
    fails(
        &["config", "check", s(&unknown)],
        2,
        &["unknown.toml:3", "learning_rate"],
    );
    let range = dir.path().join("range.toml");
    std::fs::write(&range, "[train]\nlr = -1.0\n").unwrap();
    fails(
        &["config", "check", s(&range)],
        2,
        &["range.toml", "train.lr"],
    );
    fails(
        &["discover", "--config", s(&unknown)],
        2,
        &["learning_rate"],
    );
}

#[test]
fn bad_input_gets_one_line_and_the_right_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let missing = dir.path().join("nowhere.csv");
    fails(
        &[
            "discover",
            "--out",
            s(&out),
            "--images",
            &format!("{MINI}/images"),
            "--labels",
            s(&missing),
        ],
        1,
        &["nowhere.csv"],
    );
    fails(
        &["discover", "--out", s(&out), "--size", "0"],
        2,
        &["data.size"],
    );
    fails(
        &["discover", "--out", s(&out), "--set", "train.lr=-1"],
        2,
        &["train.lr"],
    );
    fails(
        &["label", "--out", s(&out), "--query", "best"],
        2,
        &["active.query", "best"],
    );
    fails(
        &[
            "label",
            "--out",
            s(&out),
            "--oracle",
            &format!("file:{}", s(&missing)),
        ],
        1,
        &["nowhere.csv"],
    );
    fails(&["score", "--out", s(&out)], 1, &["checkpoint.safetensors"]);

    // A five-band checkpoint cannot score RGB JPEGs: refused before any scoring.
    let five = EfficientNetConfig::lite0()
        .with_in_channels(5)
        .check()
        .unwrap()
        .build(&candle_core::Device::Cpu)
        .unwrap();
    let checkpoint: PathBuf = dir.path().join("five.safetensors");
    let state = CheckpointState {
        iteration: 1,
        optimizer: vec![],
        train: TrainConfig::default(),
        data: DataSpec {
            size: 32,
            channels: ChannelMode::Keep(5),
            stretch: Stretch::default(),
            crop: anomalymatch_core::Crop::WHOLE,
        },
    };
    save_checkpoint(&checkpoint, &five, &five, &state).unwrap();
    fails(
        &["score", "--out", s(&out), "--checkpoint", s(&checkpoint)],
        1,
        &["five.safetensors", "5-band", "5 were asked for"],
    );
    assert!(!out.join("scores.parquet").exists());
}

#[test]
fn weights_convert_writes_a_file_model_weights_reads() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/weights/efficientnet-lite0.safetensors"
    );
    let pth = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/weights/efficientnet-lite0-57934424.pth"
    );
    let input = if std::path::Path::new(pth).is_file() {
        pth
    } else {
        eprintln!("note: {pth} not found; converting the shipped safetensors instead");
        shipped
    };
    let output = dir.path().join("lite0.safetensors");
    let stdout = ok(&["weights", "convert", input, s(&output)]);
    assert!(stdout.contains("tensors written"), "{stdout}");
    // The converted file is what `model.weights` takes: a one-step training run loads it.
    let weights = format!("model.weights={:?}", s(&output));
    common::quick_checkpoint(dir.path(), &["--set", &weights]);
    let missing = dir.path().join("missing.pth");
    fails(
        &["weights", "convert", s(&missing), s(&output)],
        1,
        &["missing.pth"],
    );
}
