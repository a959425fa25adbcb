//! What the HTTP functions share: reading a request the same way everywhere.
//!
//! Functions run behind a REST API (payload v1). The route is taken from
//! `requestContext.resourcePath` (e.g. `/users/{id}`), which API Gateway fills from
//! template.yaml, so the stage prefix in the path never matters; when that is missing
//! (a hand-written event), the path itself is matched against [`crate::policy::ROUTES`].

use crate::ApiError;
use crate::policy::{AuthorizerContext, ROUTES, Route};
use crate::user::Role;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt};
use serde::de::DeserializeOwned;

pub use crate::error::MAX_BODY_BYTES;

/// Parses a JSON body: `Content-Type: application/json` (415 otherwise), at most
/// [`MAX_BODY_BYTES`] (413), UTF-8 JSON that fits `T` exactly (400, saying `expected`,
/// never the parser's text).
pub fn json_body<T: DeserializeOwned>(request: &Request, expected: &str) -> Result<T, ApiError> {
    let is_json = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let bytes: &[u8] = match request.body() {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    let shape_error = || ApiError::BadRequest(format!("the body must be {expected}"));
    if std::str::from_utf8(bytes).is_err() {
        return Err(ApiError::BadRequest("the body must be UTF-8".into()));
    }
    // serde's derived structs also accept a JSON array of the fields in order; only an
    // object is a valid body. (Checked on the text so duplicate keys still fail in serde.)
    let is_object = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|first| *first == b'{');
    if !is_object {
        return Err(shape_error());
    }
    serde_json::from_slice(bytes).map_err(|_| shape_error())
}

/// The route this request was sent to, and its `{id}` path parameter if it has one.
pub fn route_of(request: &Request) -> Option<(&'static Route, Option<String>)> {
    let method = request.method().as_str();
    let resource_path = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(context)) => context.resource_path.clone(),
        _ => None,
    };
    match resource_path {
        Some(resource_path) => {
            let route = ROUTES
                .iter()
                .find(|route| route.method == method && route.path == resource_path)?;
            let id = request
                .path_parameters_ref()
                .and_then(|params| params.first("id"))
                .map(str::to_owned);
            Some((route, id))
        }
        None => {
            let (route, params) = crate::policy::match_route(method, request.raw_http_path())?;
            Some((
                route,
                params
                    .into_iter()
                    .find(|(name, _)| *name == "id")
                    .map(|(_, v)| v),
            ))
        }
    }
}

/// Whether some route has this path with another method (405 rather than 404).
pub fn path_exists_with_other_method(request: &Request) -> bool {
    ROUTES
        .iter()
        .any(|route| crate::policy::match_path(route.path, request.raw_http_path()).is_some())
}

/// A query-string parameter; an empty value counts as given (and is then invalid).
pub fn query_param<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request
        .query_string_parameters_ref()
        .and_then(|params| params.first(name))
}

/// The authenticated caller, as the authorizer described it in `requestContext.authorizer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub sub: String,
    pub role: Role,
    pub username: String,
    pub jti: String,
    /// The session (refresh-token family) of the access token.
    pub sid: String,
    /// The access token's `exp`.
    pub exp: u64,
    /// The access token's `ver` (the user's token version when its session began).
    pub ver: u64,
}

impl Caller {
    /// Reads the authorizer context. Only `requestContext.authorizer` is trusted, never a
    /// client header; a missing or unreadable context is 401. The context may be as old as
    /// API Gateway's cache entry: routes act only on a caller that
    /// [`crate::revocation::current_caller`] has checked against the store.
    pub fn from_request(request: &Request) -> Result<Caller, ApiError> {
        let Some(RequestContext::ApiGatewayV1(context)) = request.request_context_ref() else {
            return Err(ApiError::Unauthorized);
        };
        let fields = &context.authorizer.fields;
        let field = |name: &str| {
            fields
                .get(name)
                .and_then(|value| value.as_str())
                .map(str::to_owned)
        };
        let context = AuthorizerContext {
            sub: field("sub").ok_or(ApiError::Unauthorized)?,
            role: field("role").ok_or(ApiError::Unauthorized)?,
            username: field("username").ok_or(ApiError::Unauthorized)?,
            jti: field("jti").ok_or(ApiError::Unauthorized)?,
            sid: field("sid").ok_or(ApiError::Unauthorized)?,
            exp: field("exp").ok_or(ApiError::Unauthorized)?,
            ver: field("ver").ok_or(ApiError::Unauthorized)?,
        };
        Caller::from_context(&context).ok_or(ApiError::Unauthorized)
    }

    pub fn from_context(context: &AuthorizerContext) -> Option<Caller> {
        Some(Caller {
            sub: context.sub.clone(),
            role: Role::parse(&context.role)?,
            username: context.username.clone(),
            jti: context.jti.clone(),
            sid: context.sid.clone(),
            exp: context.exp.parse().ok()?,
            ver: context.ver.parse().ok()?,
        })
    }

    /// This caller as the author of a write: the write lands only while the caller still
    /// stands as its token says ([`crate::store::Actor::Caller`]), so a caller revoked
    /// between its re-check and its write acts on nothing.
    pub fn actor(&self) -> crate::store::Actor<'_> {
        crate::store::Actor::Caller(self.standing())
    }

    pub fn standing(&self) -> crate::store::StandingCaller<'_> {
        crate::store::StandingCaller {
            id: &self.sub,
            role: self.role,
            token_version: self.ver,
            jti: &self.jti,
            sid: &self.sid,
        }
    }
}

/// The request id and client address API Gateway gave this request, for audit events.
pub fn request_meta(request: &Request) -> crate::audit::RequestMeta {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(context)) => crate::audit::RequestMeta {
            request_id: context.request_id.clone().unwrap_or_default(),
            source_ip: context.identity.source_ip.clone().unwrap_or_default(),
        },
        _ => crate::audit::RequestMeta::default(),
    }
}

/// The one shape of an HTTP function's answer: `route` runs inside the request's audit
/// context; an error becomes its problem+json response here, never `Err` (which API
/// Gateway would turn into a 502); CORS is applied to every answer, errors included.
pub async fn answer<F>(
    request: Request,
    cors: &Cors,
    route: impl FnOnce(Request) -> F,
) -> Result<lambda_http::Response<Body>, std::convert::Infallible>
where
    F: std::future::Future<Output = Result<lambda_http::Response<Body>, ApiError>>,
{
    let meta = request_meta(&request);
    let mut response = match crate::audit::with_request(meta, route(request)).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    cors.apply(&mut response);
    Ok(response)
}

/// CORS on the functions' own answers (`CORS_ALLOW_ORIGIN`; API Gateway adds it to its own
/// answers and to the preflight from the template). Credentials are bearer tokens in a
/// header, never cookies, so no `Access-Control-Allow-Credentials`, and `*` is safe.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    allow_origin: Option<http::HeaderValue>,
}

impl Cors {
    /// Off.
    pub fn off() -> Self {
        Self::default()
    }

    /// `origin` must be `*` or a valid origin ([`is_cors_origin`]).
    pub fn allowing(origin: &str) -> Option<Self> {
        if !is_cors_origin(origin) {
            return None;
        }
        Some(Self {
            allow_origin: Some(http::HeaderValue::from_str(origin).ok()?),
        })
    }

    /// Adds the CORS headers to a function's answer.
    pub fn apply(&self, response: &mut lambda_http::Response<Body>) {
        let Some(origin) = &self.allow_origin else {
            return;
        };
        let headers = response.headers_mut();
        headers.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        // Scripts may read these two (neither is CORS-safelisted): when to retry a 429 or
        // 503, and why a token was refused.
        headers.insert(
            http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
            http::HeaderValue::from_static("Retry-After, WWW-Authenticate"),
        );
        if origin != "*" {
            headers.append(http::header::VARY, http::HeaderValue::from_static("Origin"));
        }
    }
}

/// `*`, or an origin as browsers send it: `http://` or `https://`, a host, an optional
/// port, nothing else (no path, no trailing slash, no credentials).
pub fn is_cors_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    let Some(rest) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || rest.starts_with('[') => (host, Some(port)),
        _ => (rest, None),
    };
    // Browsers send origins in lower case; an upper-case one would never match.
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'.' | b'-' | b'[' | b']' | b':')
        });
    let port_ok = port.is_none_or(|port| {
        !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
    });
    host_ok && port_ok
}

#[cfg(test)]
mod cors_tests {
    use super::*;

    #[test]
    fn only_star_and_bare_origins_are_cors_origins() {
        for good in [
            "*",
            "https://app.example.com",
            "http://127.0.0.1:3001",
            "http://localhost:8080",
        ] {
            assert!(is_cors_origin(good), "{good}");
        }
        for bad in [
            "",
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://user:pw@app.example.com",
            "ftp://app.example.com",
            "https://a.example.com, https://b.example.com",
            "https://app.example.com\r\nX-Evil: 1",
            "http://host:99999999",
            "null",
            "https://App.example.com",
            "HTTPS://app.example.com",
        ] {
            assert!(!is_cors_origin(bad), "{bad:?}");
        }
    }

    #[test]
    fn answers_carry_the_origin_and_vary_unless_it_is_star() {
        let mut response = lambda_http::Response::new(Body::Empty);
        Cors::allowing("https://app.example.com")
            .unwrap()
            .apply(&mut response);
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "https://app.example.com"
        );
        assert_eq!(response.headers()["vary"], "Origin");
        let mut response = lambda_http::Response::new(Body::Empty);
        Cors::allowing("*").unwrap().apply(&mut response);
        assert_eq!(response.headers()["access-control-allow-origin"], "*");
        assert!(response.headers().get("vary").is_none());
        let mut response = lambda_http::Response::new(Body::Empty);
        Cors::off().apply(&mut response);
        assert!(response.headers().is_empty());
    }
}
