#![allow(clippy::unwrap_used)]
//! `anomalymatch serve` over plain HTTP: the token, refused names, bad input of every kind at
//! every route without a panic, answers durable and the last of two tabs winning, exports.

mod common;

use common::server::{Server, http, tiny};
use common::{MINI, s};
use std::path::Path;
use std::time::Duration;

fn start(out: &Path, extra: &[&str]) -> Server {
    let mut args = tiny(out);
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(&args)
}

fn first_candidate(server: &Server) -> String {
    let (code, body) = server.call("GET", "/api/candidates?limit=5", None);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["items"][0]["name"].as_str().unwrap().to_string()
}

#[test]
fn every_request_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    for path in [
        "/",
        "/app.js",
        "/api/status",
        "/api/candidates",
        "/api/events",
    ] {
        let (code, _) = http(server.port, "GET", path, "", b"");
        assert_eq!(code, 401, "{path} without a token");
        let (code, _) = http(server.port, "GET", path, "X-Token: wrong\r\n", b"");
        assert_eq!(code, 401, "{path} with a wrong token");
        let (code, _) = http(
            server.port,
            "GET",
            &format!("{path}?token={}x", server.token),
            "",
            b"",
        );
        assert_eq!(code, 401, "{path} with a longer token");
    }
    let (code, _) = http(
        server.port,
        "POST",
        "/api/label",
        "",
        br#"{"name":"a","label":"normal"}"#,
    );
    assert_eq!(code, 401);
    // The URL's token works and sets the cookie the page's own requests carry.
    let (code, body) = http(
        server.port,
        "GET",
        &format!("/?token={}", server.token),
        "",
        b"",
    );
    assert_eq!(code, 200);
    assert!(body.contains("<canvas"), "{body}");
    let cookie = format!(
        "Cookie: anomalymatch_token_{}={}\r\n",
        server.port, server.token
    );
    let (code, _) = http(server.port, "GET", "/api/status", &cookie, b"");
    assert_eq!(code, 200);
}

#[test]
fn binding_beyond_loopback_needs_a_flag() {
    let dir = tempfile::tempdir().unwrap();
    common::fails(
        &["serve", "--bind", "0.0.0.0", "--out", s(dir.path())],
        2,
        &["--allow-remote"],
    );
}

#[test]
fn names_outside_the_session_and_the_folder_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // A folder of 20 copied images and one link to an image outside it.
    let images = dir.path().join("images");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(Path::new(MINI).join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in names.iter().take(20) {
        std::fs::copy(p, images.join(p.file_name().unwrap())).unwrap();
    }
    std::fs::copy(&names[20], outside.join("secret.jpeg")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.jpeg"), images.join("escape.jpeg")).unwrap();
    let server = start(&dir.path().join("out"), &["--images", s(&images)]);
    server.wait_idle(Duration::from_secs(120));
    let ok = first_candidate(&server);
    let (code, _) = server.call("GET", &format!("/api/image?name={ok}&size=large"), None);
    assert_eq!(code, 200);
    for bad in [
        "..%2Fsecret.jpeg",
        "../outside/secret.jpeg",
        "%2Fetc%2Fpasswd",
        "..",
        "images%2F..%2F..%2Fetc%2Fpasswd",
        "escape.jpeg",
        "nonexistent.jpeg",
        "",
    ] {
        let (code, body) = server.call("GET", &format!("/api/image?name={bad}"), None);
        assert!(
            code == 403 || code == 400 || code == 404,
            "{bad}: {code} {body}"
        );
        assert_ne!(code, 200, "{bad} was served");
    }
    let (code, _) = server.call("GET", "/../../etc/passwd", None);
    assert_ne!(code, 200);
    // A name the session does not hold cannot be labelled either.
    let (code, body) = server.call(
        "POST",
        "/api/label",
        Some(r#"{"name":"../etc/passwd","label":"anomaly"}"#),
    );
    assert_eq!(code, 400, "{body}");
}

#[test]
fn junk_at_every_route_gets_an_error_and_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    server.wait_idle(Duration::from_secs(120));
    let posts = [
        "/api/label",
        "/api/train",
        "/api/score",
        "/api/next",
        "/api/model/save",
        "/api/model/load",
        "/api/export",
    ];
    let bodies: [&[u8]; 9] = [
        b"",
        b"{",
        b"null",
        b"[]",
        b"\xff\xfe\x00garbage",
        br#"{"name":1,"label":[]}"#,
        br#"{"name":"x","label":"maybe"}"#,
        br#"{"iterations":-5}"#,
        br#"{"name":"../../evil"}"#,
    ];
    let token = format!("X-Token: {}\r\n", server.token);
    for route in posts {
        for body in bodies {
            let (code, text) = http(server.port, "POST", route, &token, body);
            assert!(
                (200..500).contains(&code),
                "{route} {body:?}: {code} {text}"
            );
            // Jobs that did start finish before the next request.
            if code == 202 {
                server.wait_idle(Duration::from_secs(120));
            }
        }
    }
    for route in ["/api/label", "/api/train", "/api/model/save"] {
        let (code, text) = http(server.port, "POST", route, &token, b"{not json");
        assert_eq!(code, 400, "{route}: {text}");
        assert!(text.contains("bad JSON"), "{text}");
    }
    let (code, _) = http(
        server.port,
        "POST",
        "/api/train",
        &token,
        br#"{"iterations":0}"#,
    );
    assert_eq!(code, 400);
    // A body past the limit is refused.
    let big = vec![b' '; 1 << 20];
    let (code, _) = http(server.port, "POST", "/api/label", &token, &big);
    assert_eq!(code, 413);
    for path in [
        "/api/candidates?sort=sideways",
        "/api/candidates?limit=-1",
        "/api/candidates?sort=strategy:nonsense",
        "/api/image",
        "/api/image?name=x&size=huge",
        "/api/nothing",
        "/%ff%fe",
    ] {
        let (code, text) = http(server.port, "GET", path, &token, b"");
        assert!((400..500).contains(&code), "{path}: {code} {text}");
    }
    for (method, path) in [
        ("DELETE", "/api/label"),
        ("PUT", "/"),
        ("BREW", "/api/status"),
    ] {
        let (code, _) = http(server.port, method, path, &token, b"");
        assert!((400..500).contains(&code), "{method} {path}: {code}");
    }
    // Raw garbage on the socket.
    for junk in [
        &b"\x00\x01\x02\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
    ] {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(junk);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
    }
    let (code, _) = server.call("GET", "/api/status", None);
    assert_eq!(code, 200, "the server stopped answering");
}

#[test]
fn answers_are_durable_the_last_tab_wins_and_exports_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    server.wait_idle(Duration::from_secs(120));
    let name = first_candidate(&server);
    // Two tabs disagree: the answer that reaches the server last wins.
    for label in ["anomaly", "normal"] {
        let (code, body) = server.call(
            "POST",
            "/api/label",
            Some(&format!(r#"{{"name":"{name}","label":"{label}"}}"#)),
        );
        assert_eq!(code, 200, "{body}");
        assert!(body.contains(r#""saved":true"#), "{body}");
    }
    let (code, body) = server.call(
        "POST",
        "/api/label",
        Some(&format!(r#"{{"name":"{name}","label":"remember"}}"#)),
    );
    assert_eq!(code, 200, "{body}");
    let (_, body) = server.call("GET", "/api/labels", None);
    assert!(
        body.contains(&format!(r#"{{"label":"normal","name":"{name}"}}"#)),
        "{body}"
    );
    // Train a little, with progress, and save, list and load the model.
    let (code, body) = server.call("POST", "/api/train", Some(r#"{"iterations":2}"#));
    assert_eq!(code, 202, "{body}");
    server.wait_idle(Duration::from_secs(300));
    let (code, _) = server.call("POST", "/api/model/save", Some(r#"{"name":"first"}"#));
    assert_eq!(code, 200);
    let (_, body) = server.call("GET", "/api/models", None);
    assert!(body.contains("first"), "{body}");
    let (code, body) = server.call("POST", "/api/model/load", Some(r#"{"name":"first"}"#));
    assert_eq!(code, 200, "{body}");
    let (code, body) = server.call("POST", "/api/export", None);
    assert_eq!(code, 200, "{body}");
    let session = dir.path().join("session");
    let labels = std::fs::read_to_string(session.join("labeled_data.csv")).unwrap();
    assert!(labels.contains(&format!("{name},normal")), "{labels}");
    let remembered = std::fs::read_to_string(session.join("remembered.csv")).unwrap();
    assert!(remembered.contains(&name), "{remembered}");
    // Sorting by every order works once scored.
    for sort in [
        "anomalous",
        "nominal",
        "mean",
        "median",
        "strategy:uncertainty",
    ] {
        let (code, body) = server.call("GET", &format!("/api/candidates?sort={sort}"), None);
        assert_eq!(code, 200, "{sort}: {body}");
    }
    // The answers survive a kill -9.
    server.kill();
    let server = start(dir.path(), &[]);
    server.wait_idle(Duration::from_secs(120));
    let (_, body) = server.call("GET", "/api/candidates?limit=5000", None);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let item = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} not listed after a restart"));
    assert_eq!(item["label"], "normal");
    assert_eq!(item["remembered"], true);
}

#[test]
fn band_switches_of_a_five_band_survey_change_the_false_colour() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("cutouts");
    std::fs::create_dir_all(&images).unwrap();
    for i in 0..6 {
        // Each band has its own pattern, so that every band shown changes the picture.
        common::write_fits(&images.join(format!("obj{i}.fits")), 5, 24, |b, y, x| {
            10.0 + ((x * (b + 1) + y * 3 + i) % 7) as f32 * (b + 1) as f32
        });
    }
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[data]\nchannels = 5\n").unwrap();
    let server = start(
        &dir.path().join("out"),
        &["--images", s(&images), "--config", s(&config)],
    );
    let (code, body) = server.call("GET", "/api/status", None);
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["bands"], 5);
    let name = first_candidate(&server);
    let image = |bands: &str| {
        let (code, png) = server.call(
            "GET",
            &format!("/api/image?size=large&name={name}{bands}"),
            None,
        );
        assert_eq!(code, 200, "{bands}: {png}");
        png
    };
    let all = image("");
    let (first, last) = (image("&bands=0"), image("&bands=4"));
    assert_ne!(first, all, "one band of five is not the whole picture");
    assert_ne!(first, last, "the first band and the last show differently");
    assert_eq!(
        image("&bands=0,1,2,3,4"),
        all,
        "every band listed is the default"
    );
    for bad in ["&bands=5", "&bands=x", "&bands=-1"] {
        let (code, text) = server.call(
            "GET",
            &format!("/api/image?size=large&name={name}{bad}"),
            None,
        );
        assert_eq!(code, 400, "{bad}: {text}");
    }
}
