//! A served session built once per process, and one request sent through its router.

use anomalymatch_jobs::{Override, load};
use anomalymatch_app::serve::{routes, state::Shared};
use axum::body::Body;
use axum::http::{Method, Request, header};
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

struct Served {
    runtime: tokio::runtime::Runtime,
    shared: Arc<Shared>,
}

/// Eight gz1-mini images (two labelled) in the scratch folder, served at 32 pixels by a model
/// without pretrained weights; a training job is one step of a few images.
fn served() -> &'static Served {
    static SERVED: OnceLock<Served> = OnceLock::new();
    SERVED.get_or_init(|| {
        let mini = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/gz1-mini");
        let images = crate::folder("images");
        let mut names: Vec<_> = std::fs::read_dir(mini.join("images"))
            .expect("data/gz1-mini/images")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for name in names.iter().take(8) {
            std::fs::copy(mini.join("images").join(name), images.join(name)).expect("copy");
        }
        let first = |i: usize| names[i].to_string_lossy().into_owned();
        let labels = crate::file_with(
            "labels.csv",
            format!("filename,label\n{},normal\n{},anomaly\n", first(0), first(1)).as_bytes(),
        );
        let out = crate::folder("out");
        let set = [
            format!("data.images={:?}", images.display().to_string()),
            format!("data.labels={:?}", labels.display().to_string()),
            format!("output.dir={:?}", out.display().to_string()),
            "data.size=32".into(),
            "model.pretrained=false".into(),
            "train.iterations=1".into(),
            "train.batch_size=2".into(),
            "train.uratio=1".into(),
        ];
        let overrides: Vec<Override> = set
            .iter()
            .map(|s| Override::parse_set(s).expect("override"))
            .collect();
        let config = load(None, &overrides).expect("config");
        let shared = anomalymatch_app::commands::serve::open(&config, true, None, 1, true).expect("open");
        shared.served().session.load_window().expect("window");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Served { runtime, shared }
    })
}

/// Sends the request `data` describes and reads the whole answer (an event stream's first
/// event only, since it never ends).
pub fn request(data: &[u8]) {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let served = served();
    let method = match head & 3 {
        0 => Method::GET,
        1 => Method::POST,
        2 => Method::PUT,
        _ => Method::DELETE,
    };
    let (path, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let mut builder = Request::builder()
        .method(method)
        .uri(String::from_utf8_lossy(path).as_ref())
        .header("host", "127.0.0.1");
    if head & 4 != 0 {
        builder = builder.header("x-token", served.shared.token.as_str());
    }
    if head & 8 != 0 {
        builder = builder.header("content-type", "application/json");
    }
    let Ok(request) = builder.body(Body::from(body.to_vec())) else {
        return; // not a URI: hyper would refuse it before any handler
    };
    let router = routes::router(served.shared.clone());
    served.runtime.block_on(async {
        let Ok(response) = router.oneshot(request).await;
        let streaming = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let body = response.into_body();
        if streaming {
            let mut stream = body.into_data_stream();
            let _ = futures_util::StreamExt::next(&mut stream).await;
        } else {
            let _ = axum::body::to_bytes(body, usize::MAX).await;
        }
    });
}
