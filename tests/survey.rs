#![allow(clippy::unwrap_used)]
//! The survey path through the real binary: shards merged into exactly a single run's files,
//! FITS cutouts of 1, 3 and 5 bands from training to scores, and bad survey inputs named by
//! file and item (one bad cutout is counted and the run goes on).

mod common;

use anomalymatch::core::checkpoint::CheckpointInfo;
use anomalymatch::core::{ChannelMode, Stretch};
use common::{fails, ok, outcome, s, score_rows, write_fits};
use std::path::{Path, PathBuf};

/// The io crate's fixtures.
fn fixture(relative: &str) -> String {
    format!(
        "{}/anomalymatch-io/tests/fixtures/{relative}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A checkpoint trained for one iteration at 32 pixels on the built-in data, in `dir`.
fn tiny_checkpoint(dir: &Path, seed: &str) -> PathBuf {
    let out = dir.join(format!("trained-{seed}"));
    ok(&[
        "train",
        "--quiet",
        "--size",
        "32",
        "--iters",
        "1",
        "--seed",
        seed,
        "--out",
        s(&out),
    ]);
    out.join("checkpoint.safetensors")
}

#[test]
fn shards_merge_into_exactly_the_files_of_a_single_run() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = tiny_checkpoint(dir.path(), "1");
    let score = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "score",
            "--quiet",
            "--checkpoint",
            s(&checkpoint),
            "--top",
            "6",
            "--set",
            "score.part_size=30",
            "--out",
            s(out),
        ];
        args.extend_from_slice(extra);
        ok(&args)
    };
    let single = dir.path().join("single");
    score(&single, &[]);
    let sharded = dir.path().join("sharded");
    for i in 0..4 {
        score(&sharded, &["--shard", &format!("{i}/4")]);
    }
    // Nothing to merge until every shard is there.
    std::fs::rename(
        sharded.join("scores-shard-2-of-4.parquet"),
        dir.path().join("held"),
    )
    .unwrap();
    fails(&["merge", "--out", s(&sharded)], 1, &["2/4", "missing"]);
    std::fs::rename(
        dir.path().join("held"),
        sharded.join("scores-shard-2-of-4.parquet"),
    )
    .unwrap();
    ok(&["merge", "--quiet", "--out", s(&sharded), "--top", "6"]);
    for file in ["scores.parquet", "top_candidates.csv", "top_candidates.png"] {
        assert!(
            std::fs::read(single.join(file)).unwrap() == std::fs::read(sharded.join(file)).unwrap(),
            "{file}: the merged shards differ from the single run"
        );
    }
    let rows = score_rows(&single.join("scores.parquet"));
    assert_eq!(rows.len(), 2000, "every image of the built-in gz1-demo");

    // A shard of another checkpoint is refused.
    let other = tiny_checkpoint(dir.path(), "2");
    let mixed = dir.path().join("mixed");
    for i in 0..2 {
        let c = if i == 0 { &checkpoint } else { &other };
        ok(&[
            "score",
            "--quiet",
            "--checkpoint",
            s(c),
            "--set",
            "score.part_size=30",
            "--shard",
            &format!("{i}/2"),
            "--out",
            s(&mixed),
        ]);
    }
    fails(
        &["merge", "--out", s(&mixed)],
        1,
        &["the checkpoint differ"],
    );

    // Bad shard specs are usage errors naming the option, before any work.
    for bad in ["5/4", "4/4", "1/0", "two/4"] {
        fails(
            &["score", "--out", s(&mixed), "--shard", bad],
            2,
            &["--shard", bad],
        );
    }

    // `slurm score` writes a job array of shards and a merge that waits for all of them.
    let cluster = dir.path().join("cluster");
    ok(&[
        "slurm",
        "score",
        "--quiet",
        "--checkpoint",
        s(&checkpoint),
        "--shards",
        "3",
        "--time",
        "01:00:00",
        "--out",
        s(&cluster),
    ]);
    let script = std::fs::read_to_string(cluster.join("slurm/score.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=0-2"), "{script}");
    assert!(script.contains("#SBATCH --time=01:00:00"), "{script}");
    assert!(
        script.contains("--shard \"$SLURM_ARRAY_TASK_ID/3\""),
        "{script}"
    );
    let merge = std::fs::read_to_string(cluster.join("slurm/merge.sbatch")).unwrap();
    assert!(merge.contains(" merge --quiet --config "), "{merge}");
    let submit = std::fs::read_to_string(cluster.join("slurm/submit.sh")).unwrap();
    assert!(submit.contains("--dependency=afterok:$array"), "{submit}");
    fails(
        &["slurm", "score", "--shards", "0", "--out", s(&cluster)],
        2,
        &["--shards 0"],
    );

    // Embeddings, on request, ride along as a list column.
    let embedded = dir.path().join("embedded");
    score(&embedded, &["--embeddings"]);
    let file = anomalymatch::io::ScoresFile::open(&embedded.join("scores.parquet")).unwrap();
    let dim = file.embedding_dim().unwrap();
    assert!(dim > 0);
    let with = score_rows(&embedded.join("scores.parquet"));
    assert_eq!(with.embeddings.len(), rows.len() * dim);
    assert_eq!(with.scores, rows.scores);
}

#[test]
fn fits_cutouts_of_1_3_and_5_bands_train_and_score_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    for bands in [1, 3, 5] {
        let root = dir.path().join(format!("b{bands}"));
        let images = root.join("cutouts");
        std::fs::create_dir_all(&images).unwrap();
        let mut labels = String::from("filename,label\n");
        for i in 0..16 {
            let name = format!("obj{i:02}.fits");
            // Anomalies have a bright off-centre blob; physical values span decades.
            let anomaly = i % 4 == 0;
            write_fits(&images.join(&name), bands, 24, |b, y, x| {
                let r2 = ((y as f32 - 8.0).powi(2) + (x as f32 - 15.0).powi(2)) / 9.0;
                let blob = if anomaly { 500.0 * (-r2).exp() } else { 0.0 };
                10.0 * (b + 1) as f32 + blob + ((x * 7 + y * 3 + i) % 5) as f32
            });
            if i < 8 {
                let label = if anomaly { "anomaly" } else { "normal" };
                labels.push_str(&format!("{name},{label}\n"));
            }
        }
        // One damaged cutout: counted and named, and the run goes on.
        std::fs::write(images.join("zz_broken.fits"), b"SIMPLE  =  broken").unwrap();
        std::fs::write(root.join("labels.csv"), labels).unwrap();
        let config = root.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[data]\nchannels = {bands}\nsize = 32\n[data.stretch]\nkind = \"asinh\"\n\
                 softening = 0.1\n"
            ),
        )
        .unwrap();
        let out = root.join("out");
        ok(&[
            "train",
            "--quiet",
            "--config",
            s(&config),
            "--images",
            s(&images),
            "--labels",
            s(&root.join("labels.csv")),
            "--iters",
            "2",
            "--out",
            s(&out),
        ]);
        let info = CheckpointInfo::read(&out.join("checkpoint.safetensors")).unwrap();
        assert_eq!(info.data.channels, ChannelMode::Keep(bands));
        assert_eq!(info.data.stretch, Stretch::Asinh { softening: 0.1 });
        assert_eq!(info.spec.in_channels, bands);
        // Scoring takes channels and stretch from the checkpoint alone.
        let (code, stdout, stderr) = outcome(&[
            "score",
            "--quiet",
            "--images",
            s(&images),
            "--out",
            s(&out),
            "--top",
            "4",
        ]);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(stdout.contains("1 unreadable"), "{stdout}");
        assert!(stderr.contains("zz_broken.fits"), "{stderr}");
        let rows = score_rows(&out.join("scores.parquet"));
        assert_eq!(rows.len(), 16, "{bands} bands");
        assert!(
            rows.scores.iter().all(|s| s.is_finite()),
            "{:?}",
            rows.scores
        );
    }
}

#[test]
fn bad_survey_inputs_name_the_file_and_the_item() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = tiny_checkpoint(dir.path(), "3");
    let score = |images: &str, out: &str, extra: &[&str]| {
        let mut args = vec![
            "score",
            "--quiet",
            "--checkpoint",
            s(&checkpoint),
            "--images",
            images,
            "--out",
            out,
            "--top",
            "2",
        ];
        args.extend_from_slice(extra);
        outcome(&args)
    };
    let out = dir.path().join("out");
    let out = s(&out);

    // One bad element of an HDF5 file, one member of a zip that is not an image: counted,
    // named, and the run goes on.
    for (file, bad, good) in [
        ("h5/encoded_gzip.h5", "encoded_gzip.h5:images[3]", 4),
        ("zip/images.zip", "images.zip:bad.png", 5),
    ] {
        let (code, stdout, stderr) = score(&fixture(file), out, &[]);
        assert_eq!(code, Some(0), "{file}: {stderr}");
        assert!(stdout.contains("1 unreadable"), "{file}: {stdout}");
        assert!(stderr.contains(bad), "{file}: {stderr}");
        let rows = score_rows(&Path::new(out).join("scores.parquet"));
        assert_eq!(rows.len(), good, "{file}");
    }

    // Files that cannot be read at all, and a wrong dataset name, stop before any work.
    let h5 = fixture("h5/encoded_gzip.h5");
    let cases: [(String, Vec<&str>, Vec<&str>); 3] = [
        (
            h5.clone(),
            vec!["--set", "source.hdf5.images_dataset=cutouts"],
            vec!["encoded_gzip.h5:cutouts"],
        ),
        (fixture("h5/not_hdf5.h5"), vec![], vec!["not_hdf5.h5"]),
        (fixture("h5/truncated.h5"), vec![], vec!["truncated.h5"]),
    ];
    for (images, extra, needles) in &cases {
        let mut args = vec![
            "score",
            "--checkpoint",
            s(&checkpoint),
            "--images",
            images,
            "--out",
            out,
        ];
        args.extend_from_slice(extra);
        fails(&args, 1, needles);
    }
    let corrupt = dir.path().join("corrupt.fits");
    std::fs::write(&corrupt, b"SIMPLE  = garbage that is no FITS header").unwrap();
    fails(
        &[
            "score",
            "--checkpoint",
            s(&checkpoint),
            "--images",
            s(&corrupt),
            "--out",
            out,
        ],
        1,
        &["corrupt.fits"],
    );
}
