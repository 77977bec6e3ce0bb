#![allow(clippy::unwrap_used)]
//! Issue 26's hostile probe, one regression test per defect it found: each failed on the
//! binary the probe ran against and passes now.

mod common;

use common::{fails, outcome, s};
use std::path::Path;

/// The built-in small set's images.
const IMAGES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/gz1-mini/images");

/// `slurm score` arguments over the built-in images, writing to `out`, plus `extra`.
fn slurm_args<'a>(checkpoint: &'a Path, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "slurm",
        "score",
        "--quiet",
        "--images",
        IMAGES,
        "--checkpoint",
        s(checkpoint),
        "--out",
        out,
        "--shards",
        "2",
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn values_written_into_slurm_scripts_cannot_become_shell_lines() {
    let dir = tempfile::tempdir().unwrap();
    // The scripts only name the checkpoint; `slurm score` checks that the file exists.
    let checkpoint = dir.path().join("model.safetensors");
    std::fs::write(&checkpoint, b"").unwrap();
    let evil = format!("{}/x\ntouch {}/pwned\n", s(dir.path()), s(dir.path()));
    fails(
        &slurm_args(&checkpoint, &evil, &[]),
        2,
        &["output.dir", "control"],
    );
    let out = dir.path().join("run");
    for (option, value) in [
        ("--partition", "gpu\ntouch /tmp/pwned"),
        ("--partition", "a b"),
        ("--time", "02:00:00\nid"),
        ("--time", "two hours"),
        ("--time", "1:2:3:4"),
        ("--mem", "8G\nid"),
        ("--mem", "8GB"),
        ("--cpus-per-task", "0"),
    ] {
        fails(
            &slurm_args(&checkpoint, s(&out), &[option, value]),
            2,
            &[option],
        );
    }
    assert!(!out.exists(), "a refused run wrote {}", out.display());
    assert!(!dir.path().join("pwned").exists());

    // Slurm's own formats pass, and a log path with a space and a '%' is quoted and escaped.
    let spaced = dir.path().join("run 50% done");
    let (code, _, stderr) = outcome(&slurm_args(
        &checkpoint,
        s(&spaced),
        &[
            "--partition",
            "gpu,long",
            "--time",
            "1-12:30",
            "--mem",
            "8G",
            "--cpus-per-task",
            "4",
        ],
    ));
    assert_eq!(code, Some(0), "{stderr}");
    let script = std::fs::read_to_string(spaced.join("slurm/score.sbatch")).unwrap();
    let escaped = s(&spaced.join("slurm")).replace('%', "%%");
    assert!(
        script.contains(&format!("#SBATCH --output=\"{escaped}/score-%A_%a.log\"\n")),
        "{script}"
    );
    for line in [
        "--partition=gpu,long",
        "--time=1-12:30",
        "--mem=8G",
        "--cpus-per-task=4",
    ] {
        assert!(script.contains(&format!("#SBATCH {line}\n")), "{script}");
    }
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(spaced.join("slurm/score.sbatch"))
        .status()
        .unwrap();
    assert!(syntax.success());
}

#[test]
fn more_shards_than_parts_or_slurms_array_limit_is_warned_of() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("model.safetensors");
    std::fs::write(&checkpoint, b"").unwrap();
    let out = dir.path().join("run");
    let mut args = slurm_args(&checkpoint, s(&out), &["--set", "score.part_size=100"]);
    // 400 images in parts of 100 make 4 parts.
    let shards = args.iter().position(|a| *a == "--shards").unwrap() + 1;
    args[shards] = "4";
    let (code, _, stderr) = outcome(&args);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    args[shards] = "2000";
    let (code, _, stderr) = outcome(&args);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("only 4 part(s)"), "{stderr}");
    assert!(stderr.contains("1996 array task(s)"), "{stderr}");
    assert!(stderr.contains("MaxArraySize"), "{stderr}");
}
