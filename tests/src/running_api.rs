//! The local API on a real socket, for HTTP tests: the template's gateway with the real
//! authorizer and functions, a store of the test's choice, and a real HTTP client.

use crate::{dynamo_local, workspace_root};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jwt_auth_core::crypto::keys::SigningAlgorithm;
use jwt_auth_core::startup::clock::Clock;
use jwt_auth_core::store::Actor;
use jwt_auth_core::store::{NewUser, Store};
use jwt_auth_core::users::user::{Role, User};
use local_gateway::app::{LocalApi, LocalOptions, StoreChoice};
use local_gateway::gateway::{AuthorizationTrace, Gateway, GatewayRequest};
use serde_json::{Value, json};
use std::sync::Arc;

pub const PASSWORD: &str = "a-long-test-password";

pub struct RunningApi {
    pub base: String,
    /// The base URLs of the other stacks' APIs served beside this one, in order.
    pub others: Vec<String>,
    /// The clock of the authorizer and the functions (the gateway's cache TTL runs on real
    /// time, as on AWS).
    pub clock: Clock,
    pub gateway: Arc<Gateway>,
    pub store: Arc<dyn Store>,
    pub issuer: jwt_auth_core::crypto::token::TokenIssuer,
    /// The local key-set secret the login function reads; rotations run against it.
    pub key_secret: Arc<jwt_auth_core::crypto::keys::local::LocalSecret>,
    /// The authorizer's keys (to count its re-reads).
    pub verifier_keys: Arc<jwt_auth_core::crypto::keys::live::LiveKeys>,
    pub client: Client<HttpConnector, Full<Bytes>>,
    pub _shutdown: tokio::sync::oneshot::Sender<()>,
}

pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Value,
}

pub async fn start_with(
    store: StoreChoice,
    template: std::path::PathBuf,
    overrides: &[(&str, &str)],
) -> RunningApi {
    start_at(store, template, overrides, Clock::system()).await
}

/// Throttling parameters raised out of the way of tests that are not about throttling (a
/// test fires requests far faster than any client would), and no role held to a second
/// factor; a test's own overrides win.
const UNTHROTTLED: &[(&str, &str)] = &[
    ("ApiThrottlingRateLimit", "100000"),
    ("ApiThrottlingBurstLimit", "100000"),
    ("LoginThrottlingRateLimit", "100000"),
    ("LoginThrottlingBurstLimit", "100000"),
    ("RefreshThrottlingRateLimit", "100000"),
    ("RefreshThrottlingBurstLimit", "100000"),
    ("PasswordThrottlingRateLimit", "100000"),
    ("PasswordThrottlingBurstLimit", "100000"),
    ("LogoutThrottlingRateLimit", "100000"),
    ("LogoutThrottlingBurstLimit", "100000"),
    // Likewise the second factor required of admins (the deployed default): the tests of
    // that rule (`second_factor_http.rs`) set `MfaRequiredRoles` themselves.
    ("MfaRequiredRoles", ""),
];

/// The local API with its functions on `clock` (e.g. [`Clock::manual`]).
/// [`UNTHROTTLED`] with a test's own overrides over it.
pub fn unthrottled_with(overrides: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    UNTHROTTLED
        .iter()
        .chain(overrides)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub async fn start_at(
    store: StoreChoice,
    template: std::path::PathBuf,
    overrides: &[(&str, &str)],
    clock: Clock,
) -> RunningApi {
    // The default of `make run`.
    start_signing(store, template, overrides, clock, SigningAlgorithm::Es256).await
}

/// The local API signing with a key set of `algorithm`.
pub async fn start_signing(
    store: StoreChoice,
    template: std::path::PathBuf,
    overrides: &[(&str, &str)],
    clock: Clock,
    algorithm: SigningAlgorithm,
) -> RunningApi {
    let parameter_overrides = unthrottled_with(overrides);
    start_local(LocalOptions {
        other_apis: Vec::new(),
        address: None,
        clock,
        signing_algorithm: algorithm,
        template,
        store,
        secret: None,
        parameter_overrides,
        seed_demo_users: false,
        key_file: None,
        key_refresh_secs: jwt_auth_core::crypto::keys::live::SIGNER_REFRESH_SECS,
    })
    .await
}

/// The local API built from `options` as they are (throttling as `options` say). Any
/// `options.address` becomes the address actually served (port 0 asks for a free one),
/// as `jwt-auth serve` passes its own.
pub async fn start_local(mut options: LocalOptions) -> RunningApi {
    let clock = options.clock.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    if options.address.is_some() {
        options.address = Some(address);
    }
    let api = LocalApi::build(options)
        .await
        .expect("local API builds from template.yaml");
    let gateway = Arc::new(api.gateway);
    let mut others = Vec::new();
    for other in api.others {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        others.push(format!("http://{address}{}", other.stage_path()));
        // Served until the test's runtime ends.
        tokio::spawn(local_gateway::server::serve(
            listener,
            Arc::new(other),
            std::future::pending::<()>(),
        ));
    }
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(local_gateway::server::serve(
        listener,
        Arc::clone(&gateway),
        async {
            let _ = stop.await;
        },
    ));
    RunningApi {
        base: format!("http://{address}{}", gateway.stage_path()),
        others,
        clock,
        gateway,
        store: api.store,
        issuer: api.issuer,
        key_secret: api.key_secret,
        verifier_keys: api.verifier_keys,
        client: Client::builder(TokioExecutor::new()).build_http(),
        _shutdown: shutdown,
    }
}

/// This API and the example orders API (`examples/orders`) behind its authorizer, the
/// orders function re-checking callers against this API's store when `recheck`.
pub async fn start_with_orders(
    store: StoreChoice,
    overrides: &[(&str, &str)],
    recheck: bool,
    clock: Clock,
) -> RunningApi {
    let parameter_overrides = unthrottled_with(overrides);
    // The auth stack's rule, as the example's template passes it on deployed.
    let second_factor_rule = orders_example::OrdersService::second_factor_rule_from(
        parameter_overrides
            .get("MfaRequiredRoles")
            .map(String::as_str),
    )
    .expect("MfaRequiredRoles names declared roles");
    start_local(LocalOptions {
        address: None,
        other_apis: vec![local_gateway::app::OtherApi {
            template: workspace_root().join("examples/orders/template.yaml"),
            functions: Box::new(move |users, clock| {
                let service = orders_example::OrdersService {
                    orders: Arc::new(orders_example::MemoryOrders::default()),
                    revocation: recheck
                        .then_some(users as Arc<dyn jwt_auth_core::store::UserStore>),
                    clock,
                    second_factor_rule,
                };
                std::collections::HashMap::from([(
                    "orders".to_string(),
                    orders_example::in_process(service),
                )])
            }),
        }],
        clock,
        signing_algorithm: SigningAlgorithm::Es256,
        template: workspace_root().join("template.yaml"),
        store,
        secret: None,
        parameter_overrides,
        seed_demo_users: false,
        key_file: None,
        key_refresh_secs: jwt_auth_core::crypto::keys::live::SIGNER_REFRESH_SECS,
    })
    .await
}

pub async fn start(store: StoreChoice) -> RunningApi {
    start_with(store, workspace_root().join("template.yaml"), &[]).await
}

pub async fn dynamo_store() -> StoreChoice {
    dynamo_store_at().await.0
}

/// A fresh table on DynamoDB Local, with its endpoint and name for the CLI's commands.
pub async fn dynamo_store_at() -> (StoreChoice, String, String) {
    let (_, table) = dynamo_local::fresh_table().await;
    let endpoint = std::env::var("DYNAMODB_ENDPOINT").unwrap();
    let store = StoreChoice::Dynamo {
        endpoint: Some(endpoint.clone()),
        table: table.clone(),
    };
    (store, endpoint, table)
}

impl RunningApi {
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        self.call_at(&self.base, method, path, token, body).await
    }

    /// [`Self::call`] on another stack's API served beside this one.
    pub async fn call_other(
        &self,
        index: usize,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        self.call_at(&self.others[index], method, path, token, body)
            .await
    }

    async fn call_at(
        &self,
        base: &str,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("{base}{path}"));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        let response = self
            .client
            .request(request.body(Full::new(body)).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        // 204 answers have no body.
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("{method} {path}: body is not JSON: {bytes:?}"))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn create_user(&self, username: &str, role: Role) -> User {
        let password_hash = crate::hasher()
            .hash(&secrecy::SecretString::from(PASSWORD.to_string()))
            .unwrap();
        self.store
            .create_user(
                NewUser {
                    username: username.into(),
                    name: username.into(),
                    role,
                    password_hash,
                },
                self.clock.now(),
                Actor::Operator,
            )
            .await
            .unwrap()
    }

    /// The user stored under `username`, as it is now.
    pub async fn stored_user(&self, username: &str) -> User {
        self.store
            .find_login(username)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no user {username}"))
            .user
    }

    /// `POST /token/refresh` with this refresh token.
    pub async fn refresh(&self, refresh_token: &str) -> Answer {
        self.call(
            "POST",
            "/token/refresh",
            None,
            Some(json!({"refresh_token": refresh_token})),
        )
        .await
    }

    /// `POST /login` with this username and password, whatever the answer.
    pub async fn try_login(&self, username: &str, password: &str) -> Answer {
        self.call(
            "POST",
            "/login",
            None,
            Some(json!({"username": username, "password": password})),
        )
        .await
    }

    /// Logs in and returns the access token.
    pub async fn login(&self, username: &str) -> String {
        self.login_session(username).await["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Logs in and returns the whole answer (access and refresh tokens, user).
    pub async fn login_session(&self, username: &str) -> Value {
        let answer = self.try_login(username, PASSWORD).await;
        assert_eq!(answer.status, 200, "{username}: {}", answer.body);
        answer.body
    }

    /// In-process, to see the authorizer cache trace that the HTTP answer does not show.
    pub async fn trace(
        &self,
        method: &str,
        path: &str,
        authorization: &str,
    ) -> (u16, AuthorizationTrace) {
        self.traced(method, path, authorization, None).await
    }

    /// [`Self::trace`] of a request with a JSON body.
    pub async fn trace_call(
        &self,
        method: &str,
        path: &str,
        authorization: &str,
        body: Value,
    ) -> (u16, AuthorizationTrace) {
        self.traced(method, path, authorization, Some(body)).await
    }

    async fn traced(
        &self,
        method: &str,
        path: &str,
        authorization: &str,
        body: Option<Value>,
    ) -> (u16, AuthorizationTrace) {
        let mut headers = vec![("Authorization".to_string(), authorization.to_string())];
        if body.is_some() {
            headers.push(("Content-Type".into(), "application/json".into()));
        }
        let response = self
            .gateway
            .handle(GatewayRequest {
                method: method.into(),
                path_and_query: format!("{}{path}", self.gateway.stage_path()),
                headers,
                body: body
                    .map(|body| body.to_string().into_bytes())
                    .unwrap_or_default(),
                source_ip: "127.0.0.1".into(),
            })
            .await;
        (response.status, response.authorization)
    }
}
