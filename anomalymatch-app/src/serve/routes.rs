//! The router: the page, the API, and the layers every request passes (host and origin, the
//! token, the body size limit).

use super::state::Shared;
use super::{api, assets, guard, token};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use std::sync::Arc;

/// Largest request body accepted: the API's bodies are a few dozen bytes.
pub const BODY_LIMIT: usize = 16 * 1024;

/// Every route, behind the token check.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/app.js", get(assets::script))
        .route("/app.css", get(assets::style))
        .route("/api/status", get(api::status))
        .route("/api/candidates", get(api::candidates))
        .route("/api/image", get(api::image))
        .route("/api/label", post(api::label))
        .route("/api/labels", get(api::labels))
        .route("/api/train", post(api::train))
        .route("/api/score", post(api::score))
        .route("/api/next", post(api::next))
        .route("/api/events", get(api::events))
        .route("/api/models", get(api::models))
        .route("/api/model/save", post(api::save_model))
        .route("/api/model/load", post(api::load_model))
        .route("/api/export", post(api::export))
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such page\n") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            token::require,
        ))
        // Outermost: a request for another host or a cross-site write is refused before the
        // token is even looked at.
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            guard::same_origin,
        ))
        .with_state(shared)
}
