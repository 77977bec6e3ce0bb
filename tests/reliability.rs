#![allow(clippy::unwrap_used)]
//! Regression tests of the defects a hostile first use found (reliability issue, items 1-14):
//! each runs the real binary on the input that used to break it. Items 2 and 8 (score) live in
//! the survey tests beside the streaming scorer.

mod common;

use anomalymatch::core::checkpoint::{CheckpointInfo, CheckpointState, save_checkpoint};
use anomalymatch::core::{ChannelMode, Check, DataSpec, Stretch, TrainConfig};
use anomalymatch::models::EfficientNetConfig;
use common::{MINI, fails, mini_copy, ok, outcome, s};
use std::path::Path;

/// Item 1: an anomaly class that does not exist, or too few anomalies, is an error, not a panic.
#[test]
fn item_01_benchmark_with_too_few_anomalies_is_an_error() {
    let out = tempfile::tempdir().unwrap();
    let o = s(out.path());
    fails(
        &[
            "benchmark",
            "--quiet",
            "--data",
            MINI,
            "--anomaly-class",
            "comet",
            "--out",
            o,
        ],
        1,
        &["classes.csv", "0 image(s) of class \"comet\""],
    );
    fails(
        &[
            "benchmark",
            "--quiet",
            "--data",
            MINI,
            "--out",
            o,
            "--set",
            "benchmark.start_normals=400",
        ],
        1,
        &["400 normals"],
    );
}

/// Writes an untrained Lite0 checkpoint for `size`-pixel RGB images; with `nan`, every weight
/// is NaN, so that every score is.
fn lite0_checkpoint(path: &Path, size: usize, nan: bool) {
    let model = EfficientNetConfig::lite0()
        .check()
        .unwrap()
        .build(&candle_core::Device::Cpu)
        .unwrap();
    if nan {
        for v in anomalymatch::core::Classifier::variables(&model) {
            v.var.set(&(v.var.as_tensor() * f64::NAN).unwrap()).unwrap();
        }
    }
    let state = CheckpointState {
        iteration: 1,
        optimizer: vec![],
        train: TrainConfig::default(),
        data: DataSpec {
            size,
            channels: ChannelMode::Rgb,
            stretch: Stretch::default(),
            crop: anomalymatch_core::Crop::WHOLE,
        },
    };
    save_checkpoint(path, &model, &model, &state).unwrap();
}

/// The output files of a folder and their bytes, for telling whether a run changed any; the
/// folder of a run's resumable state (`score-run/`) is not output.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

/// Item 2: a score run that fails (a checkpoint that scores NaN) leaves the earlier outputs
/// exactly as they were, all of them.
#[test]
fn item_02_a_failed_score_leaves_the_good_output() {
    let dir = tempfile::tempdir().unwrap();
    let (good, broken) = (
        dir.path().join("good.safetensors"),
        dir.path().join("nan.safetensors"),
    );
    lite0_checkpoint(&good, 32, false);
    lite0_checkpoint(&broken, 32, true);

    let out = dir.path().join("out");
    let o = s(&out);
    ok(&["score", "--quiet", "--out", o, "--checkpoint", s(&good)]);
    let before = snapshot(&out);
    assert!(before.len() >= 3, "{:?}", before.keys());
    fails(
        &["score", "--quiet", "--out", o, "--checkpoint", s(&broken)],
        1,
        &["NaN"],
    );
    assert_eq!(snapshot(&out), before, "a failed run changed the outputs");
}

/// Item 8: a JPEG cut mid-scan is counted and named as unreadable, and the others are scored.
#[test]
fn item_08_a_truncated_jpeg_is_counted_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let (images, _) = mini_copy(dir.path());
    let first = std::fs::read_dir(&images).unwrap().next().unwrap().unwrap();
    let name = first.file_name().to_string_lossy().into_owned();
    let bytes = std::fs::read(first.path()).unwrap();
    std::fs::remove_file(first.path()).unwrap();
    std::fs::write(first.path(), &bytes[..bytes.len() / 2]).unwrap();
    let checkpoint = dir.path().join("model");
    ok(&[
        "discover",
        "--quiet",
        "--size",
        "32",
        "--iters",
        "1",
        "--out",
        s(&checkpoint),
    ]);
    let (code, stdout, stderr) = outcome(&[
        "score",
        "--quiet",
        "--images",
        s(&images),
        "--checkpoint",
        s(&checkpoint.join("checkpoint.safetensors")),
        "--out",
        s(&dir.path().join("scores")),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("1 unreadable"), "{stdout}");
    assert!(
        stderr.contains(&name) && stderr.contains("truncated"),
        "{stderr}"
    );
}

/// Item 3: a labelled file that is absent or a symlink loop is counted and named, and the job
/// goes on (discover and label alike).
#[test]
fn item_03_missing_and_looping_labelled_files_are_counted_and_the_job_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = mini_copy(dir.path());
    std::os::unix::fs::symlink("loop.jpeg", images.join("loop.jpeg")).unwrap();
    let mut text = std::fs::read_to_string(&labels).unwrap();
    text.push_str("gone.jpeg,normal\nloop.jpeg,anomaly\n");
    std::fs::write(&labels, text).unwrap();
    let answers = common::answers_file(dir.path());
    let common = [
        "--quiet",
        "--images",
        s(&images),
        "--labels",
        s(&labels),
        "--size",
        "32",
    ];
    for job in [
        &["discover", "--iters", "1"][..],
        &[
            "label", "--oracle", &answers, "--cycles", "1", "--iters", "1",
        ][..],
    ] {
        let out = dir.path().join(job[0]);
        let mut args: Vec<&str> = job.to_vec();
        args.extend(common);
        args.extend(["--out", s(&out)]);
        let (code, _, stderr) = outcome(&args);
        assert_eq!(code, Some(0), "{}: {stderr}", job[0]);
        assert!(
            stderr.contains("1 labelled image(s) not found") && stderr.contains("gone.jpeg"),
            "{stderr}"
        );
        assert!(
            stderr.contains("1 labelled image(s) unreadable") && stderr.contains("loop.jpeg"),
            "{stderr}"
        );
    }
}

/// Items 4 and 5: sizes beyond the architecture, the range or the memory are refused before
/// any work, and no size makes the arithmetic wrap.
#[test]
fn item_04_05_absurd_sizes_are_refused_before_any_work() {
    let out = tempfile::tempdir().unwrap();
    let o = s(out.path());
    fails(
        &["discover", "--out", o, "--size", "100000"],
        2,
        &["data.size", "4096"],
    );
    fails(
        &["discover", "--out", o, "--size", "4096"],
        2,
        &["data.size = 4096", "GB", "model.recompute = true"],
    );
    fails(
        &[
            "discover",
            "--out",
            o,
            "--size",
            "4096",
            "--set",
            "model.recompute=true",
        ],
        2,
        &["data.size = 4096", "GB"],
    );
    fails(
        &["discover", "--out", o, "--size", "8"],
        2,
        &[
            "data.size = 8",
            "efficientnet-lite0 needs images of at least",
        ],
    );
    fails(
        &["discover", "--out", o, "--size", "1"],
        2,
        &["data.size = 1"],
    );
    assert!(!out.path().join("checkpoint.safetensors").exists());
    // A checkpoint claiming 1-pixel images is refused too, with no wrapped shape.
    let path = out.path().join("tiny.safetensors");
    lite0_checkpoint(&path, 1, false);
    fails(
        &["score", "--out", o, "--checkpoint", s(&path)],
        1,
        &["tiny.safetensors", "1 pixels"],
    );
}

/// Item 6: on a full disk the job fails naming the file, the checkpoint (written first) is
/// whole, and no partial file is left.
#[test]
fn item_06_a_full_disk_is_named_and_the_checkpoint_comes_first() {
    let dir = tempfile::tempdir().unwrap();
    // How much a run writes: the checkpoint and the CSV fit, the contact sheet does not.
    let free = dir.path().join("free");
    ok(&[
        "discover",
        "--quiet",
        "--size",
        "32",
        "--iters",
        "1",
        "--out",
        s(&free),
    ]);
    let size = |n: &str| std::fs::metadata(free.join(n)).unwrap().len();
    let room = size("checkpoint.safetensors") + size("candidates.csv") + 64 * 1024;
    let full = dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    let mounted = std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={room}"),
            "tmpfs",
            s(&full),
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        println!("skipping: cannot mount a small tmpfs here (needs root)");
        return;
    }
    let (code, _, stderr) = outcome(&[
        "discover",
        "--quiet",
        "--size",
        "32",
        "--iters",
        "1",
        "--out",
        s(&full),
    ]);
    let listing: Vec<String> = std::fs::read_dir(&full)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let info = CheckpointInfo::read(&full.join("checkpoint.safetensors"));
    let _ = std::process::Command::new("umount").arg(&full).status();
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("candidates.png") && stderr.contains("No space left"),
        "{stderr}"
    );
    assert!(info.is_ok(), "the checkpoint is whole");
    assert_eq!(
        listing,
        ["checkpoint.safetensors"],
        "partial or stale files left"
    );
}

/// Item 7: temporary files of killed runs are cleaned on the next run.
#[test]
fn item_07_stale_temporary_files_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    std::fs::create_dir_all(out.join("session")).unwrap();
    let stale = [
        out.join(".checkpoint.safetensors.node1.4000.0badf00d.anomalymatch-tmp"),
        out.join("session/.state.json.node2.4001.0badf00d.anomalymatch-tmp"),
    ];
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for p in &stale {
        std::fs::write(p, b"partial").unwrap();
        let f = std::fs::File::options().write(true).open(p).unwrap();
        f.set_modified(an_hour_ago).unwrap();
    }
    let answers = common::answers_file(dir.path());
    let stdout = ok(&[
        "label",
        "--oracle",
        &answers,
        "--cycles",
        "1",
        "--iters",
        "1",
        "--size",
        "32",
        "--out",
        s(&out),
    ]);
    assert!(!stale[1].exists(), "session temp left");
    assert!(stdout.contains("removed 1 temporary file(s)"), "{stdout}");
    ok(&[
        "train",
        "--quiet",
        "--iters",
        "1",
        "--size",
        "32",
        "--out",
        s(&out),
    ]);
    assert!(!stale[0].exists(), "output temp left");
}

/// A one-step `discover` at 32 pixels on `images` and `labels`; (exit code, stdout, stderr).
fn small_discover(images: &Path, labels: &Path, out: &Path) -> (Option<i32>, String, String) {
    outcome(&small_discover_args(images, labels, out))
}

/// The arguments of [`small_discover`].
fn small_discover_args<'a>(images: &'a Path, labels: &'a Path, out: &'a Path) -> [&'a str; 11] {
    [
        "discover",
        "--images",
        s(images),
        "--labels",
        s(labels),
        "--size",
        "32",
        "--iters",
        "1",
        "--out",
        s(out),
    ]
}

/// Item 9: dangling symlinks among the images are counted and named.
#[test]
fn item_09_broken_links_in_an_image_folder_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = mini_copy(dir.path());
    std::os::unix::fs::symlink("nowhere.jpeg", images.join("dangling.jpeg")).unwrap();
    let (code, stdout, stderr) = small_discover(&images, &labels, &dir.path().join("o"));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("1 unreadable"), "{stdout}");
    assert!(stderr.contains("dangling.jpeg"), "{stderr}");
}

/// Item 10: duplicate rows that disagree are counted and named.
#[test]
fn item_10_disagreeing_duplicate_labels_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = mini_copy(dir.path());
    let first = std::fs::read_to_string(&labels).unwrap();
    let name = first
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    std::fs::write(&labels, format!("{first}{name},anomaly\n")).unwrap();
    let (code, _, stderr) = outcome(&[
        "train",
        "--quiet",
        "--images",
        s(&images),
        "--labels",
        s(&labels),
        "--size",
        "32",
        "--iters",
        "1",
        "--out",
        s(&dir.path().join("o")),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("1 file(s) listed more than once with different labels"),
        "{stderr}"
    );
    assert!(stderr.contains(&name), "{stderr}");
}

/// Item 11: a benchmark folder that does not exist is an error.
#[test]
fn item_11_a_missing_benchmark_folder_is_an_error() {
    let out = tempfile::tempdir().unwrap();
    fails(
        &[
            "benchmark",
            "--data",
            "/no/such/folder",
            "--out",
            s(out.path()),
        ],
        1,
        &["/no/such/folder"],
    );
}

/// Item 12: every argument is checked before any work, with meaningful messages.
#[test]
fn item_12_arguments_are_checked_before_any_work() {
    let out = tempfile::tempdir().unwrap();
    let o = s(out.path());
    fails(
        &["label", "--out", o, "--query", "best"],
        2,
        &["active.query", "best"],
    );
    fails(
        &["label", "--out", o, "--oracle", "file:/no/answers.csv"],
        1,
        &["/no/answers.csv"],
    );
    let out_line = outcome(&[
        "label",
        "--out",
        o,
        "--oracle",
        "simulated",
        "--set",
        "truth.classes=/no/classes.csv",
    ]);
    assert_eq!(out_line.0, Some(1));
    assert!(
        out_line.2.contains("/no/classes.csv") && !out_line.2.contains(":0:"),
        "{}",
        out_line.2
    );
    assert!(
        !out.path().join("session/checkpoint.safetensors").exists(),
        "trained before failing"
    );
}

/// Item 13: the user's label file is never the session's export.
#[test]
fn item_13_labels_inside_the_session_export_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("session");
    std::fs::create_dir_all(&session).unwrap();
    let labels = session.join("labeled_data.csv");
    std::fs::copy(Path::new(MINI).join("labeled_data.csv"), &labels).unwrap();
    let before = std::fs::read(&labels).unwrap();
    let answers = common::answers_file(dir.path());
    fails(
        &[
            "label",
            "--out",
            s(dir.path()),
            "--images",
            &format!("{MINI}/images"),
            "--labels",
            s(&labels),
            "--oracle",
            &answers,
        ],
        2,
        &["labeled_data.csv", "over your file"],
    );
    assert_eq!(std::fs::read(&labels).unwrap(), before);
}

/// Item 14: file names that are not UTF-8 are counted and named, and the run goes on.
#[test]
fn item_14_non_utf8_file_names_are_counted() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = mini_copy(dir.path());
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.jpeg");
    std::fs::copy(
        Path::new(MINI)
            .join("images")
            .read_dir()
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path(),
        images.join(name),
    )
    .unwrap();
    let (code, stdout, stderr) = small_discover(&images, &labels, &dir.path().join("o"));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("1 unreadable"), "{stdout}");
    assert!(
        stderr.contains("caf\u{fffd}.jpeg") && stderr.contains("UTF-8"),
        "{stderr}"
    );
}

/// Limits: an output folder that cannot be written is a clear error before any work.
#[test]
fn a_read_only_output_folder_is_refused_before_any_work() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // Root writes through permission bits, so there a read-only mount stands in for them.
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let mounted = root
        && std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", s(&out)])
            .status()
            .is_ok_and(|s| s.success());
    if !mounted {
        if root {
            println!("skipping: cannot mount a read-only tmpfs here");
            return;
        }
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let (code, stdout, stderr) = outcome(&["discover", "--iters", "1", "--out", s(&out)]);
    if mounted {
        let _ = std::process::Command::new("umount").arg(&out).status();
    }
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot write the output folder") && stderr.contains(s(&out)),
        "{stderr}"
    );
    assert!(stdout.trim().is_empty(), "work started: {stdout}");
}

/// Issue 26, item 7: a reader that stops early (`discover | head -1`) ends neither the job
/// nor its files; a standard output that fails otherwise (`> /dev/full`) is a one-line error
/// after the files are written.
#[test]
fn a_closed_or_full_standard_output_ends_the_command_cleanly_after_its_files() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let images = Path::new(MINI).join("images");
    let labels = Path::new(MINI).join("labeled_data.csv");
    let args = |out: &Path| small_discover_args(&images, &labels, out).map(String::from);
    let files = ["candidates.csv", "candidates.png", "checkpoint.safetensors"];
    let piped = dir.path().join("piped");
    let mut child = Command::new(env!("CARGO_BIN_EXE_anomalymatch"))
        .args(args(&piped))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(!first.is_empty());
    // The reader is gone: every later line meets a closed pipe.
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    for f in files {
        assert!(piped.join(f).is_file(), "{f}");
    }
    if Path::new("/dev/full").exists() {
        let full = dir.path().join("full");
        let out = Command::new(env!("CARGO_BIN_EXE_anomalymatch"))
            .args(args(&full))
            .stdout(std::fs::File::create("/dev/full").unwrap())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("error: standard output: "), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        for f in files {
            assert!(full.join(f).is_file(), "{f}");
        }
    }
}

/// Issue 26, item 8: `[data.stretch]` is checked with the rest of the configuration, so a
/// range that would blank every FITS image is refused before any work.
#[test]
fn a_stretch_that_cannot_work_is_refused_by_config_check() {
    let dir = tempfile::tempdir().unwrap();
    for (body, needle) in [
        (
            "kind = \"percentile\"\nlow = 90\nhigh = 10\n",
            "data.stretch.high: must be in (low, 100]",
        ),
        (
            "kind = \"zscale\"\ncontrast = -5\n",
            "data.stretch.contrast: must be a finite number > 0",
        ),
    ] {
        let file = dir.path().join("c.toml");
        std::fs::write(&file, format!("[data.stretch]\n{body}")).unwrap();
        fails(&["config", "check", s(&file)], 2, &[needle]);
    }
}
