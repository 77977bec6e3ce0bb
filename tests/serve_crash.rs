#![allow(clippy::unwrap_used)]
//! Crash test of `serve`: the server is killed with SIGKILL at seeded random moments while a
//! client labels over HTTP (and exports now and then), at least 20 times, and restarted each
//! time. Every answer the server acknowledged must be there at the end, and no torn or stale
//! file may be left in the session folder.

mod common;

use common::server::{Server, tiny};
use rand::{RngExt, SeedableRng};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KILLS: usize = 20;

#[test]
fn serve_killed_20_times_loses_no_acknowledged_answer() {
    let dir = tempfile::tempdir().unwrap();
    let args = tiny(dir.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = Server::start(&args);
    first.wait_idle(Duration::from_secs(300));
    let (_, body) = first.call("GET", "/api/candidates?limit=5000", None);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names: Vec<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    first.kill();
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    // Each name is answered at most once, so the answer acknowledged is the one to find.
    let todo = Arc::new(Mutex::new(names));
    let acknowledged = Arc::new(Mutex::new(BTreeMap::new()));
    let mut cut = 0;
    for kill in 0..KILLS {
        let server = Server::start(&args);
        let (port, token) = (server.port, server.token.clone());
        let seed = rng.random::<u64>();
        let (todo, acked) = (todo.clone(), acknowledged.clone());
        let client = std::thread::spawn(move || {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let header = format!("X-Token: {token}\r\n");
            for n in 0..15 {
                let Some(name) = todo.lock().unwrap().pop() else {
                    return false;
                };
                let label = ["anomaly", "normal", "remember"][rng.random_range(0..3)];
                let body = format!(r#"{{"name":"{name}","label":"{label}"}}"#);
                let (code, text) =
                    common::server::http(port, "POST", "/api/label", &header, body.as_bytes());
                if code == 0 {
                    return true; // killed mid-request: not acknowledged
                }
                assert_eq!(code, 200, "{name}: {text}");
                assert!(text.contains(r#""saved":true"#));
                acked.lock().unwrap().insert(name, label);
                if n % 5 == 4 {
                    let (code, _) = common::server::http(port, "POST", "/api/export", &header, b"");
                    if code == 0 {
                        return true;
                    }
                }
            }
            false
        });
        // Fifteen answers take a few hundred milliseconds: most kills land among them.
        std::thread::sleep(Duration::from_millis(rng.random_range(20..400)));
        server.kill();
        if client.join().unwrap() {
            cut += 1;
        }
        println!(
            "kill {}: {} answers acknowledged so far, {cut} kills cut a request off",
            kill + 1,
            acknowledged.lock().unwrap().len()
        );
    }
    let server = Server::start(&args);
    server.wait_idle(Duration::from_secs(300));
    let (_, body) = server.call("GET", "/api/labels", None);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let labels: BTreeMap<String, String> = v["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_string(),
                l["label"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let remembered: Vec<&str> = v["remembered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    let acknowledged = acknowledged.lock().unwrap();
    assert!(
        acknowledged.len() >= 20,
        "too few answers: {}",
        acknowledged.len()
    );
    for (name, label) in acknowledged.iter() {
        if *label == "remember" {
            assert!(remembered.contains(&name.as_str()), "{name} not remembered");
        } else {
            assert_eq!(labels.get(name).map(String::as_str), Some(*label), "{name}");
        }
    }
    // Nothing torn or stale: only the session's own files, each readable.
    let session = dir.path().join("session");
    let mut files: Vec<String> = std::fs::read_dir(&session)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    for f in &files {
        assert!(
            [
                // A killed server leaves its lock file; the next holder takes it over.
                ".anomalymatch.lock",
                "checkpoint.safetensors",
                "journal.jsonl",
                "labeled_data.csv",
                "remembered.csv",
                "state.json"
            ]
            .contains(&f.as_str()),
            "unexpected file {f} in {files:?}"
        );
    }
    for line in std::fs::read_to_string(session.join("journal.jsonl"))
        .unwrap()
        .lines()
    {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
    if let Ok(text) = std::fs::read_to_string(session.join("labeled_data.csv")) {
        assert!(text.starts_with("filename,label"), "{text}");
        assert!(text.ends_with('\n'), "torn export");
    }
}
