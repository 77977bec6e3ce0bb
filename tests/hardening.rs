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

/// A long `train` on the built-in images into `out`, started in the background.
fn long_train(out: &Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_anomalymatch"))
        .args(["train", "--quiet", "--size", "32", "--iters", "100000"])
        .args(["--set", "train.batch_size=2", "--set", "train.uratio=1"])
        .args(["--out", s(out)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until the lock file in `dir` names its holder.
fn wait_for_holder(dir: &Path) -> String {
    let lock = dir.join(".anomalymatch.lock");
    for _ in 0..600 {
        if let Ok(text) = std::fs::read_to_string(&lock)
            && !text.is_empty()
        {
            return text;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{} never named a holder", lock.display());
}

#[test]
fn a_second_writer_of_a_folder_or_session_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = common::quick_checkpoint(dir.path(), &[]);
    let out = dir.path().join("o");
    let mut first = long_train(&out);
    let holder = wait_for_holder(&out);
    assert!(
        holder.contains(&format!("process {}", first.id())),
        "{holder}"
    );
    let train = [
        "train",
        "--quiet",
        "--size",
        "32",
        "--iters",
        "1",
        "--out",
        s(&out),
    ];
    let pid = format!("process {}", first.id());
    fails(&train, 1, &[s(&out), "in use by", &pid]);
    // The whole-run score and a scoring shard are writers of the folder too.
    let score = [
        "score",
        "--quiet",
        "--out",
        s(&out),
        "--checkpoint",
        s(&checkpoint),
    ];
    fails(&score, 1, &["in use by", &pid]);
    fails(
        &[&score[..], &["--shard", "0/2"]].concat(),
        1,
        &["in use by", &pid],
    );
    first.kill().unwrap();
    first.wait().unwrap();
    // The lock went with the process, however it ended.
    common::ok(&train);

    // A session has one writer: `serve` holds it, and `label` on it is refused.
    let session = dir.path().join("s");
    let tiny = common::server::tiny(&session);
    let tiny: Vec<&str> = tiny.iter().map(String::as_str).collect();
    let server = common::server::Server::start(&tiny);
    wait_for_holder(&session.join("session"));
    let answers = common::answers_file(dir.path());
    let (code, _, stderr) = outcome(&[&["label"][..], &tiny, &["--oracle", &answers]].concat());
    assert_eq!(code, Some(1), "{stderr}");
    let serve_pid = format!("process {}", server.child.id());
    assert!(
        stderr.contains("in use by") && stderr.contains(&serve_pid),
        "{stderr}"
    );
    server.kill();
}

#[test]
fn cleanup_removes_only_our_temporary_files_that_nobody_writes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    std::fs::create_dir_all(&out).unwrap();
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let at = |name: &str| {
        let p = out.join(name);
        std::fs::write(&p, b"partial").unwrap();
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(an_hour_ago).unwrap();
        p
    };
    // A user's file in our old pattern, a dead writer's temporary file, and one that a writer
    // on "another node" (its own PID namespace where this machine allows one) still holds.
    let users = at(".notes.123.tmp");
    let dead = at(".scores.parquet.node7.4242.0badf00d.anomalymatch-tmp");
    let writing = at(".checkpoint.safetensors.node8.1.cafe0001.anomalymatch-tmp");
    let hold = format!("exec flock {} sleep 600", s(&writing));
    let isolated = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status()
        .is_ok_and(|s| s.success());
    let mut holder = if isolated {
        std::process::Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "sh", "-c", &hold])
            .spawn()
    } else {
        std::process::Command::new("sh").args(["-c", &hold]).spawn()
    }
    .unwrap();
    // flock has the lock once it runs sleep; wait for that.
    for _ in 0..100 {
        let locked = std::fs::File::open(&writing).unwrap().try_lock().is_err();
        if locked {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let stdout = common::ok(&["train", "--size", "32", "--iters", "1", "--out", s(&out)]);
    assert!(stdout.contains("removed 1 temporary file(s)"), "{stdout}");
    assert!(!dead.exists());
    assert!(writing.exists(), "a locked temporary file was removed");
    assert!(users.exists(), "a user's file was removed");
    holder.kill().unwrap();
    holder.wait().unwrap();
}

/// `score` arguments over `images` with `checkpoint` into `out`, with the default settings.
fn plain_score_args<'a>(images: &'a Path, checkpoint: &'a Path, out: &'a Path) -> Vec<&'a str> {
    let (images, checkpoint, out) = (s(images), s(checkpoint), s(out));
    vec![
        "score",
        "--quiet",
        "--images",
        images,
        "--checkpoint",
        checkpoint,
        "--out",
        out,
    ]
}

/// `score` arguments over `images` into `out`, in parts of ten images.
fn score_args<'a>(images: &'a Path, checkpoint: &'a Path, out: &'a Path) -> Vec<&'a str> {
    let mut args = plain_score_args(images, checkpoint, out);
    args.extend(["--set", "score.part_size=10", "--set", "score.batch_size=2"]);
    args
}

#[test]
fn a_resumed_score_whose_images_were_renamed_starts_over_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let (images, _) = common::mini_copy(dir.path());
    let checkpoint = common::quick_checkpoint(dir.path(), &[]);
    let out = dir.path().join("o");
    let args = score_args(&images, &checkpoint, &out);
    // Stop a run once it has finished a part, as a crash would.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_anomalymatch"))
        .args(&args[..])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let first_part = out.join("score-run/part-00000000.parquet");
    while !first_part.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before a kill"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The first image in name order (it is in the finished part) is renamed.
    let mut names: Vec<String> = std::fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let renamed = format!("zz-{}", names[0]);
    std::fs::rename(images.join(&names[0]), images.join(&renamed)).unwrap();
    let (code, _, stderr) = outcome(&args);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("the images' listing"), "{stderr}");
    let rows: Vec<String> = common::score_rows(&out.join("scores.parquet"))
        .names
        .clone();
    assert!(rows.contains(&renamed), "the renamed file was not scored");
    assert!(!rows.contains(&names[0]), "a row for a file that is gone");
}

#[test]
fn shards_scored_from_different_listings_are_not_merged() {
    let dir = tempfile::tempdir().unwrap();
    let (images, _) = common::mini_copy(dir.path());
    let checkpoint = common::quick_checkpoint(dir.path(), &[]);
    let out = dir.path().join("o");
    let args = score_args(&images, &checkpoint, &out);
    common::ok(&[&args[..], &["--shard", "0/2"]].concat());
    let name = std::fs::read_dir(&images).unwrap().next().unwrap().unwrap();
    let renamed = images.join(format!("zz-{}", name.file_name().to_str().unwrap()));
    std::fs::rename(name.path(), renamed).unwrap();
    common::ok(&[&args[..], &["--shard", "1/2"]].concat());
    fails(
        &["merge", "--quiet", "--out", s(&out)],
        1,
        &["not shards of one run", "listing"],
    );
}

/// A small session served in `dir`.
fn small_server(dir: &Path) -> common::server::Server {
    let tiny = common::server::tiny(&dir.join("o"));
    let tiny: Vec<&str> = tiny.iter().map(String::as_str).collect();
    common::server::Server::start(&tiny)
}

/// Sends `head` (a request line and headers, without the blank line) and `body` as they are;
/// returns the status, 0 when no answer came.
fn raw(port: u16, head: &str, body: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let request = format!(
        "{head}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn writes_from_another_origin_host_or_content_type_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = small_server(dir.path());
    server.wait_idle(std::time::Duration::from_secs(120));
    let port = server.port;
    let cookie = format!("Cookie: anomalymatch_token_{port}={}", server.token);
    let (_, items) = server.call("GET", "/api/candidates", None);
    let items: serde_json::Value = serde_json::from_str(&items).unwrap();
    let name = items["items"][0]["name"].as_str().unwrap().to_string();
    let body = format!(r#"{{"name":"{name}","label":"anomaly"}}"#);
    let post = |host: &str, extra: &str| {
        raw(
            port,
            &format!("POST /api/label HTTP/1.1\r\nHost: {host}\r\n{cookie}{extra}"),
            &body,
        )
    };
    let here = format!("127.0.0.1:{port}");
    let json = "\r\nContent-Type: application/json";
    // A form on another site: text/plain with the cookie alone.
    assert_eq!(post(&here, "\r\nContent-Type: text/plain"), 415);
    assert_eq!(post(&here, ""), 415);
    let evil = "\r\nOrigin: http://evil.example";
    assert_eq!(post(&here, &format!("{json}{evil}")), 403);
    // A page that rebound its own name to 127.0.0.1.
    assert_eq!(post(&format!("evil.example:{port}"), json), 421);
    let get = format!("GET /api/status HTTP/1.1\r\nHost: evil.example:{port}\r\n{cookie}");
    assert_eq!(raw(port, &get, ""), 421);
    // The page itself.
    let origin = format!("\r\nOrigin: http://{here}");
    assert_eq!(post(&here, &format!("{json}{origin}")), 200);
    assert_eq!(post(&format!("localhost:{port}"), json), 200);
    let journal = std::fs::read_to_string(dir.path().join("o/session/journal.jsonl")).unwrap();
    assert_eq!(journal.lines().count(), 2, "{journal}");
    server.kill();
}

#[test]
fn idle_and_trickling_connections_are_closed_and_capped() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let server = small_server(dir.path());
    let port = server.port;
    // Far more idle sockets than the cap; none sends a byte.
    let idle: Vec<std::net::TcpStream> = (0..600)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    // A slowloris client: one byte of a request head every half second.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.set_write_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let closed = (0..120).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(500));
        slow.write_all(b"X").is_err()
    });
    assert!(
        closed,
        "a trickled request head kept its connection for a minute"
    );
    // Every idle socket is closed by the server: at once beyond the cap, the others when
    // their head is overdue.
    for mut s in idle {
        s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .unwrap();
        let mut byte = [0u8; 1];
        assert!(matches!(s.read(&mut byte), Ok(0) | Err(_)));
    }
    let (code, _) = server.call("GET", "/api/status", None);
    assert_eq!(code, 200, "the server stopped answering");
    server.kill();
}

#[test]
fn ctrl_c_stops_serve_at_once_with_an_event_stream_open() {
    use std::io::{BufRead, Write};
    let dir = tempfile::tempdir().unwrap();
    let mut server = small_server(dir.path());
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let head = format!(
        "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Token: {}\r\n\r\n",
        server.token
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    while !line.starts_with("data:") {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "no event came");
    }
    let pid = server.child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let mut exited = None;
    for _ in 0..300 {
        exited = server.child.try_wait().unwrap();
        if exited.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        exited.is_some_and(|s| s.success()),
        "serve did not stop: {exited:?}"
    );
    drop(stream);
}

/// Runs the binary with `args` through python3, returning (exit code, stderr, peak resident
/// memory of the child in kB); `None` without python3.
fn with_peak_memory(args: &[&str]) -> Option<(Option<i32>, String, u64)> {
    let script = "import resource, subprocess, sys\n\
                  r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, \
                  stderr=subprocess.PIPE, timeout=600)\n\
                  sys.stderr.buffer.write(r.stderr)\n\
                  print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script, env!("CARGO_BIN_EXE_anomalymatch")])
        .args(args)
        .output()
        .ok()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut fields = stdout.split_whitespace();
    let code = fields.next()?.parse().ok();
    let peak = fields.next()?.parse().ok()?;
    Some((
        code,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        peak,
    ))
}

#[test]
fn devices_fifos_and_huge_files_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let (images, _) = common::mini_copy(dir.path());
    std::os::unix::fs::symlink("/dev/zero", images.join("zero.jpeg")).unwrap();
    let sparse = std::fs::File::create(images.join("sparse.jpeg")).unwrap();
    sparse.set_len(1 << 30).unwrap();
    let fifo = images.join("fifo.jpeg");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    let checkpoint = common::quick_checkpoint(dir.path(), &[]);
    let out = dir.path().join("o");
    let args = plain_score_args(&images, &checkpoint, &out);
    let Some((code, stderr, peak_kb)) = with_peak_memory(&args) else {
        eprintln!("skipping: python3 not found");
        return;
    };
    assert_eq!(code, Some(0), "{stderr}");
    for (name, why) in [
        ("zero.jpeg", "not a regular file"),
        ("fifo.jpeg", "not a regular file"),
        ("sparse.jpeg", "limit on one image"),
    ] {
        assert!(
            stderr.lines().any(|l| l.contains(name) && l.contains(why)),
            "{name}: {stderr}"
        );
    }
    // Nothing of the gigabyte was read.
    assert!(peak_kb < 800_000, "peak {peak_kb} kB");
}

#[test]
fn a_zip_of_huge_members_is_read_within_one_chunk_budget() {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("bomb.zip");
    // A real cutout first (so the checkpoint check passes), then six members of a PNG
    // signature and 240 MB of zeros, each under the one-image limit: 1.4 GB inflated from
    // about 6 MB, that pass the signature check and so are held until decoded.
    let first = a_cutout();
    let script = format!(
        "import zipfile\n\
         z = zipfile.ZipFile({:?}, 'w', zipfile.ZIP_DEFLATED, compresslevel=1)\n\
         z.write({:?}, 'a.jpg')\n\
         block = b'\\x89PNG\\r\\n\\x1a\\n' + bytes(240 * 1024 * 1024)\n\
         for i in range(6):\n\
         \x20   z.writestr('m%d.png' % i, block)\n\
         z.close()\n",
        s(&zip),
        s(&first)
    );
    if !python(&script) {
        return;
    }
    let checkpoint = common::quick_checkpoint(dir.path(), &[]);
    let out = dir.path().join("o");
    let args = plain_score_args(&zip, &checkpoint, &out);
    let (code, stderr, peak_kb) = with_peak_memory(&args).unwrap();
    // The six are unreadable (zeros are no image): the run names them and ends.
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("unreadable") && stderr.contains("m0.png"),
        "{stderr}"
    );
    // One member in memory at a time (with the next chunk read ahead), not six.
    assert!(peak_kb < 1_000_000, "peak {peak_kb} kB");
}

#[test]
fn a_configuration_that_is_not_text_or_echoes_a_huge_key_gets_one_short_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, [0xff, 0xfe, b'a', b'=', b'1']).unwrap();
    fails(
        &["train", "--config", s(&config)],
        2,
        &["c.toml", "not UTF-8"],
    );
    std::fs::write(&config, format!("{} = 1\n", "k".repeat(1_000_000))).unwrap();
    let (code, _, stderr) = outcome(&["train", "--config", s(&config)]);
    assert_eq!(code, Some(2), "{}", &stderr[..200.min(stderr.len())]);
    assert!(stderr.len() < 1200, "{} bytes of error", stderr.len());
    assert!(
        stderr.contains("c.toml:1:"),
        "{}",
        &stderr[..200.min(stderr.len())]
    );
}

/// Runs a python3 script; false (with the reason on stderr) where python3 or its modules are
/// missing, so that the caller skips.
fn python(script: &str) -> bool {
    let made = std::process::Command::new("python3")
        .args(["-c", script])
        .output();
    match made {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!("skipping: python3: {}", String::from_utf8_lossy(&o.stderr));
            false
        }
        Err(e) => {
            eprintln!("skipping: python3: {e}");
            false
        }
    }
}

/// The first image of the built-in data.
fn a_cutout() -> std::path::PathBuf {
    let mut all: Vec<_> = std::fs::read_dir(Path::new(common::MINI).join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    all.sort();
    all.swap_remove(0)
}

#[test]
fn repeated_names_are_told_apart_and_printed_names_cannot_drive_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = common::quick_checkpoint(dir.path(), &[]);
    let out = dir.path().join("o");

    // A zip with one image member name twice.
    let zip = dir.path().join("dup.zip");
    let script = format!(
        "import zipfile, warnings\n\
         warnings.simplefilter('ignore')\n\
         z = zipfile.ZipFile({:?}, 'w')\n\
         for name in ['a.jpg', 'b.jpg', 'a.jpg']:\n\
         \x20   z.write({:?}, name)\n\
         z.close()\n",
        s(&zip),
        s(&a_cutout())
    );
    if python(&script) {
        // Zip readers keep one copy per name: the archive is refused, naming the name.
        fails(
            &plain_score_args(&zip, &checkpoint, &out),
            1,
            &[
                "dup.zip",
                "1 image member name(s) occur more than once",
                "\"a.jpg\"",
            ],
        );
    }

    // An HDF5 cube whose names repeat.
    let h5 = dir.path().join("dup.h5");
    let script = format!(
        "import h5py, numpy as np\n\
         with h5py.File({:?}, 'w') as f:\n\
         \x20   f['images'] = (np.arange(4 * 40 * 40 * 3) % 251).astype('uint8').reshape(4, 40, 40, 3)\n\
         \x20   f['filenames'] = np.array(['x', 'y', 'x', 'z'], dtype=h5py.string_dtype())\n",
        s(&h5)
    );
    if python(&script) {
        let (code, _, stderr) = outcome(&plain_score_args(&h5, &checkpoint, &out));
        assert_eq!(code, Some(0), "{stderr}");
        assert!(
            stderr.contains("row name(s) occur more than once"),
            "{stderr}"
        );
        let mut names = common::score_rows(&out.join("scores.parquet")).names;
        names.sort();
        assert_eq!(names, ["x[0]", "x[2]", "y", "z"]);
    }

    // A file name with a terminal escape and a NUL-like control character, unreadable: the
    // warning names it escaped.
    let (images, _) = common::mini_copy(&dir.path().join("m"));
    std::fs::write(images.join("\u{1b}[2J\u{7}evil.png"), b"not a png").unwrap();
    let (code, stdout, stderr) = outcome(&plain_score_args(&images, &checkpoint, &out));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("\\u{1b}[2J\\u{7}evil.png"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}') && !stdout.contains('\u{1b}'),
        "raw escape printed: {stderr:?}"
    );
}

#[test]
fn empty_sources_empty_paths_and_an_output_inside_the_images_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = common::quick_checkpoint(dir.path(), &[]);
    let out = dir.path().join("o");
    let zip = dir.path().join("empty.zip");
    let h5 = dir.path().join("empty.h5");
    let script = format!(
        "import zipfile\n\
         z = zipfile.ZipFile({:?}, 'w')\n\
         z.writestr('readme.txt', 'no images here')\n\
         z.close()\n",
        s(&zip)
    );
    if python(&script) {
        fails(
            &plain_score_args(&zip, &checkpoint, &out),
            1,
            &["empty.zip", "holds no image", "1 member(s) skipped"],
        );
    }
    let script = format!(
        "import h5py, numpy as np\n\
         with h5py.File({:?}, 'w') as f:\n\
         \x20   f['images'] = np.zeros((0, 8, 8, 3), dtype='uint8')\n\
         \x20   f['filenames'] = np.array([], dtype=h5py.string_dtype())\n",
        s(&h5)
    );
    if python(&script) {
        fails(
            &plain_score_args(&h5, &checkpoint, &out),
            1,
            &["empty.h5", "holds no image"],
        );
    }
    // A path emptied by --set is named, not reported as a nameless missing file.
    fails(
        &["train", "--iters", "1", "--set", "data.images="],
        2,
        &["data.images: is empty"],
    );
    // Writing into the images folder would score the contact sheets next time.
    let (images, _) = common::mini_copy(dir.path());
    fails(
        &plain_score_args(&images, &checkpoint, &images),
        2,
        &["is the images folder"],
    );
}

#[test]
fn score_refuses_pixel_settings_its_checkpoint_was_not_trained_with() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = common::quick_checkpoint(dir.path(), &[]);
    let out = dir.path().join("o");
    let images = Path::new(common::MINI).join("images");
    for (set, named) in [
        ("data.size=64", "data.size = 64"),
        ("data.channels=\"grey\"", "data.channels = grey"),
        ("data.stretch.low=2.0", "data.stretch = Percentile"),
    ] {
        let mut args = plain_score_args(&images, &checkpoint, &out);
        args.extend(["--set", set]);
        fails(&args, 2, &["checkpoint.safetensors", named, "trained"]);
    }
    // Asking for what the checkpoint was trained with is no conflict.
    let mut args = plain_score_args(&images, &checkpoint, &out);
    args.extend(["--set", "data.size=32"]);
    common::ok(&args);
}

#[test]
fn errors_that_are_not_about_decoding_do_not_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = common::quick_checkpoint(dir.path(), &[]);
    let out = dir.path().join("o");
    let zip = dir.path().join("broken.zip");
    std::fs::write(&zip, b"PK but nothing more").unwrap();
    let (code, _, stderr) = outcome(&plain_score_args(&zip, &checkpoint, &out));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("broken.zip: not a readable zip archive") && !stderr.contains("decode"),
        "{stderr}"
    );
    // Five-band cutouts read as RGB: the message names the key to set.
    let cubes = dir.path().join("cubes");
    std::fs::create_dir_all(&cubes).unwrap();
    for i in 0..2 {
        common::write_fits(&cubes.join(format!("c{i}.fits")), 5, 16, |b, y, x| {
            (b + y + x) as f32
        });
    }
    let (_, _, stderr) = outcome(&plain_score_args(&cubes, &checkpoint, &out));
    assert!(
        stderr.contains("set data.channels") && !stderr.contains("ChannelMode"),
        "{stderr}"
    );
}

#[test]
fn fits_fifos_and_oversized_hdf5_images_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = common::quick_checkpoint(dir.path(), &[]);
    let out = dir.path().join("o");
    // A FIFO named like a FITS file is counted as unreadable, not skipped unseen or read.
    let fits = dir.path().join("fits");
    std::fs::create_dir_all(&fits).unwrap();
    for i in 0..3 {
        common::write_fits(&fits.join(format!("g{i}.fits")), 1, 16, |_, y, x| {
            (y * x + i) as f32
        });
    }
    let made = std::process::Command::new("mkfifo")
        .arg(fits.join("pipe.fits"))
        .status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    let (code, stdout, stderr) = outcome(&plain_score_args(&fits, &checkpoint, &out));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("1 unreadable") || stderr.contains("1 unreadable"),
        "{stdout}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("pipe.fits") && l.contains("not a regular file")),
        "{stderr}"
    );
    // An HDF5 cube that declares 1.5 GB per image (nothing stored) is refused at opening.
    let h5 = dir.path().join("huge.h5");
    let script = format!(
        "import h5py, numpy as np\n\
         with h5py.File({:?}, 'w') as f:\n\
         \x20   f.create_dataset('images', shape=(2, 8000, 8000, 3), dtype='float64', chunks=(1, 64, 64, 3))\n\
         \x20   f['filenames'] = np.array(['a', 'b'], dtype=h5py.string_dtype())\n",
        s(&h5)
    );
    if python(&script) {
        fails(
            &plain_score_args(&h5, &checkpoint, &out),
            1,
            &["huge.h5:images", "limit on one image"],
        );
    }
}
