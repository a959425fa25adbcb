//! The one error type of the HTTP functions and the one place it becomes a response.
//!
//! Answers are RFC 9457 `application/problem+json`. Client mistakes are 4xx with a short,
//! fixed explanation (never library or SDK text); internal errors are logged with their
//! cause chain and answered with an opaque 500.

use crate::web::response::json_response;
use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;

/// Largest request body accepted (bigger is 413). Our bodies are a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 8 * 1024;

/// Everything an HTTP handler can answer other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; the text says what to fix and never echoes input.
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("payload too large")]
    PayloadTooLarge,
    /// Unknown user, wrong password and disabled user all become this one answer.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// No usable caller identity reached the function (the authorizer did not run), or the
    /// caller's token was revoked since API Gateway cached its Allow.
    #[error("unauthorized")]
    Unauthorized,
    /// The access token is past its `exp` (API Gateway's cached Allow outlived it).
    #[error("access token expired")]
    TokenExpired,
    /// The session (refresh-token family) is past its absolute lifetime.
    #[error("session expired")]
    SessionExpired,
    /// `POST /password`: the current password given is wrong.
    #[error("wrong current password")]
    WrongPassword,
    /// The second step of a sign-in, or turning the second factor off: the code (or
    /// recovery code) is wrong, already used, or the password with it is wrong.
    #[error("invalid second-factor code")]
    InvalidCode,
    /// The second step's challenge is not ours, expired, already used, or its user changed
    /// since the first step: sign in again.
    #[error("invalid sign-in challenge")]
    InvalidChallenge,
    #[error("forbidden")]
    Forbidden,
    /// The caller's role must sign in with a second factor and this token was issued
    /// without one: only enrolling and logging out are open to it.
    #[error("second factor required")]
    SecondFactorRequired,
    #[error("not found")]
    NotFound,
    /// A route this deployment does not offer as configured, with the reason.
    #[error("not offered: {0}")]
    NotOffered(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("conflict: {0}")]
    Conflict(String),
    /// Login is locked for this username after repeated failures; answered the same for
    /// every username, known or not.
    #[error("too many failed logins")]
    TooManyAttempts { retry_after_secs: u64 },
    /// This counter has spent the checked codes it may without a success: only a recovery
    /// code (or an admin's reset of the second factor) goes on.
    #[error("too many wrong codes")]
    CodesExhausted { retry_after_secs: u64 },
    /// The refresh token is unknown, expired, already used or revoked: log in again.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// A dependency (DynamoDB) is throttled or unavailable: 503 with `Retry-After`, so that
    /// clients can tell "try again" from "broken". The source is logged, never answered.
    #[error("service unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A fault on our side; the source is logged, never answered.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What a 503 asks clients to wait before retrying: DynamoDB throttling and brief outages
/// usually clear within seconds, and a short, fixed wait spreads retries out.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

impl ApiError {
    pub fn internal(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        ApiError::Internal(err.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::InvalidCredentials
            | ApiError::Unauthorized
            | ApiError::TokenExpired
            | ApiError::SessionExpired
            | ApiError::InvalidCode
            | ApiError::InvalidChallenge => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::WrongPassword | ApiError::SecondFactorRequired => {
                StatusCode::FORBIDDEN
            }
            ApiError::NotFound | ApiError::NotOffered(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooManyAttempts { .. } | ApiError::CodesExhausted { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::InvalidRefreshToken => StatusCode::UNAUTHORIZED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn title_and_detail(&self) -> (&'static str, String) {
        match self {
            ApiError::BadRequest(detail) => ("Bad Request", detail.clone()),
            ApiError::UnsupportedMediaType => (
                "Unsupported Media Type",
                "the body must be JSON sent with Content-Type: application/json".into(),
            ),
            ApiError::PayloadTooLarge => (
                "Payload Too Large",
                format!("the body must be at most {} bytes", MAX_BODY_BYTES),
            ),
            ApiError::InvalidCredentials => ("Unauthorized", "Invalid username or password".into()),
            ApiError::Unauthorized => ("Unauthorized", "a valid access token is required".into()),
            ApiError::TokenExpired => (
                "Unauthorized",
                "Session expired. Please log in again (or refresh the access token).".into(),
            ),
            ApiError::SessionExpired => ("Unauthorized", "session expired; log in again".into()),
            ApiError::WrongPassword => ("Forbidden", "the current password is wrong".into()),
            ApiError::InvalidCode => (
                "Unauthorized",
                "the code is wrong or was already used".into(),
            ),
            ApiError::InvalidChallenge => (
                "Unauthorized",
                "the sign-in challenge is invalid, used or expired; sign in again".into(),
            ),
            ApiError::Forbidden => (
                "Forbidden",
                "you are not allowed to access this resource".into(),
            ),
            ApiError::SecondFactorRequired => (
                "Forbidden",
                "your role requires a second factor: turn on two-step sign-in (POST /mfa/totp), then sign in again".into(),
            ),
            ApiError::NotFound => ("Not Found", "no such resource".into()),
            ApiError::NotOffered(detail) => ("Not Found", detail.clone()),
            ApiError::MethodNotAllowed => (
                "Method Not Allowed",
                "this method is not supported on this resource".into(),
            ),
            ApiError::Conflict(detail) => ("Conflict", detail.clone()),
            ApiError::TooManyAttempts { .. } => (
                "Too Many Requests",
                "too many failed logins; try again after Retry-After seconds".into(),
            ),
            ApiError::CodesExhausted { .. } => (
                "Too Many Requests",
                "too many wrong codes: sign in with a recovery code, from a device you signed in from before, or ask an admin to reset your second factor".into(),
            ),
            ApiError::InvalidRefreshToken => (
                "Unauthorized",
                "the refresh token is invalid or expired; log in again".into(),
            ),
            ApiError::Unavailable(_) => (
                "Service Unavailable",
                "the service is briefly unavailable; try again after Retry-After seconds".into(),
            ),
            ApiError::Internal(_) => (
                "Internal Server Error",
                "the request could not be completed".into(),
            ),
        }
    }

    /// The HTTP answer. Internal errors are logged here, with their cause chain, once.
    pub fn into_response(self) -> Response<Body> {
        match &self {
            ApiError::Internal(source) => {
                tracing::error!(error = %error_chain(source.as_ref()), "internal error");
            }
            ApiError::Unavailable(source) => {
                tracing::warn!(error = %error_chain(source.as_ref()), "dependency unavailable");
            }
            _ => {}
        }
        let status = self.status();
        let (title, detail) = self.title_and_detail();
        let problem = Problem {
            type_: "about:blank",
            title,
            status: status.as_u16(),
            detail,
        };
        let mut response = json_response(status, &problem);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        let retry_after = match self {
            ApiError::TooManyAttempts { retry_after_secs }
            | ApiError::CodesExhausted { retry_after_secs } => Some(retry_after_secs.max(1)),
            ApiError::Unavailable(_) => Some(UNAVAILABLE_RETRY_AFTER_SECS),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6750 §3: tell the client which scheme to use.
            let challenge = match self {
                ApiError::Unauthorized
                | ApiError::TokenExpired
                | ApiError::SessionExpired
                | ApiError::InvalidRefreshToken => "Bearer error=\"invalid_token\"",
                _ => "Bearer",
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// RFC 9457 problem details.
#[derive(Debug, Serialize)]
struct Problem {
    #[serde(rename = "type")]
    type_: &'static str,
    title: &'static str,
    status: u16,
    detail: String,
}

/// "outer: inner: root" for logs.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_json(response: &Response<Body>) -> serde_json::Value {
        match response.body() {
            Body::Text(text) => serde_json::from_str(text).unwrap(),
            other => panic!("unexpected body {other:?}"),
        }
    }

    #[test]
    fn every_error_is_problem_json_with_its_status() {
        let cases = [
            (ApiError::BadRequest("limit must be 1..=100".into()), 400),
            (ApiError::UnsupportedMediaType, 415),
            (ApiError::PayloadTooLarge, 413),
            (ApiError::InvalidCredentials, 401),
            (ApiError::Unauthorized, 401),
            (ApiError::Forbidden, 403),
            (ApiError::SecondFactorRequired, 403),
            (
                ApiError::CodesExhausted {
                    retry_after_secs: 60,
                },
                429,
            ),
            (ApiError::NotFound, 404),
            (ApiError::MethodNotAllowed, 405),
            (ApiError::Conflict("username taken".into()), 409),
            (
                ApiError::TooManyAttempts {
                    retry_after_secs: 30,
                },
                429,
            ),
            (ApiError::InvalidRefreshToken, 401),
            (ApiError::TokenExpired, 401),
            (ApiError::SessionExpired, 401),
            (ApiError::WrongPassword, 403),
            (ApiError::Unavailable("throttled".into()), 503),
            (ApiError::internal("boom"), 500),
        ];
        for (error, status) in cases {
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "application/problem+json"
            );
            assert_eq!(
                response.headers()[header::X_CONTENT_TYPE_OPTIONS],
                "nosniff"
            );
            let body = body_json(&response);
            assert_eq!(body["status"], status);
            assert!(body["title"].is_string() && body["detail"].is_string());
        }
    }

    #[test]
    fn internal_errors_answer_without_their_cause() {
        let response = ApiError::internal("dynamodb exploded at table users").into_response();
        let body = body_json(&response).to_string();
        assert!(!body.contains("dynamodb"));
    }

    #[test]
    fn an_unavailable_store_is_a_503_that_says_when_to_retry_and_not_why() {
        let response =
            ApiError::Unavailable("ProvisionedThroughputExceededException on users".into())
                .into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(
            response.headers()[header::RETRY_AFTER],
            UNAVAILABLE_RETRY_AFTER_SECS.to_string().as_str()
        );
        assert!(!body_json(&response).to_string().contains("Provisioned"));
    }

    #[test]
    fn a_lockout_says_when_to_retry() {
        let response = ApiError::TooManyAttempts {
            retry_after_secs: 120,
        }
        .into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "120");
    }

    #[test]
    fn unauthorized_answers_carry_a_bearer_challenge() {
        let response = ApiError::InvalidCredentials.into_response();
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }

    #[test]
    fn a_revoked_or_expired_token_is_named_invalid_in_the_challenge() {
        for error in [
            ApiError::Unauthorized,
            ApiError::TokenExpired,
            ApiError::SessionExpired,
        ] {
            let response = error.into_response();
            assert_eq!(
                response.headers()[header::WWW_AUTHENTICATE],
                "Bearer error=\"invalid_token\""
            );
        }
    }
}
