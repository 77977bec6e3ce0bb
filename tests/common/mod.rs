//! Running the built binary as a user does, shared by the command-line test files.
#![allow(dead_code)]

pub mod server;

use std::path::Path;
use std::process::{Command, Output};

/// The built-in data set.
pub const MINI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/gz1-mini");

/// Runs the binary with `args`.
pub fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_anomalymatch"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs and asserts success, returning stdout.
pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs, asserts the exit code and a one-line error containing every `needle`.
pub fn fails(args: &[&str], code: i32, needles: &[&str]) {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: not one line: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for n in needles {
        assert!(lines[0].contains(n), "{args:?}: {n:?} not in {stderr}");
    }
}

/// The lines of a text file.
pub fn rows(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs and returns (exit code, stdout, stderr).
pub fn outcome(args: &[&str]) -> (Option<i32>, String, String) {
    let out = run(args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A folder of links to the built-in images (so tests can add broken entries beside them)
/// and a copy of its labels; returns (images, labels).
pub fn mini_copy(root: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let images = root.join("images");
    std::fs::create_dir_all(&images).unwrap();
    for e in std::fs::read_dir(Path::new(MINI).join("images")).unwrap() {
        let e = e.unwrap();
        std::os::unix::fs::symlink(e.path(), images.join(e.file_name())).unwrap();
    }
    let labels = root.join("labeled_data.csv");
    std::fs::copy(Path::new(MINI).join("labeled_data.csv"), &labels).unwrap();
    (images, labels)
}

/// An empty answers file in `dir` for the file oracle, as the `--oracle` value.
pub fn answers_file(dir: &Path) -> String {
    let path = dir.join("answers.csv");
    std::fs::write(&path, "filename,label\n").unwrap();
    format!("file:{}", path.display())
}

/// Every row of a score file, in order.
pub fn score_rows(path: &Path) -> anomalymatch_io::ScoreRows {
    let file = anomalymatch_io::ScoresFile::open(path).unwrap();
    let mut all = anomalymatch_io::ScoreRows::default();
    for g in 0..file.groups() {
        all.extend(file.read_group(g).unwrap());
    }
    all
}

/// One 80-character FITS header card.
fn card(key: &str, value: &str) -> String {
    format!("{key:<8}= {value:>20}{:50}", "")
}

/// Writes a FITS file of one `bands x side x side` float image (2-D for one band).
pub fn write_fits(
    path: &Path,
    bands: usize,
    side: usize,
    value: impl Fn(usize, usize, usize) -> f32,
) {
    let mut header = vec![
        card("SIMPLE", "T"),
        card("BITPIX", "-32"),
        card("NAXIS", if bands == 1 { "2" } else { "3" }),
        card("NAXIS1", &side.to_string()),
        card("NAXIS2", &side.to_string()),
    ];
    if bands > 1 {
        header.push(card("NAXIS3", &bands.to_string()));
    }
    header.push(format!("{:80}", "END"));
    let mut bytes = header.concat().into_bytes();
    bytes.resize(bytes.len().div_ceil(2880) * 2880, b' ');
    for b in 0..bands {
        for y in 0..side {
            for x in 0..side {
                bytes.extend(value(b, y, x).to_be_bytes());
            }
        }
    }
    bytes.resize(bytes.len().div_ceil(2880) * 2880, 0);
    std::fs::write(path, bytes).unwrap();
}

/// A one-iteration checkpoint at 32 pixels in `dir/trained`, with `extra` arguments to `train`.
pub fn quick_checkpoint(dir: &Path, extra: &[&str]) -> std::path::PathBuf {
    let out = dir.join("trained");
    let mut train = vec![
        "train",
        "--quiet",
        "--size",
        "32",
        "--iters",
        "1",
        "--out",
        s(&out),
    ];
    train.extend_from_slice(extra);
    ok(&train);
    out.join("checkpoint.safetensors")
}
