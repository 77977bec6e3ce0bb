#![allow(clippy::unwrap_used)]
//! Crash tests of the long jobs: the real binary is killed with SIGKILL at seeded random moments
//! (at least 20 times per job), run again until it finishes, and what it leaves must equal an
//! uninterrupted run's: the same final files, no acknowledged label missing, no torn or stale
//! file left behind.

use rand::{RngExt, SeedableRng};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Kills per job.
const KILLS: usize = 20;

/// The tests take turns: each measures an uninterrupted run to size its kill delays, and a
/// neighbour's load would make that measure wrong.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Small batches, so that a job takes seconds and its kills spread over every phase.
const SMALL: [&str; 4] = ["--set", "train.batch_size=4", "--set", "train.uratio=2"];

/// Runs `args` to completion, asserting success; returns how long it took.
fn complete(args: &[String]) -> Duration {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_anomalymatch"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    start.elapsed()
}

/// Runs the job of `args(out)` in fresh output folders, killing each run after a seeded
/// random delay and running it again until it finishes on its own; each finished episode is
/// checked by `check(out)`. Goes on until `KILLS` kills have landed, and prints how many
/// episodes that took.
///
/// Delays are drawn up to `whole`, an uninterrupted run's time on this machine: a fresh run
/// is killed somewhere in the job, and a resumed one, having less to do, in time finishes.
fn kill_repeatedly(
    args: impl Fn(&Path) -> Vec<String>,
    root: &Path,
    seed: u64,
    whole: Duration,
    check: impl Fn(&Path),
) {
    let max = whole.max(Duration::from_millis(200));
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut kills, mut episodes) = (0, 0);
    while kills < KILLS {
        episodes += 1;
        let out = root.join(format!("episode{episodes}"));
        loop {
            let delay = Duration::from_millis(rng.random_range(100..max.as_millis() as u64));
            let mut child = Command::new(env!("CARGO_BIN_EXE_anomalymatch"))
                .args(args(&out))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let start = Instant::now();
            let mut status = None;
            while status.is_none() && start.elapsed() < delay {
                status = child.try_wait().unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
            match status {
                Some(status) => {
                    assert!(status.success(), "a resumed run failed");
                    break;
                }
                None => {
                    child.kill().unwrap(); // SIGKILL on Unix
                    child.wait().unwrap();
                    kills += 1;
                }
            }
        }
        check(&out);
        assert!(
            episodes < 2 * KILLS,
            "kills do not land: the job is too short for the delays"
        );
    }
    eprintln!("{KILLS} kills landed over {episodes} episodes, delays up to {max:?}");
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in walk(dir) {
        out.push(entry.strip_prefix(dir).unwrap().display().to_string());
    }
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The tensors and metadata of a safetensors file, for comparing checkpoints by content (the
/// header's key order may differ from one write to the next).
fn content(path: &Path) -> (BTreeMap<String, Vec<u8>>, BTreeMap<String, String>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.data().to_vec()))
        .collect();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = meta
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    (tensors, metadata)
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// `args` followed by the small-batch settings of [`SMALL`].
fn with_small(args: &[&str]) -> Vec<String> {
    strings(&[args, &SMALL[..]].concat())
}

#[test]
fn train_killed_20_times_ends_as_an_uninterrupted_run() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let args = |out: &Path| {
        with_small(&[
            "train",
            "--quiet",
            "--size",
            "32",
            "--iters",
            "24",
            "--set",
            "output.checkpoint_every=2",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let straight = dir.path().join("straight");
    let whole = complete(&args(&straight));
    let expected = content(&straight.join("checkpoint.safetensors"));
    kill_repeatedly(args, dir.path(), 11, whole, |out| {
        assert_eq!(
            files(out),
            ["checkpoint.safetensors"],
            "stale or torn files left"
        );
        assert!(
            content(&out.join("checkpoint.safetensors")) == expected,
            "the resumed run trained differently"
        );
    });
}

#[test]
fn label_killed_20_times_loses_no_answer_and_ends_as_an_uninterrupted_run() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let args = |out: &Path| {
        with_small(&[
            "label",
            "--quiet",
            "--oracle",
            "simulated",
            "--cycles",
            "3",
            "--per-cycle",
            "4",
            "--iters",
            "4",
            "--size",
            "32",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let straight = dir.path().join("straight").join("session");
    let whole = complete(&args(straight.parent().unwrap()));
    // Every answer once, as the uninterrupted run gave them (times aside).
    let answers = |session: &Path| -> Vec<(String, String)> {
        std::fs::read_to_string(session.join("journal.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (v["name"].to_string(), v["event"].to_string())
            })
            .collect()
    };
    assert_eq!(answers(&straight).len(), 12);
    kill_repeatedly(args, dir.path(), 12, whole, |out| {
        let session = out.join("session");
        assert_eq!(
            files(&session),
            files(&straight),
            "stale or torn files left"
        );
        assert_eq!(answers(&session), answers(&straight));
        for file in ["labeled_data.csv", "remembered.csv", "state.json"] {
            assert_eq!(
                std::fs::read(session.join(file)).unwrap(),
                std::fs::read(straight.join(file)).unwrap(),
                "{file}"
            );
        }
        assert!(
            content(&session.join("checkpoint.safetensors"))
                == content(&straight.join("checkpoint.safetensors")),
            "the resumed session trained differently"
        );
    });
}

#[test]
fn score_killed_20_times_resumes_and_ends_with_the_same_files() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let trained = dir.path().join("trained");
    complete(&strings(&[
        "train",
        "--quiet",
        "--size",
        "32",
        "--iters",
        "1",
        "--out",
        trained.to_str().unwrap(),
    ]));
    let checkpoint = trained.join("checkpoint.safetensors");
    // Small parts, so that most kills land between finished parts and resuming matters.
    let args = |out: &Path| {
        strings(&[
            "score",
            "--quiet",
            "--checkpoint",
            checkpoint.to_str().unwrap(),
            "--top",
            "8",
            "--set",
            "score.part_size=16",
            "--set",
            "data.chunk_size=8",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let straight = dir.path().join("straight");
    let whole = complete(&args(&straight));
    let finals = ["scores.parquet", "top_candidates.csv", "top_candidates.png"];
    assert_eq!(files(&straight), finals);
    kill_repeatedly(args, dir.path(), 13, whole, |out| {
        assert_eq!(files(out), finals, "stale or torn files left");
        for file in finals {
            assert!(
                std::fs::read(out.join(file)).unwrap()
                    == std::fs::read(straight.join(file)).unwrap(),
                "{file} differs from the uninterrupted run's"
            );
        }
    });
}

#[test]
fn benchmark_killed_20_times_keeps_every_finished_cycle_once() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mini = concat!(env!("CARGO_MANIFEST_DIR"), "/data/gz1-mini");
    let args = |out: &Path| {
        with_small(&[
            "benchmark",
            "--quiet",
            "--data",
            mini,
            "--seeds",
            "1,2",
            "--cycles",
            "2",
            "--iters",
            "3",
            "--size",
            "32",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    // The figures of each seed and cycle, times aside; a torn line of a killed append is
    // skipped, as readers skip it.
    let figures = |out: &Path| -> Vec<String> {
        let text = std::fs::read_to_string(out.join("benchmark/results.jsonl")).unwrap();
        let mut rows: Vec<String> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| {
                [
                    "seed",
                    "cycle",
                    "pool",
                    "found",
                    "auroc",
                    "auprc",
                    "p_at_1pct",
                ]
                .map(|k| v[k].to_string())
                .join(" ")
            })
            .collect();
        rows.sort();
        rows
    };
    let straight = dir.path().join("straight");
    let whole = complete(&args(&straight));
    assert_eq!(figures(&straight).len(), 4, "2 seeds x 2 cycles");
    kill_repeatedly(args, dir.path(), 14, whole, |out| {
        assert_eq!(figures(out), figures(&straight));
    });
}
