//! The emulated API Gateway: one HTTP request in, one HTTP response out, with the real
//! authorizer and function handlers called in-process.
//!
//! Kept as one file past 600 lines on purpose: it is one request's path, read top to
//! bottom in the order API Gateway takes it; split, that order would be lost.
//!
//! What happens to a request, in API Gateway's order (see the README's
//! "The local gateway: fidelity and known differences"):
//! 1. The stage is the first path segment (`/prod/users`), as on AWS; then the route is
//!    matched by method and path template. No match: 403 `Missing Authentication Token`.
//! 2. A protected route needs the identity header: missing or empty, or not matching the
//!    `ValidationExpression`, is 401 without calling the authorizer.
//! 3. The authorizer's answer is cached per header value for the template's TTL and reused
//!    for every route, exactly like API Gateway (so a too-narrow policy fails here too).
//!    `Unauthorized` is 401; any other failure or malformed output is 500.
//! 4. The policy is evaluated against the method ARN: explicit Deny or no Allow is 403.
//! 5. The function gets a REST proxy event whose `requestContext.authorizer` holds the
//!    principal and the context as strings; a failed or panicking invocation is 502.
//!
//! Gateway-made errors use the template's gateway responses.

use crate::iam::{self, Decision};
use crate::template::{ApiModel, CorsModel, GatewayResponseModel, MethodThrottle, TemplateRoute};
use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequest,
};
use jwt_auth_core::crypto::token::TokenVerifier;
use jwt_auth_core::sessions::login::LoginService;
use jwt_auth_core::store::Store;
use lambda_http::Body;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use users::UsersService;

/// A request as the gateway receives it.
#[derive(Debug, Clone)]
pub struct GatewayRequest {
    pub method: String,
    /// Path and query as sent, e.g. `/prod/users?limit=2`.
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub source_ip: String,
}

/// A response as the gateway sends it.
#[derive(Debug, Clone)]
pub struct GatewayResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// How the authorizer was consulted, for the request log.
    pub authorization: AuthorizationTrace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationTrace {
    /// Public route, unknown route, or refused before the authorizer.
    NotCalled,
    CacheHit,
    CacheMiss,
}

impl AuthorizationTrace {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorizationTrace::NotCalled => "-",
            AuthorizationTrace::CacheHit => "hit",
            AuthorizationTrace::CacheMiss => "miss",
        }
    }
}

/// The handlers the template's binaries name.
pub struct Functions {
    pub login: LoginService,
    pub users: UsersService,
    pub verifier: TokenVerifier,
    /// The permissions documents the authorizer answers each API from.
    pub permissions: jwt_auth_core::access::registry::Permissions,
    /// What the authorizer reads revocation state from.
    pub store: Arc<dyn Store>,
    /// "Now" for the authorizer (the functions' services hold the same clock).
    pub clock: jwt_auth_core::startup::clock::Clock,
    /// The functions of other stacks' APIs served beside this one, by their
    /// `BuildProperties.Binary` (e.g. the example `orders`).
    pub others: HashMap<String, Handler>,
}

/// An HTTP function of another stack, called in-process like the two of this one.
pub type Handler = Arc<
    dyn Fn(
            lambda_http::Request,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = lambda_http::Response<Body>> + Send>,
        > + Send
        + Sync,
>;

/// Where the emulated API lives, for method ARNs.
#[derive(Debug, Clone)]
pub struct ApiIdentity {
    pub region: String,
    pub account_id: String,
    pub api_id: String,
}

impl Default for ApiIdentity {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            api_id: "local".into(),
        }
    }
}

/// An authorizer answer as API Gateway keeps it.
#[derive(Debug, Clone)]
struct Authorization {
    principal_id: String,
    policy: ApiGatewayCustomAuthorizerPolicy,
    context: Map<String, Value>,
}

pub struct Gateway {
    model: ApiModel,
    identity: ApiIdentity,
    functions: Arc<Functions>,
    validation: Option<regex_lite::Regex>,
    cache: Mutex<HashMap<String, (Authorization, Instant)>>,
    /// One token bucket per method and route, as API Gateway throttles.
    buckets: Mutex<HashMap<(String, String), TokenBucket>>,
}

/// API Gateway's throttling: a bucket of `burst` tokens refilled at `rate_per_sec`; a
/// request takes one token or is answered 429.
#[derive(Debug)]
struct TokenBucket {
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    fn take(&mut self, limits: &MethodThrottle, now: Instant) -> bool {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * limits.rate_per_sec).min(limits.burst as f64);
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Most entries the authorizer cache holds; expired ones are dropped first.
const MAX_CACHE_ENTRIES: usize = 10_000;
/// API Gateway's REST payload limit.
pub const MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(
        "route {method} {path} is served by `{function}`, which the local gateway does not know"
    )]
    UnknownFunction {
        method: String,
        path: String,
        function: String,
    },
    #[error("the authorizer's ValidationExpression is not a valid regex: {0}")]
    BadValidationExpression(String),
}

impl Gateway {
    pub fn new(
        model: ApiModel,
        identity: ApiIdentity,
        functions: Arc<Functions>,
    ) -> Result<Self, GatewayError> {
        for route in &model.routes {
            if !matches!(route.function.as_str(), "login" | "users")
                && !functions.others.contains_key(&route.function)
            {
                return Err(GatewayError::UnknownFunction {
                    method: route.method.clone(),
                    path: route.path.clone(),
                    function: route.function.clone(),
                });
            }
        }
        let validation = match model
            .authorizer
            .as_ref()
            .and_then(|a| a.validation_expression.as_deref())
        {
            Some(expression) => Some(
                regex_lite::Regex::new(expression)
                    .map_err(|err| GatewayError::BadValidationExpression(err.to_string()))?,
            ),
            None => None,
        };
        Ok(Self {
            model,
            identity,
            functions,
            validation,
            cache: Mutex::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    pub fn model(&self) -> &ApiModel {
        &self.model
    }

    /// The base URL path of the stage, e.g. `/prod`.
    pub fn stage_path(&self) -> String {
        format!("/{}", self.model.stage)
    }

    pub async fn handle(&self, request: GatewayRequest) -> GatewayResponse {
        let request_id = new_request_id();
        let (path, query) = match request.path_and_query.split_once('?') {
            Some((path, query)) => (path.to_string(), Some(query.to_string())),
            None => (request.path_and_query.clone(), None),
        };
        let stage_prefix = self.stage_path();
        let resource_path = match path.strip_prefix(&stage_prefix) {
            Some(rest) if rest.starts_with('/') => rest.to_string(),
            Some("") => "/".to_string(),
            _ => {
                return self.gateway_error(
                    "MISSING_AUTHENTICATION_TOKEN",
                    403,
                    "Missing Authentication Token",
                );
            }
        };
        // SAM's generated OPTIONS method on every path of the API (a mock integration: no
        // authorizer, no function).
        if request.method == "OPTIONS"
            && let Some(cors) = &self.model.cors
            && let Some(preflight) = self.preflight(cors, &resource_path, &request_id)
        {
            return preflight;
        }
        let Some((route, path_parameters)) = self.match_route(&request.method, &resource_path)
        else {
            return self.gateway_error(
                "MISSING_AUTHENTICATION_TOKEN",
                403,
                "Missing Authentication Token",
            );
        };
        // Throttling comes first: a throttled request reaches neither the authorizer nor
        // the function.
        if !self.take_token(route) {
            return self.gateway_error("THROTTLED", 429, "Too Many Requests");
        }
        if request.body.len() > MAX_PAYLOAD_BYTES {
            return self.gateway_error("REQUEST_TOO_LARGE", 413, "Request Too Long");
        }

        let mut trace = AuthorizationTrace::NotCalled;
        let mut authorization = None;
        if route.authorized {
            let method_arn = format!(
                "arn:aws:execute-api:{}:{}:{}/{}/{}/{}",
                self.identity.region,
                self.identity.account_id,
                self.identity.api_id,
                self.model.stage,
                request.method,
                resource_path.trim_start_matches('/')
            );
            let (found, cache) = match self.authorize(&request, &method_arn).await {
                Ok(found) => found,
                Err(response) => return *response,
            };
            trace = cache;
            let denied = match iam::evaluate(&found.policy, &method_arn) {
                Decision::Allow => None,
                Decision::ExplicitDeny => {
                    Some("User is not authorized to access this resource with an explicit deny")
                }
                Decision::ImplicitDeny => Some("User is not authorized to access this resource"),
            };
            if let Some(message) = denied {
                return self.with_trace(self.gateway_error("ACCESS_DENIED", 403, message), trace);
            }
            authorization = Some(found);
        }

        let event = self.proxy_event(
            &request,
            route,
            &resource_path,
            &path_parameters,
            query.as_deref(),
            authorization.as_ref(),
            &request_id,
        );
        let mut response = self.invoke(&route.function, event).await;
        response.authorization = trace;
        response
            .headers
            .push(("x-amzn-RequestId".into(), request_id));
        response
    }

    /// The preflight answer for `path`, if it is a path of the API: the methods it has
    /// (with `OPTIONS`), the allowed headers, the max age, and the origin when CORS is on.
    fn preflight(&self, cors: &CorsModel, path: &str, request_id: &str) -> Option<GatewayResponse> {
        let mut methods: Vec<&str> = self
            .model
            .routes
            .iter()
            .filter(|route| match_template(&route.path, path).is_some())
            .map(|route| route.method.as_str())
            .collect();
        if methods.is_empty() {
            return None;
        }
        methods.push("OPTIONS");
        methods.sort_unstable();
        methods.dedup();
        let mut headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            (
                "Access-Control-Allow-Methods".to_string(),
                methods.join(","),
            ),
            ("x-amzn-RequestId".to_string(), request_id.to_string()),
        ];
        let optional = [
            ("Access-Control-Allow-Origin", &cors.allow_origin),
            ("Access-Control-Allow-Headers", &cors.allow_headers),
            ("Access-Control-Max-Age", &cors.max_age),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                headers.push((name.to_string(), value.clone()));
            }
        }
        Some(GatewayResponse {
            status: 200,
            headers,
            body: b"{}".to_vec(),
            authorization: AuthorizationTrace::NotCalled,
        })
    }

    fn match_route(
        &self,
        method: &str,
        path: &str,
    ) -> Option<(&TemplateRoute, Vec<(String, String)>)> {
        self.model.routes.iter().find_map(|route| {
            if route.method != method && route.method != "ANY" {
                return None;
            }
            match_template(&route.path, path).map(|params| (route, params))
        })
    }

    /// Steps 2 and 3: the identity header, the validation expression, the cache and the
    /// authorizer call. `Err` is the gateway's answer.
    async fn authorize(
        &self,
        request: &GatewayRequest,
        method_arn: &str,
    ) -> Result<(Authorization, AuthorizationTrace), Box<GatewayResponse>> {
        let Some(authorizer) = &self.model.authorizer else {
            return Err(Box::new(self.gateway_error(
                "AUTHORIZER_CONFIGURATION_ERROR",
                500,
                "Internal server error",
            )));
        };
        let token = request
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&authorizer.header))
            .map(|(_, value)| value.clone())
            .filter(|value| !value.is_empty());
        let Some(token) = token else {
            return Err(Box::new(self.gateway_error(
                "UNAUTHORIZED",
                401,
                "Unauthorized",
            )));
        };
        if let Some(validation) = &self.validation
            && !validation.is_match(&token)
        {
            return Err(Box::new(self.gateway_error(
                "UNAUTHORIZED",
                401,
                "Unauthorized",
            )));
        }
        let ttl = Duration::from_secs(authorizer.cache_ttl_secs);
        if !ttl.is_zero()
            && let Some((cached, _)) = self
                .lock_cache()
                .get(&token)
                .filter(|(_, expires)| *expires > Instant::now())
        {
            return Ok((cached.clone(), AuthorizationTrace::CacheHit));
        }

        let mut event = ApiGatewayCustomAuthorizerRequest::default();
        event.type_ = Some("TOKEN".into());
        event.authorization_token = Some(token.clone());
        event.method_arn = Some(method_arn.to_string());
        let functions = Arc::clone(&self.functions);
        // Run like a Lambda invocation: a panic is a failed invocation (500), not a crash.
        let outcome = tokio::spawn(async move {
            authorizer::authorize(
                &event,
                &functions.verifier,
                &functions.permissions,
                functions.store.as_ref(),
                functions.clock.now(),
            )
            .await
            .map(|response| serde_json::to_value(&response))
        })
        .await;
        let output = match outcome {
            Ok(Ok(Ok(output))) => output,
            Ok(Err(authorizer::AuthorizerError::Unauthorized)) => {
                return Err(Box::new(self.with_trace(
                    self.gateway_error("UNAUTHORIZED", 401, "Unauthorized"),
                    AuthorizationTrace::CacheMiss,
                )));
            }
            _ => {
                return Err(Box::new(self.with_trace(
                    self.gateway_error("AUTHORIZER_FAILURE", 500, "Internal server error"),
                    AuthorizationTrace::CacheMiss,
                )));
            }
        };
        let Some(authorization) = parse_authorizer_output(&output) else {
            return Err(Box::new(self.with_trace(
                self.gateway_error(
                    "AUTHORIZER_CONFIGURATION_ERROR",
                    500,
                    "Internal server error",
                ),
                AuthorizationTrace::CacheMiss,
            )));
        };
        if !ttl.is_zero() {
            let mut cache = self.lock_cache();
            if cache.len() >= MAX_CACHE_ENTRIES {
                let now = Instant::now();
                cache.retain(|_, (_, expires)| *expires > now);
                if cache.len() >= MAX_CACHE_ENTRIES {
                    cache.clear();
                }
            }
            cache.insert(token, (authorization.clone(), Instant::now() + ttl));
        }
        Ok((authorization, AuthorizationTrace::CacheMiss))
    }

    /// Takes a token from the route's bucket; `false`: throttled.
    fn take_token(&self, route: &TemplateRoute) -> bool {
        let Some(limits) = self.model.throttle_for(&route.method, &route.path) else {
            return true;
        };
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        buckets
            .entry((route.method.clone(), route.path.clone()))
            .or_insert(TokenBucket {
                tokens: limits.burst as f64,
                refilled_at: now,
            })
            .take(limits, now)
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Authorization, Instant)>> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn with_trace(
        &self,
        mut response: GatewayResponse,
        trace: AuthorizationTrace,
    ) -> GatewayResponse {
        response.authorization = trace;
        response
    }

    /// A REST (payload v1) proxy event, as API Gateway builds it.
    #[allow(clippy::too_many_arguments)]
    fn proxy_event(
        &self,
        request: &GatewayRequest,
        route: &TemplateRoute,
        resource_path: &str,
        path_parameters: &[(String, String)],
        query: Option<&str>,
        authorization: Option<&Authorization>,
        request_id: &str,
    ) -> Value {
        let mut headers = Map::new();
        let mut multi_headers: Map<String, Value> = Map::new();
        for (name, value) in &request.headers {
            headers.insert(name.clone(), json!(value));
            if let Some(values) = multi_headers
                .entry(name.clone())
                .or_insert_with(|| json!([]))
                .as_array_mut()
            {
                values.push(json!(value))
            }
        }
        let mut query_single = Map::new();
        let mut query_multi: Map<String, Value> = Map::new();
        for (name, value) in query.into_iter().flat_map(parse_query) {
            query_single.insert(name.clone(), json!(value));
            if let Some(values) = query_multi
                .entry(name)
                .or_insert_with(|| json!([]))
                .as_array_mut()
            {
                values.push(json!(value))
            }
        }
        let (body, is_base64) = match std::str::from_utf8(&request.body) {
            _ if request.body.is_empty() => (Value::Null, false),
            Ok(text) => (json!(text), false),
            Err(_) => {
                use base64::Engine as _;
                (
                    json!(base64::engine::general_purpose::STANDARD.encode(&request.body)),
                    true,
                )
            }
        };
        let mut request_context = json!({
            "accountId": self.identity.account_id,
            "apiId": self.identity.api_id,
            "resourceId": "local",
            "stage": self.model.stage,
            "requestId": request_id,
            "resourcePath": route.path,
            "httpMethod": request.method,
            "path": format!("/{}{}", self.model.stage, resource_path),
            "protocol": "HTTP/1.1",
            "requestTimeEpoch": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            "identity": {"sourceIp": request.source_ip},
        });
        if let Some(authorization) = authorization {
            // The backend sees the context flat, next to principalId, every value a string.
            let mut fields = Map::new();
            fields.insert("principalId".into(), json!(authorization.principal_id));
            for (key, value) in &authorization.context {
                let text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                fields.insert(key.clone(), json!(text));
            }
            fields.insert("integrationLatency".into(), json!(0));
            request_context["authorizer"] = Value::Object(fields);
        }
        let path_parameters: Map<String, Value> = path_parameters
            .iter()
            .map(|(name, value)| (name.clone(), json!(value)))
            .collect();
        let non_empty = |map: Map<String, Value>| {
            if map.is_empty() {
                Value::Null
            } else {
                Value::Object(map)
            }
        };
        json!({
            "resource": route.path,
            "path": resource_path,
            "httpMethod": request.method,
            "headers": non_empty(headers),
            "multiValueHeaders": non_empty(multi_headers),
            "queryStringParameters": non_empty(query_single),
            "multiValueQueryStringParameters": non_empty(query_multi),
            "pathParameters": non_empty(path_parameters),
            "stageVariables": null,
            "requestContext": request_context,
            "body": body,
            "isBase64Encoded": is_base64,
        })
    }

    /// Step 5: the function, as a Lambda invocation of the event's JSON.
    async fn invoke(&self, function: &str, event: Value) -> GatewayResponse {
        let request = match lambda_http::request::from_str(&event.to_string()) {
            Ok(request) => request,
            Err(err) => {
                tracing::error!(error = %err, "proxy event did not deserialize");
                return self.gateway_error("DEFAULT_5XX", 502, "Internal server error");
            }
        };
        let functions = Arc::clone(&self.functions);
        let function = function.to_string();
        let outcome = tokio::spawn(async move {
            match function.as_str() {
                "login" => login::handle(request, &functions.login).await,
                "users" => users::handle(request, &functions.users).await,
                // Gateway::new checked every route's function is one of these.
                other => match functions.others.get(other) {
                    Some(handler) => Ok(handler(request).await),
                    None => {
                        let mut response = lambda_http::Response::new(Body::Empty);
                        *response.status_mut() = lambda_http::http::StatusCode::BAD_GATEWAY;
                        Ok(response)
                    }
                },
            }
        })
        .await;
        let response = match outcome {
            Ok(Ok(response)) => response,
            Ok(Err(never)) => match never {},
            Err(panic) => {
                tracing::error!(error = %panic, "function invocation failed");
                return self.gateway_error("DEFAULT_5XX", 502, "Internal server error");
            }
        };
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
            .collect();
        let body = match response.into_body() {
            Body::Empty => Vec::new(),
            Body::Text(text) => text.into_bytes(),
            Body::Binary(bytes) => bytes,
            _ => Vec::new(),
        };
        GatewayResponse {
            status,
            headers,
            body,
            authorization: AuthorizationTrace::NotCalled,
        }
    }

    /// A gateway-made error, shaped by the template's gateway response for `kind` (or
    /// DEFAULT_4XX / DEFAULT_5XX, or API Gateway's own default).
    pub fn gateway_error(&self, kind: &str, status: u16, message: &str) -> GatewayResponse {
        let fallback = if status >= 500 {
            "DEFAULT_5XX"
        } else {
            "DEFAULT_4XX"
        };
        let model = self
            .model
            .gateway_responses
            .get(kind)
            .or_else(|| self.model.gateway_responses.get(fallback))
            .cloned()
            .unwrap_or_else(GatewayResponseModel::default);
        let quoted = Value::String(message.to_string()).to_string();
        let body = model
            .body_template
            .map(|template| template.replace("$context.error.messageString", &quoted))
            .unwrap_or_else(|| format!("{{\"message\":{quoted}}}"));
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        headers.extend(model.headers);
        GatewayResponse {
            status: model.status.unwrap_or(status),
            headers,
            body: body.into_bytes(),
            authorization: AuthorizationTrace::NotCalled,
        }
    }
}

/// Validates the authorizer's output the way API Gateway does: a string `principalId`, a
/// policy document, and a context whose values are strings, numbers or booleans only.
fn parse_authorizer_output(output: &Value) -> Option<Authorization> {
    let principal_id = output.get("principalId")?.as_str()?.to_string();
    let policy: ApiGatewayCustomAuthorizerPolicy =
        serde_json::from_value(output.get("policyDocument")?.clone()).ok()?;
    let context = match output.get("context") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(context)) => {
            if context
                .values()
                .any(|value| value.is_object() || value.is_array() || value.is_null())
            {
                return None;
            }
            context.clone()
        }
        Some(_) => return None,
    };
    Some(Authorization {
        principal_id,
        policy,
        context,
    })
}

/// Matches `/users/abc` against `/users/{id}` (the rules of the common crate's route
/// table), then percent-decodes the parameters as API Gateway does.
fn match_template(template: &str, path: &str) -> Option<Vec<(String, String)>> {
    jwt_auth_core::access::routes::match_path(template, path).map(|params| {
        params
            .into_iter()
            .map(|(name, value)| (name.to_string(), percent_decode(&value)))
            .collect()
    })
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode(&name.replace('+', " ")),
                percent_decode(&value.replace('+', " ")),
            )
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(high), Some(low)) = (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            )
        {
            out.push(high * 16 + low);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn new_request_id() -> String {
    let mut bytes = [0u8; 16];
    jwt_auth_core::crypto::secret::fill_random(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_segment_by_segment() {
        assert_eq!(
            match_template("/users/{id}", "/users/abc"),
            Some(vec![("id".into(), "abc".into())])
        );
        assert_eq!(match_template("/users", "/users"), Some(vec![]));
        assert_eq!(match_template("/users/{id}", "/users/"), None);
        assert_eq!(match_template("/users/{id}", "/users/a/b"), None);
        assert_eq!(match_template("/users", "/users/"), None);
    }

    #[test]
    fn query_strings_and_path_parameters_are_percent_decoded() {
        assert_eq!(
            parse_query("a=1&b=x%20y&c&d=e+f"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("c".into(), "".into()),
                ("d".into(), "e f".into()),
            ]
        );
        assert_eq!(percent_decode("%41%4"), "A%4");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%aé"), "%aé");
    }

    #[test]
    fn nested_context_values_are_an_authorizer_configuration_error() {
        let output = json!({
            "principalId": "x",
            "policyDocument": {"Version": "2012-10-17", "Statement": []},
            "context": {"nested": {"a": 1}}
        });
        assert!(parse_authorizer_output(&output).is_none());
        let output = json!({
            "principalId": "x",
            "policyDocument": {"Version": "2012-10-17", "Statement": []},
            "context": {"n": 1, "b": true, "s": "x"}
        });
        assert!(parse_authorizer_output(&output).is_some());
        assert!(parse_authorizer_output(&json!({"policyDocument": {}})).is_none());
    }
}
