//! The JSON API the page calls. Every body is parsed here (bad JSON is a 400 naming what is
//! wrong), every name is checked against the session before use, and work that may wait for
//! the session's lock or the disk runs off the async threads.

use super::images::{ALL_BANDS, Size};
use super::jobs::{self, Busy, Job};
use super::state::{Item, Shared};
use anomalymatch_active::journal::Event;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::sync::Arc;

/// Query strategies offered as sort orders (any `active.query` spelling works in the API).
pub const STRATEGIES: [&str; 6] = [
    "uncertainty",
    "margin",
    "entropy",
    "diverse",
    "random",
    "top",
];
/// Most candidates one listing returns.
const MAX_LIMIT: usize = 5000;
/// Most iterations one training request may ask for.
const MAX_ITERATIONS: usize = 100_000;

/// An error answer: a status and a one-line message, sent as `{"error": message}`.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

fn failed(message: impl ToString) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, message.to_string())
}

fn busy(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::CONFLICT, message.into())
}

/// Parses a JSON body, or a 400 saying what is wrong with it.
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad(format!("bad JSON: {e}")))
}

/// Runs `f` on a blocking thread (it may wait for a training step or an fsync).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| failed(format!("the request's worker stopped: {e}")))?
}

/// `GET /api/status`: cycle, iteration, counts, mode and the last job's progress.
pub async fn status(State(shared): State<Arc<Shared>>) -> ApiResult {
    let s = shared.clone();
    let body = blocking(move || {
        let served = s.served();
        Ok(json!({
            "cycle": served.session.state().cycle,
            "iteration": served.session.trainer().iteration(),
            "window": served.session.window().names.len(),
            "counts": served.counts(),
            "mode": if served.from_file.is_some() { "file" } else { "pool" },
            "query": s.query,
            "strategies": STRATEGIES,
            "bands": s.display.bands(),
        }))
    })
    .await?;
    let progress = shared.progress.borrow().clone();
    let busy = shared.busy.load(std::sync::atomic::Ordering::Acquire);
    let mut body = body;
    body["progress"] = json!(progress);
    body["busy"] = json!(busy);
    Ok(Json(body).into_response())
}

/// Query of `GET /api/candidates`.
#[derive(Debug, Deserialize)]
pub struct CandidatesQuery {
    /// `anomalous` (default), `nominal`, `mean`, `median`, or `strategy:NAME`.
    sort: Option<String>,
    /// Most candidates returned (default 500).
    limit: Option<usize>,
}

/// `GET /api/candidates`: the current candidates with scores and labels, sorted.
pub async fn candidates(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<CandidatesQuery>,
) -> ApiResult {
    let limit = q.limit.unwrap_or(500).min(MAX_LIMIT);
    let sort = q.sort.unwrap_or_else(|| "anomalous".into());
    let items = blocking(move || sorted(&shared, &sort)).await?;
    let total = items.len();
    let items: Vec<Item> = items.into_iter().take(limit).collect();
    Ok(Json(json!({ "total": total, "items": items })).into_response())
}

fn sorted(shared: &Shared, sort: &str) -> Result<Vec<Item>, ApiError> {
    let served = shared.served();
    let mut items = served.items();
    let mut scored: Vec<f32> = items.iter().filter_map(|i| i.score).collect();
    scored.sort_by(f32::total_cmp);
    let by_distance = |items: &mut Vec<Item>, centre: f32| {
        items.sort_by(|a, b| {
            let d = |i: &Item| i.score.map_or(f32::INFINITY, |s| (s - centre).abs());
            d(a).total_cmp(&d(b))
        })
    };
    match sort {
        "anomalous" => items.sort_by(|a, b| {
            b.score
                .unwrap_or(f32::NEG_INFINITY)
                .total_cmp(&a.score.unwrap_or(f32::NEG_INFINITY))
        }),
        "nominal" => items.sort_by(|a, b| {
            a.score
                .unwrap_or(f32::INFINITY)
                .total_cmp(&b.score.unwrap_or(f32::INFINITY))
        }),
        "mean" => {
            let mean = scored.iter().sum::<f32>() / scored.len().max(1) as f32;
            by_distance(&mut items, mean);
        }
        "median" => {
            let median = scored.get(scored.len() / 2).copied().unwrap_or(0.5);
            by_distance(&mut items, median);
        }
        other => {
            let name = other.strip_prefix("strategy:").ok_or_else(|| {
                bad(format!(
                    "unknown sort {other:?}: anomalous, nominal, mean, median or strategy:NAME"
                ))
            })?;
            let strategy = anomalymatch_active::by_name(name).map_err(|e| bad(e.to_string()))?;
            let window = &served.session.window().names;
            let scores: Option<Vec<f32>> = window
                .iter()
                .map(|n| served.scores.get(n).copied())
                .collect();
            let scores =
                scores.ok_or_else(|| busy("the pool is not scored yet: score it first"))?;
            let (picked, _) = served
                .session
                .pick(strategy.as_ref(), &scores, window.len())
                .map_err(|e| bad(e.to_string()))?;
            let rank: std::collections::HashMap<&str, usize> = picked
                .iter()
                .enumerate()
                .map(|(i, n)| (n.as_str(), i))
                .collect();
            items.sort_by_key(|i| rank.get(i.name.as_str()).copied().unwrap_or(usize::MAX));
        }
    }
    Ok(items)
}

/// Query of `GET /api/image`.
#[derive(Debug, Deserialize)]
pub struct ImageQuery {
    /// Image name, as the candidates list it.
    name: String,
    /// `thumb` (default) or `large`.
    size: Option<String>,
    /// Bands shown in the large image, as `0,2,4` (default: all).
    bands: Option<String>,
}

/// `GET /api/image`: the display PNG of one of the session's images.
pub async fn image(State(shared): State<Arc<Shared>>, Query(q): Query<ImageQuery>) -> ApiResult {
    let size = match q.size.as_deref() {
        None | Some("thumb") => Size::Thumb,
        Some("large") => Size::Large,
        Some(other) => return Err(bad(format!("size {other:?}: thumb or large"))),
    };
    let bands = match q.bands.as_deref() {
        None => ALL_BANDS,
        Some(list) => shared.display.parse_bands(list).map_err(bad)?,
    };
    let png = blocking(move || {
        let path = {
            let served = shared.served();
            if !served.knows(&q.name) {
                return Err(ApiError(
                    StatusCode::FORBIDDEN,
                    format!("{:?}: not an image of this session", q.name),
                ));
            }
            served.session.path_of(&q.name)
        };
        shared
            .display
            .check_name(&q.name, path)
            .map_err(|e| ApiError(StatusCode::FORBIDDEN, e))?;
        shared
            .display
            .png(&q.name, size, bands)
            .map_err(|e| ApiError(StatusCode::NOT_FOUND, e))
    })
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        png.as_ref().clone(),
    )
        .into_response())
}

/// Body of `POST /api/label`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelRequest {
    name: String,
    /// `anomaly`, `normal`, `skip` or `remember`.
    label: String,
}

/// `POST /api/label`: journals the answer (synced to disk) and only then says it is saved.
pub async fn label(State(shared): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    let r: LabelRequest = parse(&body)?;
    let event = match r.label.as_str() {
        "anomaly" => Some(Event::Anomaly),
        "normal" => Some(Event::Normal),
        "remember" => Some(Event::Remember),
        "skip" => None,
        other => {
            return Err(bad(format!(
                "label {other:?}: anomaly, normal, skip or remember"
            )));
        }
    };
    let body = blocking(move || {
        let mut served = shared.served();
        if !served.knows(&r.name) {
            return Err(bad(format!("{:?}: not an image of this session", r.name)));
        }
        if let Some(e) = event {
            served.session.answer(&r.name, e).map_err(failed)?;
        }
        Ok(json!({
            "saved": event.is_some(),
            "name": r.name,
            "label": r.label,
            "counts": served.counts(),
        }))
    })
    .await?;
    Ok(Json(body).into_response())
}

/// `GET /api/labels`: every label and the remember list, with counts.
pub async fn labels(State(shared): State<Arc<Shared>>) -> ApiResult {
    let body = blocking(move || {
        let served = shared.served();
        let labels: Vec<Value> = served
            .session
            .labels()
            .iter()
            .filter(|(_, l)| l.is_known())
            .map(|(n, l)| json!({ "name": n, "label": l.as_str() }))
            .collect();
        let remembered: Vec<&str> = served
            .session
            .remembered()
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        Ok(json!({ "counts": served.counts(), "labels": labels, "remembered": remembered }))
    })
    .await?;
    Ok(Json(body).into_response())
}

/// Body of `POST /api/train`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainRequest {
    iterations: usize,
}

fn start(shared: &Arc<Shared>, job: Job) -> ApiResult {
    jobs::start(shared, job).map_err(busy)?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "started": true }))).into_response())
}

/// `POST /api/train`: trains N iterations in the background, then scores.
pub async fn train(State(shared): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    let r: TrainRequest = parse(&body)?;
    if !(1..=MAX_ITERATIONS).contains(&r.iterations) {
        return Err(bad(format!(
            "iterations = {}: between 1 and {MAX_ITERATIONS}",
            r.iterations
        )));
    }
    start(&shared, Job::Train(r.iterations))
}

/// `POST /api/score`: scores the window in the background.
pub async fn score(State(shared): State<Arc<Shared>>) -> ApiResult {
    start(&shared, Job::Score)
}

/// `POST /api/next`: moves to the next window of the pool and scores it.
pub async fn next(State(shared): State<Arc<Shared>>) -> ApiResult {
    start(&shared, Job::Next)
}

/// `GET /api/events`: the jobs' progress as server-sent events, one JSON object each.
pub async fn events(
    State(shared): State<Arc<Shared>>,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, std::convert::Infallible>>> {
    let rx = shared.progress.subscribe();
    let stream = futures_util::stream::unfold((rx, true), |(mut rx, first)| async move {
        if !first && rx.changed().await.is_err() {
            return None;
        }
        let p = rx.borrow_and_update().clone();
        let event = SseEvent::default().json_data(p).unwrap_or_default();
        Some((Ok(event), (rx, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Body of the model requests.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelRequest {
    name: String,
}

/// The file of a saved model: letters, digits, `-` and `_` only, under `session/models`.
fn model_path(shared: &Shared, name: &str) -> Result<std::path::PathBuf, ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(bad(format!(
            "model name {name:?}: 1 to 64 letters, digits, - or _"
        )));
    }
    Ok(shared
        .dir
        .join("models")
        .join(format!("{name}.safetensors")))
}

/// `GET /api/models`: the saved models' names.
pub async fn models(State(shared): State<Arc<Shared>>) -> ApiResult {
    let dir = shared.dir.join("models");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".safetensors")
                .map(String::from)
        })
        .collect();
    names.sort();
    Ok(Json(json!({ "models": names })).into_response())
}

/// `POST /api/model/save`: saves the training state as a named model, atomically.
pub async fn save_model(State(shared): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    let r: ModelRequest = parse(&body)?;
    let path = model_path(&shared, &r.name)?;
    let _busy = Busy::take(&shared).ok_or_else(|| busy("a job is running; save after it"))?;
    let s = shared.clone();
    blocking(move || {
        std::fs::create_dir_all(path.parent().unwrap_or(&s.dir)).map_err(failed)?;
        s.served().session.save_model(&path).map_err(failed)
    })
    .await?;
    Ok(Json(json!({ "saved": r.name })).into_response())
}

/// `POST /api/model/load`: restores a named model (refused if trained on other pixels).
pub async fn load_model(State(shared): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    let r: ModelRequest = parse(&body)?;
    let path = model_path(&shared, &r.name)?;
    if !path.is_file() {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no saved model {:?}", r.name),
        ));
    }
    let _busy = Busy::take(&shared).ok_or_else(|| busy("a job is running; load after it"))?;
    let s = shared.clone();
    blocking(move || {
        s.served()
            .session
            .load_model(&path)
            .map_err(|e| bad(e.to_string()))
    })
    .await?;
    Ok(Json(json!({ "loaded": r.name })).into_response())
}

/// `POST /api/export`: writes the labels (merged over the user's file) and the remember list
/// into the session folder, each atomically.
pub async fn export(State(shared): State<Arc<Shared>>) -> ApiResult {
    let body = blocking(move || {
        let labels = shared.dir.join("labeled_data.csv");
        let remembered = shared.dir.join("remembered.csv");
        let served = shared.served();
        let merge = served
            .session
            .export_labels(shared.user_labels.as_deref(), &labels)
            .map_err(failed)?;
        served
            .session
            .export_remembered(&remembered)
            .map_err(failed)?;
        Ok(json!({
            "labels": labels,
            "remembered": remembered,
            "added": merge.added,
            "changed": merge.changed,
        }))
    })
    .await?;
    Ok(Json(body).into_response())
}

#[cfg(test)]
mod tests {
    use super::STRATEGIES;

    #[test]
    fn every_offered_sort_order_is_a_strategy_the_session_builds() {
        for name in STRATEGIES {
            assert!(
                anomalymatch_active::strategy::STRATEGY_NAMES.contains(&name),
                "{name} is offered by the page but is not a strategy name"
            );
            assert!(anomalymatch_active::by_name(name).is_ok(), "{name}");
        }
    }
}
