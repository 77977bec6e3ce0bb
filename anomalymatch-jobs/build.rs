//! Records the commit of the code this binary is built from, so that every benchmark result
//! names it. The commit is the last one that touched code: commits of measurements and prose
//! (`benchmarks/results/`, Markdown) change no result, so results made across them still
//! belong together. `+dirty` marks uncommitted code changes; `unknown` means no git (e.g. a
//! source tarball), and `ANOMALYMATCH_COMMIT` overrides it all.

use std::path::Path;
use std::process::Command;

/// Paths whose changes do not alter what the binary computes.
const NOT_CODE: [&str; 2] = [":(exclude)benchmarks/results", ":(exclude,glob)**/*.md"];

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=ANOMALYMATCH_COMMIT");
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        for watched in ["HEAD", "index", "refs/heads", "packed-refs"] {
            let p = Path::new(&dir).join(watched);
            if p.exists() {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    }
    // Any code change may make the tree dirty: watch every crate's sources as well.
    if let Some(top) = git(&["rev-parse", "--show-toplevel"]) {
        for entry in std::fs::read_dir(&top).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.join("Cargo.toml").exists() && p.join("src").is_dir() {
                println!("cargo:rerun-if-changed={}", p.join("src").display());
            }
        }
        println!("cargo:rerun-if-changed={top}/src");
    }
    let commit = std::env::var("ANOMALYMATCH_COMMIT").ok().or_else(|| {
        let top = git(&["rev-parse", "--show-toplevel"])?;
        let mut log = vec![
            "-C",
            &top,
            "log",
            "-1",
            "--format=%h",
            "--abbrev=7",
            "--",
            ".",
        ];
        log.extend(NOT_CODE);
        let hash = git(&log)?;
        let mut status = vec![
            "-C",
            &top,
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ".",
        ];
        status.extend(NOT_CODE);
        let dirty = git(&status).is_some_and(|s| !s.is_empty());
        Some(if dirty { format!("{hash}+dirty") } else { hash })
    });
    println!(
        "cargo:rustc-env=ANOMALYMATCH_COMMIT={}",
        commit.unwrap_or_else(|| "unknown".into())
    );
}
