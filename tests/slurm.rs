#![allow(clippy::unwrap_used)]
//! `anomalymatch slurm score` on a real Slurm: the test writes a slurm.conf for this machine,
//! starts munged, slurmctld and slurmd itself (as root), submits a 4-task job array over a
//! synthetic HDF5 file of 20,000 cutouts written by h5py, waits for the merge job, and checks
//! that the merged files equal a single-process run's byte for byte. The daemons are stopped
//! when the test ends, however it ends. Skipped, with a message, where Slurm, munge, root or
//! h5py is missing (`.ci/run` installs them).

mod common;

use common::{ok, quick_checkpoint, s};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Images in the synthetic survey file.
const IMAGES: usize = 20_000;
/// Shards, one array task each.
const SHARDS: usize = 4;

/// Why the test cannot run here, if it cannot.
fn missing() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root (the test starts slurmctld and slurmd)".into());
    }
    for tool in ["munged", "slurmctld", "slurmd", "sbatch", "squeue"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!(
                "{tool} not found (Debian: apt-get install slurm-wlm munge)"
            ));
        }
    }
    let h5py = Command::new("python3")
        .args(["-c", "import h5py"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !h5py {
        return Some("python3 with h5py not found (pip install h5py)".into());
    }
    None
}

/// Where a program is.
fn which(tool: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// munged, slurmctld and slurmd in the foreground of this test; killed when dropped.
struct Cluster {
    conf: PathBuf,
    daemons: Vec<Child>,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        let munge = dir.join("munge");
        for d in [&munge, &dir.join("state"), &dir.join("spool")] {
            std::fs::create_dir_all(d).unwrap();
        }
        let key = munge.join("munge.key");
        let mut bytes = vec![0u8; 1024];
        std::fs::File::open("/dev/urandom")
            .unwrap()
            .read_exact(&mut bytes)
            .unwrap();
        std::fs::write(&key, bytes).unwrap();
        use std::os::unix::fs::PermissionsExt;
        for (p, mode) in [(&key, 0o600), (&munge, 0o700), (&dir.to_path_buf(), 0o755)] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let socket = munge.join("munge.sock");
        let mut cluster = Cluster {
            conf: dir.join("slurm.conf"),
            daemons: Vec::new(),
        };
        cluster.spawn(
            Command::new(which("munged"))
                .arg("--foreground")
                .arg("--force")
                .arg(format!("--socket={}", socket.display()))
                .arg(format!("--key-file={}", key.display()))
                .arg(format!("--pid-file={}", munge.join("munged.pid").display()))
                .arg(format!("--log-file={}", munge.join("munged.log").display()))
                .arg(format!(
                    "--seed-file={}",
                    munge.join("munged.seed").display()
                )),
        );
        let host = Command::new("hostname").arg("-s").output().unwrap();
        let host = String::from_utf8_lossy(&host.stdout).trim().to_string();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let d = dir.display();
        let conf = format!(
            "ClusterName=amtest\nSlurmctldHost={host}\nAuthType=auth/munge\n\
             AuthInfo=socket={socket}\nCredType=cred/munge\nSlurmUser=root\nSlurmdUser=root\n\
             SlurmctldPort={ctld}\nSlurmdPort={slurmd}\nStateSaveLocation={d}/state\n\
             SlurmdSpoolDir={d}/spool\nSlurmctldPidFile={d}/slurmctld.pid\n\
             SlurmdPidFile={d}/slurmd.pid\nSlurmctldLogFile={d}/slurmctld.log\n\
             SlurmdLogFile={d}/slurmd.log\nProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\nSchedulerType=sched/backfill\nSelectType=select/cons_tres\n\
             SelectTypeParameters=CR_CPU\nReturnToService=2\nMpiDefault=none\n\
             JobCompType=jobcomp/none\nJobAcctGatherType=jobacct_gather/none\n\
             AccountingStorageType=accounting_storage/none\n\
             NodeName={host} CPUs={cpus} State=UNKNOWN\n\
             PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
            socket = socket.display(),
            ctld = free_port(),
            slurmd = free_port(),
        );
        std::fs::write(&cluster.conf, conf).unwrap();
        // munged must be listening before the Slurm daemons authenticate.
        let start = Instant::now();
        while !socket.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "munged did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let conf = cluster.conf.clone();
        cluster.spawn(
            Command::new(which("slurmctld"))
                .arg("-D")
                .arg("-f")
                .arg(&conf),
        );
        cluster.spawn(Command::new(which("slurmd")).arg("-D").arg("-f").arg(&conf));
        // Ready when the node is idle.
        let start = Instant::now();
        loop {
            let out = cluster.tool("sinfo", &["-h", "-o", "%t"]);
            if out.trim() == "idle" {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the node did not come up: {out}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        cluster
    }

    fn spawn(&mut self, command: &mut Command) {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.daemons.push(child);
    }

    /// Runs a Slurm client against this cluster; its stdout.
    fn tool(&self, tool: &str, args: &[&str]) -> String {
        let out = Command::new(tool)
            .args(args)
            .env("SLURM_CONF", &self.conf)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Slurm daemons first, munged last.
        for child in self.daemons.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Writes `IMAGES` random 16x16 RGB cutouts as a uint8 cube (N, H, W, C) with their names.
fn write_survey(path: &Path) {
    let script = format!(
        "import h5py, numpy as np\n\
         rng = np.random.default_rng(12)\n\
         images = rng.integers(0, 256, size=({IMAGES}, 16, 16, 3), dtype=np.uint8)\n\
         names = np.array(['obj%05d' % i for i in range({IMAGES})], dtype=h5py.string_dtype())\n\
         with h5py.File({path:?}, 'w') as f:\n\
         \x20   f.create_dataset('images', data=images, chunks=(500, 16, 16, 3))\n\
         \x20   f.create_dataset('filenames', data=names)\n",
        path = path.display().to_string()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "h5py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_job_array_of_four_shards_on_a_real_slurm_equals_a_single_run() {
    if let Some(why) = missing() {
        eprintln!("skipping the Slurm test: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let survey = dir.path().join("survey.h5");
    write_survey(&survey);
    let checkpoint = quick_checkpoint(dir.path(), &[]);
    let job = |out: &Path| {
        vec![
            "--quiet".to_string(),
            "--checkpoint".into(),
            s(&checkpoint).into(),
            "--images".into(),
            s(&survey).into(),
            "--top".into(),
            "10".into(),
            "--set".into(),
            "score.part_size=1000".into(),
            "--out".into(),
            s(out).into(),
        ]
    };
    let single = dir.path().join("single");
    let t = Instant::now();
    let mut args = vec!["score".to_string()];
    args.extend(job(&single));
    let single_out = ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    println!(
        "single process: {} ({:.1} s)",
        single_out.trim(),
        t.elapsed().as_secs_f64()
    );

    let cluster = Cluster::start(&dir.path().join("slurm"));
    // A space and a '%' in the output folder: the scripts' log paths must stay one path.
    let sharded = dir.path().join("sharded 50% run");
    let mut args = vec!["slurm".to_string(), "score".into()];
    args.extend(job(&sharded));
    args.extend(["--shards".into(), SHARDS.to_string(), "--submit".into()]);
    let t = Instant::now();
    let submitted = Command::new(env!("CARGO_BIN_EXE_anomalymatch"))
        .args(&args)
        .env("SLURM_CONF", &cluster.conf)
        .output()
        .unwrap();
    assert!(
        submitted.status.success(),
        "{}",
        String::from_utf8_lossy(&submitted.stderr)
    );
    println!("{}", String::from_utf8_lossy(&submitted.stdout).trim());
    let scripts = sharded.join("slurm");
    let logs = || {
        let mut text = String::new();
        for e in std::fs::read_dir(&scripts).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "log") {
                text.push_str(&format!(
                    "== {}\n{}",
                    p.display(),
                    std::fs::read_to_string(&p).unwrap_or_default()
                ));
            }
        }
        text
    };
    // Done when the queue is empty; the merge job ran only if every task succeeded.
    loop {
        let queue = cluster.tool("squeue", &["-h"]);
        if queue.trim().is_empty() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(1200),
            "the jobs did not finish: {queue}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    println!(
        "slurm: {SHARDS} shards and the merge finished in {:.1} s\n{}",
        t.elapsed().as_secs_f64(),
        logs()
    );
    for file in ["scores.parquet", "top_candidates.csv", "top_candidates.png"] {
        let merged =
            std::fs::read(sharded.join(file)).unwrap_or_else(|e| panic!("{file}: {e}\n{}", logs()));
        assert!(
            merged == std::fs::read(single.join(file)).unwrap(),
            "{file}: the Slurm run differs from the single run"
        );
    }
    for i in 0..SHARDS {
        assert!(
            sharded
                .join(format!("scores-shard-{i}-of-{SHARDS}.parquet"))
                .is_file()
        );
    }
    let logs_written = std::fs::read_dir(&scripts)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count();
    assert_eq!(logs_written, SHARDS + 1, "{}", logs());
    let rows = common::score_rows(&sharded.join("scores.parquet"));
    assert_eq!(rows.len(), IMAGES);
    drop(cluster);
}
