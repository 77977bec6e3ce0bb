//! Starting `anomalymatch serve` as a user does and talking plain HTTP to it, for the server,
//! browser and crash tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server: the process, its port and token.
pub struct Server {
    /// The process (killed when dropped).
    pub child: Child,
    /// The port it listens on.
    pub port: u16,
    /// The access token of its URL.
    pub token: String,
}

impl Server {
    /// Starts `serve` on a free port with `args` and waits for its URL.
    pub fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_anomalymatch"))
            .arg("serve")
            .args(["--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("serve ended before printing its URL")
                .unwrap();
            if let Some(at) = line.find("http://") {
                break line[at..].to_string();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        let rest = url.trim_start_matches("http://");
        let (host, query) = rest.split_once('/').unwrap();
        let port = host.rsplit(':').next().unwrap().parse().unwrap();
        let token = query.split("token=").nth(1).unwrap().to_string();
        Server { child, port, token }
    }

    /// The page's URL with the token.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/?token={}", self.port, self.token)
    }

    /// A request with the token in a header; returns (status, body).
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let token = format!("X-Token: {}\r\n", self.token);
        http(
            self.port,
            method,
            path,
            &token,
            body.unwrap_or("").as_bytes(),
        )
    }

    /// Polls `/api/status` until no job runs and the first one has finished.
    pub fn wait_idle(&self, limit: Duration) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let (code, body) = self.call("GET", "/api/status", None);
            if code == 200 {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                let state = v["progress"]["state"].as_str().unwrap_or("");
                if !v["busy"].as_bool().unwrap_or(true) && (state == "done" || state == "failed") {
                    assert_eq!(state, "done", "job failed: {body}");
                    return v;
                }
            }
            assert!(start.elapsed() < limit, "server not idle after {limit:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILLs the server and waits for it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request over a fresh connection with extra `headers` (each ending in CRLF);
/// returns (status, body as text), status 0 when no answer came.
pub fn http(port: u16, method: &str, path: &str, headers: &str, body: &[u8]) -> (u16, String) {
    // A refused connection (the server was just killed) reads as no answer: status 0.
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    // Writes are JSON, as the page sends them, unless the caller says otherwise.
    let json = if method != "GET" && !headers.to_ascii_lowercase().contains("content-type:") {
        "Content-Type: application/json\r\n"
    } else {
        ""
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{json}{headers}\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    // The server may answer (413) and close before a large body is written.
    let _ = s.write_all(head.as_bytes()).and_then(|_| s.write_all(body));
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string());
    (code, body)
}

/// Arguments of a small, fast session on the built-in data in `out`.
pub fn tiny(out: &Path) -> Vec<String> {
    [
        "--quiet",
        "--size",
        "32",
        "--iters",
        "2",
        "--set",
        "train.batch_size=4",
        "--set",
        "train.uratio=1",
        "--set",
        "score.batch_size=64",
        "--out",
        out.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}
