//! What the HTTP functions share: reading a request the same way everywhere.
//!
//! Functions run behind a REST API (payload v1). The route is taken from
//! `requestContext.resourcePath` (e.g. `/users/{id}`), which API Gateway fills from
//! template.yaml, so the stage prefix in the path never matters; when that is missing
//! (a hand-written event), the path itself is matched against this API's routes ([`crate::access::routes`]).

use crate::ApiError;
use crate::access::policy::AuthorizerContext;
use crate::access::routes::{Route, routes};
use crate::users::user::Role;
use crate::web::error::MAX_BODY_BYTES;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt};
use serde::de::DeserializeOwned;

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
            let route = crate::access::routes::route(method, &resource_path)?;
            let id = request
                .path_parameters_ref()
                .and_then(|params| params.first("id"))
                .map(str::to_owned);
            Some((route, id))
        }
        None => {
            let (route, params) =
                crate::access::routes::match_route(method, request.raw_http_path())?;
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
    routes().iter().any(|route| {
        crate::access::routes::match_path(&route.path, request.raw_http_path()).is_some()
    })
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
    /// Whether its `amr` says the user signed in with the second factor.
    pub second_factor: bool,
}

/// One field of the authorizer's context, by name, wherever the API put it.
type ContextField<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

impl Caller {
    /// Reads the authorizer context. Only `requestContext.authorizer` is trusted, never a
    /// client header; a missing or unreadable context is 401. The context may be as old as
    /// API Gateway's cache entry: routes act only on a caller that
    /// [`crate::sessions::revocation::current_caller`] has checked against the store.
    /// A REST API puts it under `requestContext.authorizer`, an HTTP API (payload 2.0)
    /// under `requestContext.authorizer.lambda`, and an HTTP API's native JWT authorizer
    /// hands over the verified token's claims (`requestContext.authorizer.jwt.claims`, as
    /// strings): the same fields each way.
    pub fn from_request(request: &Request) -> Result<Caller, ApiError> {
        let field: ContextField<'_> = match request.request_context_ref() {
            Some(RequestContext::ApiGatewayV1(context)) => {
                let fields = &context.authorizer.fields;
                Box::new(move |name| fields.get(name)?.as_str().map(str::to_owned))
            }
            #[cfg(feature = "http-api")]
            Some(RequestContext::ApiGatewayV2(context)) => {
                let authorizer = context.authorizer.as_ref().ok_or(ApiError::Unauthorized)?;
                match &authorizer.jwt {
                    Some(jwt) if authorizer.fields.is_empty() => {
                        Box::new(move |name| jwt.claims.get(name).cloned())
                    }
                    _ => {
                        let fields = &authorizer.fields;
                        Box::new(move |name| fields.get(name)?.as_str().map(str::to_owned))
                    }
                }
            }
            _ => return Err(ApiError::Unauthorized),
        };
        let context = AuthorizerContext {
            sub: field("sub").ok_or(ApiError::Unauthorized)?,
            role: field("role").ok_or(ApiError::Unauthorized)?,
            username: field("username").ok_or(ApiError::Unauthorized)?,
            jti: field("jti").ok_or(ApiError::Unauthorized)?,
            sid: field("sid").ok_or(ApiError::Unauthorized)?,
            exp: field("exp").ok_or(ApiError::Unauthorized)?,
            ver: field("ver").ok_or(ApiError::Unauthorized)?,
            // Absent from a context cached before tokens carried it: password only.
            amr: field("amr").unwrap_or_default(),
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
            second_factor: crate::crypto::token::includes_second_factor(&amr_values(&context.amr)),
        })
    }

    /// How far this caller reaches under `rule`.
    pub fn reach(
        &self,
        rule: &crate::access::second_factor::SecondFactorRule,
    ) -> crate::access::second_factor::Reach {
        rule.reach(self.role, self.second_factor)
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

/// The values of an `amr` as a context carries it: space-separated from our authorizer;
/// from an HTTP API's JWT authorizer, which hands array claims over as strings, in
/// brackets (`[pwd otp]`) or as a JSON array.
fn amr_values(raw: &str) -> Vec<&str> {
    raw.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(|c: char| c.is_whitespace() || c == ',')
        .map(|value| value.trim_matches('"'))
        .filter(|value| !value.is_empty())
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amr_is_read_as_our_authorizer_and_a_jwt_authorizer_hand_it_over() {
        for (raw, second_factor) in [
            ("pwd otp", true),
            ("pwd", false),
            ("", false),
            ("[pwd otp]", true),
            ("[pwd]", false),
            (r#"["pwd","otp"]"#, true),
            ("pwdotp", false),
            ("[otpx]", false),
        ] {
            assert_eq!(
                crate::crypto::token::includes_second_factor(&amr_values(raw)),
                second_factor,
                "{raw:?}"
            );
        }
    }
}
