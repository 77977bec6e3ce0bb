//! Checks every request passes before the token: the page is only reachable under its own
//! host name (a DNS-rebinding page names another), and a write must come from the page itself,
//! which a form or script on another site cannot fake: a browser sends their Origin, and
//! cannot send them with a JSON content type without asking first (and we never agree).

use super::state::Shared;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Refuses requests for another host (when serving on loopback), and writes that are not JSON
/// or come from another origin.
pub async fn same_origin(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if shared.local_only && !is_loopback_host(&host) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "this server answers only for 127.0.0.1, localhost or [::1]",
        );
    }
    let reads = [Method::GET, Method::HEAD, Method::OPTIONS];
    if !reads.contains(request.method()) {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "writes must be sent as Content-Type: application/json",
            );
        }
        let origin = headers
            .get(header::ORIGIN)
            .map(|o| o.to_str().unwrap_or("?"));
        if let Some(origin) = origin
            && !origin.eq_ignore_ascii_case(&format!("http://{host}"))
        {
            return refuse(
                StatusCode::FORBIDDEN,
                "writes must come from the page itself",
            );
        }
    }
    next.run(request).await
}

/// Whether a Host header names this machine's loopback (with or without a port).
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    matches!(name, "127.0.0.1" | "localhost" | "::1")
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (status, format!("{why}\n")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_are_this_machine() {
        for ok in [
            "127.0.0.1",
            "127.0.0.1:8080",
            "localhost:1",
            "[::1]:9",
            "[::1]",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "",
            "evil.example:8080",
            "127.0.0.1.evil.example",
            "[::2]:1",
            "10.0.0.1",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }
}
