#![allow(clippy::unwrap_used)]
//! The labelling page in a real browser: headless Chromium driven over WebDriver (Debian's
//! `chromium` and `chromium-driver`; the test skips with a message where they are absent). It
//! labels by keyboard, reloads, kills the server and restarts it, checks that a stretch changes
//! the displayed pixels and that the token and names are enforced, measures how long a gallery
//! of 100 candidates takes to be on screen (reported, never asserted), and saves screenshots
//! at 1280x800 and 1920x1080 to `target/tmp/screenshots`.

mod common;

use common::server::{Server, http, tiny};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Chromedriver, stopped when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_driver() -> (Driver, u16) {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (Driver(child), port)
}

async fn browser(driver_port: u16) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,800",
                     "--hide-scrollbars"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .unwrap()
}

/// Runs `script` (a function body) in the page.
async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap()
}

/// Waits until `script` returns true.
async fn until(c: &Client, script: &str, what: &str) {
    let start = Instant::now();
    loop {
        if js(c, script).await == Value::Bool(true) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Opens the page and waits for its gallery of thumbnails; returns the milliseconds from the
/// start of navigation until the first 100 thumbnails were loaded, and the tile count.
async fn open(c: &Client, server: &Server) -> (f64, u64) {
    c.goto(&server.url()).await.unwrap();
    until(
        c,
        "return window.galleryReadyMs !== undefined",
        "the gallery",
    )
    .await;
    let v = js(c, "return [window.galleryReadyMs, window.galleryTiles]").await;
    (v[0].as_f64().unwrap(), v[1].as_u64().unwrap())
}

/// The label each name's tile shows.
async fn shown_labels(c: &Client, names: &[(String, String)]) -> Vec<(String, String)> {
    let list: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    let v = c
        .execute(
            "return arguments[0].map(n => { const t = document.querySelector(\
             `.tile[data-name=\"${CSS.escape(n)}\"]`); return [n, t ? t.dataset.label : 'missing']; })",
            vec![json!(list)],
        )
        .await
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().into(), p[1].as_str().unwrap().into()))
        .collect()
}

async fn canvas_sum(c: &Client) -> f64 {
    js(
        c,
        "const v = document.getElementById('view'); \
         const d = v.getContext('2d').getImageData(0, 0, v.width, v.height).data; \
         let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i] + 3 * d[i+1] + 7 * d[i+2]; \
         return s;",
    )
    .await
    .as_f64()
    .unwrap()
}

fn start_server(out: &Path) -> Server {
    let args = tiny(out);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args);
    server.wait_idle(Duration::from_secs(300));
    server
}

#[test]
fn the_labelling_page_in_headless_chromium() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        println!(
            "skipped: the browser test needs {CHROMIUM} and {CHROMEDRIVER} \
             (apt-get install chromium chromium-driver)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_driver, driver_port) = start_driver();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = browser(driver_port).await;
        let mut server = start_server(dir.path());

        // The gallery: warm thumbnails, a fresh page load, 100 tiles on screen.
        let (ms, tiles) = open(&c, &server).await;
        let (ms2, _) = open(&c, &server).await;
        println!(
            "gallery: first 100 of {tiles} candidate thumbnails on screen {ms:.0} ms after \
             navigation ({ms2:.0} ms on a second load)"
        );
        assert!(tiles >= 100, "only {tiles} candidates");

        // Ten answers by keyboard, each confirmed saved.
        let keys = c.find(Locator::Id("gallery")).await.unwrap();
        let mut given = Vec::new();
        for i in 0..10 {
            let name = js(&c, "return state.items[state.current].name").await;
            let name = name.as_str().unwrap().to_string();
            let (key, label) = if i % 3 == 0 { ("a", "anomaly") } else { ("n", "normal") };
            keys.send_keys(key).await.unwrap();
            until(
                &c,
                &format!(
                    "const s = document.getElementById('save-state'); \
                     return s.className === 'saved' && s.textContent.includes('{name}')"
                ),
                "the answer to be saved",
            )
            .await;
            given.push((name, label.to_string()));
        }
        let counts = js(&c, "return document.getElementById('count-anomaly').textContent").await;
        println!("anomaly count shown after labelling: {counts}");
        // Moving with j/k, and ? for the keys.
        keys.send_keys("kj?").await.unwrap();
        until(&c, "return !document.getElementById('help').hidden", "the help").await;
        keys.send_keys("?").await.unwrap();
        until(&c, "return document.getElementById('help').hidden", "the help to close").await;

        c.refresh().await.unwrap();
        until(&c, "return window.galleryTiles > 0", "the gallery after a reload").await;
        assert_eq!(shown_labels(&c, &given).await, given, "after a reload");

        // kill -9 mid-session, restart on the same folder.
        server.kill();
        server = start_server(dir.path());
        open(&c, &server).await;
        assert_eq!(shown_labels(&c, &given).await, given, "after kill -9 and a restart");

        // A stretch changes the displayed pixels.
        until(&c, "return state.original !== null", "the large image").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = canvas_sum(&c).await;
        c.find(Locator::Id("stretch"))
            .await
            .unwrap()
            .select_by_value("asinh")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = canvas_sum(&c).await;
        println!("canvas pixel sum: {before} linear, {after} asinh");
        assert!(before > 0.0, "the large image is not drawn");
        assert!(before != after, "the asinh stretch left the pixels as they were");

        // Without the token, or with a path out of the folder: refused.
        let (code, _) = http(server.port, "GET", "/api/candidates", "", b"");
        assert_eq!(code, 401);
        let (code, _) = server.call("GET", "/api/image?name=..%2F..%2FREADME.md", None);
        assert!(code == 403 || code == 400, "traversal: {code}");
        let refused = js(
            &c,
            "return fetch('/api/image?name=' + encodeURIComponent('/etc/passwd')).then(r => r.status)",
        )
        .await;
        assert!(refused == json!(403) || refused == json!(400), "{refused}");

        // Screenshots, as a user sees the page.
        let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        c.find(Locator::Id("stretch"))
            .await
            .unwrap()
            .select_by_value("linear")
            .await
            .unwrap();
        for (w, h) in [(1280u32, 800u32), (1920, 1080)] {
            // The window's size includes the browser's frame: grow it until the page itself
            // is w x h.
            c.set_window_size(w, h).await.unwrap();
            let inner = js(&c, "return [window.innerWidth, window.innerHeight]").await;
            let (iw, ih) = (inner[0].as_u64().unwrap() as u32, inner[1].as_u64().unwrap() as u32);
            c.set_window_size(2 * w - iw.min(w), 2 * h - ih.min(h))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(600)).await;
            js(&c, "render(); return true").await;
            let png = c.screenshot().await.unwrap();
            let path = shots.join(format!("serve-{w}x{h}.png"));
            std::fs::write(&path, png).unwrap();
            println!("screenshot: {}", path.display());
        }
        c.close().await.unwrap();
    });
}
