//! Building successful answers: every response carries the same headers (JSON type, no
//! MIME sniffing, no caching unless the document is public). Errors become responses in
//! [`crate::web::error`], through these same builders.

use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;

/// A JSON response with the headers every answer carries: no MIME sniffing, no caching of
/// anything that may hold a token or personal data.
pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    // Serialising our own response types cannot fail; fall back to an empty object if it did.
    let body = serde_json::to_string(body).unwrap_or_else(|_| "{}".into());
    json_text_response(status, body, HeaderValue::from_static("no-store"))
}

/// A public JSON document that caches may keep for `max_age_secs` (the JWK Set): the same
/// headers as [`json_response`] but `Cache-Control: public`.
pub fn public_json_response(json: &str, max_age_secs: u64) -> Response<Body> {
    let cache = HeaderValue::from_str(&format!("public, max-age={max_age_secs}"))
        .unwrap_or_else(|_| HeaderValue::from_static("no-store"));
    json_text_response(StatusCode::OK, json.to_string(), cache)
}

fn json_text_response(status: StatusCode, body: String, cache: HeaderValue) -> Response<Body> {
    let mut response = Response::new(Body::Text(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, cache);
    response
}

/// `204 No Content` with the headers every answer carries.
pub fn no_content() -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
