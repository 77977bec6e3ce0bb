//! The access token: a random string in the printed URL, as Jupyter does, without which every
//! request is refused, because these pages run on shared login nodes where any user can reach
//! a port on 127.0.0.1.
//!
//! The page's first request carries it as `?token=`; the answer sets a cookie (HttpOnly,
//! SameSite=Strict) so that the page's own requests (scripts, images, the event stream) carry
//! it too. Scripts may also send it as an `X-Token` header.

use super::state::Shared;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// A fresh token: 24 bytes from the thread's CSPRNG (seeded by the OS), in hex.
pub fn new_token() -> String {
    let mut bytes = [0u8; 24];
    rand::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The cookie that carries the token; named for the port, since browsers share cookies
/// between the ports of one host.
pub fn cookie_name(port: u16) -> String {
    format!("anomalymatch_token_{port}")
}

/// Lets a request through when it carries the token (query, cookie or header); refuses it
/// with 401 otherwise. A token given in the query is set as a cookie on the answer.
pub async fn require(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let token = shared.token.as_str();
    let in_query = request
        .uri()
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|pair| pair.strip_prefix("token="))
        .any(|t| same(t, token));
    let cookie = cookie_name(shared.port);
    let in_cookie = request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(cookie.as_str())?.strip_prefix('='))
        .any(|t| same(t, token));
    let in_header = request
        .headers()
        .get("x-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| same(t, token));
    if !(in_query || in_cookie || in_header) {
        return (
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: open the URL that `anomalymatch serve` printed\n",
        )
            .into_response();
    }
    let mut response = next.run(request).await;
    if in_query && !in_cookie {
        let value = format!("{cookie}={token}; Path=/; HttpOnly; SameSite=Strict");
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// Compares in time independent of where the strings first differ, so the token cannot be
/// guessed a character at a time from response times.
fn same(given: &str, token: &str) -> bool {
    let (a, b) = (given.as_bytes(), token.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_distinct_and_compared_exactly() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 48);
        assert_ne!(a, b);
        assert!(same(&a, &a));
        assert!(!same(&a, &b));
        assert!(!same(&a[..47], &a));
        assert!(!same("", &a));
    }
}
