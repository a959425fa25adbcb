//! Shared test harness: one place that builds the product the way the functions' `main`s do
//! (same services, same handlers), with an in-memory or DynamoDB Local store.

pub mod dynamo_local;
pub mod held_store;

/// An SDK configuration for an emulator at `endpoint` (moto, the fake Secrets Manager): a
/// fixed region and dummy static credentials, as DynamoDB Local's client has.
pub fn local_sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("local", "local", None, None, "static"),
            ),
        )
        .endpoint_url(endpoint)
        .build()
}
pub mod moto;
pub mod outage;
pub mod round_trips;
pub mod running_api;

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequest;
use jwt_auth_core::access::second_factor::SecondFactorRule;
use jwt_auth_core::crypto::password::PasswordHasher;
use jwt_auth_core::crypto::secret::SigningSecret;
use jwt_auth_core::crypto::token::{Session, TokenIssuer, TokenKeys, TokenVerifier};
use jwt_auth_core::sessions::device::DeviceTokens;
use jwt_auth_core::sessions::lockout::DEFAULT_SOURCE_FAILURE_LIMIT;
use jwt_auth_core::sessions::login::DEFAULT_REFRESH_TTL_SECS;
use jwt_auth_core::sessions::login::LoginService;
use jwt_auth_core::startup::clock::Clock;
use jwt_auth_core::startup::config::DEFAULT_SESSION_MAX_SECS;
use jwt_auth_core::store::Actor;
use jwt_auth_core::store::memory::MemoryUserStore;
use jwt_auth_core::store::{NewUser, Store};
use jwt_auth_core::users::cursor::CursorCodec;
use jwt_auth_core::users::user::{Role, User, normalize_username};
use lambda_http::{Body, Request, Response};
use secrecy::SecretString;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use users::UsersService;

/// The key that signs the tokens in `events/` (an expired one). Test-only: a deployed stack
/// signs with a random secret from Secrets Manager and accepts none of these tokens.
pub const EVENTS_SIGNING_SECRET: &[u8] = b"events-only-signing-key-never-deployed-0123456789";
/// The password that `events/login-ok.json` sends for `alice`.
pub const EVENTS_PASSWORD: &str = "correct-horse-battery-staple";
/// When the requests in `events/` were made (their `requestTimeEpoch`); their authorizer
/// contexts carry `exp` 15 minutes later. [`TestApp`]'s clock stands here, so the events
/// stay valid whatever the date.
pub const EVENTS_TIME: u64 = 1_800_000_000;

/// One hasher for the whole test binary: building one computes a dummy hash (~20 ms).
pub fn hasher() -> Arc<PasswordHasher> {
    static HASHER: OnceLock<Arc<PasswordHasher>> = OnceLock::new();
    Arc::clone(HASHER.get_or_init(|| Arc::new(PasswordHasher::new())))
}

/// The HTTP functions' services over one store, wired as their `main`s wire them.
pub struct TestApp {
    pub store: Arc<dyn Store>,
    pub login: LoginService,
    pub users: UsersService,
    pub verifier: TokenVerifier,
    /// This API's document for whatever API an event names (the default roles).
    pub permissions: jwt_auth_core::access::registry::Permissions,
    pub issuer: TokenIssuer,
    /// "Now" for the handlers and the authorizer: a manual clock at [`EVENTS_TIME`].
    pub clock: Clock,
}

impl TestApp {
    pub fn new(store: Arc<dyn Store>) -> Self {
        let secret = SigningSecret::new(EVENTS_SIGNING_SECRET.to_vec()).expect("long enough");
        let keys = Arc::new(TokenKeys::hs256(&secret));
        let settings = jwt_auth_core::crypto::token::TokenSettings::default();
        let clock = Clock::manual(EVENTS_TIME);
        Self {
            login: LoginService {
                store: Arc::clone(&store),
                hasher: hasher(),
                issuer: TokenIssuer::new(Arc::clone(&keys), settings.clone()),
                refresh_ttl_secs: DEFAULT_REFRESH_TTL_SECS,
                session_max_secs: DEFAULT_SESSION_MAX_SECS,
                clock: clock.clone(),
                devices: DeviceTokens::new(&secret),
                second_factor: jwt_auth_core::sessions::login::SecondFactorKeys::new(&secret),
                source_failure_limit: DEFAULT_SOURCE_FAILURE_LIMIT,
                public_keys: jwt_auth_core::crypto::keys::live::LiveKeys::fixed(
                    std::sync::Arc::new(
                        jwt_auth_core::crypto::keys::KeyRing::from_published(&Default::default())
                            .expect("an empty set"),
                    ),
                ),
                cors: jwt_auth_core::web::cors::Cors::off(),
                // The services as configured with no role held to a second factor; the
                // tests of the rule run the API with `MfaRequiredRoles` set.
                second_factor_rule: SecondFactorRule::none(),
            },
            users: UsersService {
                store: Arc::clone(&store),
                cursors: CursorCodec::new(&secret),
                hasher: hasher(),
                clock: clock.clone(),
                cors: jwt_auth_core::web::cors::Cors::off(),
                roles: Default::default(),
                second_factor_rule: SecondFactorRule::none(),
            },
            verifier: TokenVerifier::new(Arc::clone(&keys), &settings),
            permissions: jwt_auth_core::access::registry::Permissions::every_api(
                &jwt_auth_core::access::routes::THIS_API,
                Default::default(),
                SecondFactorRule::none(),
            ),
            issuer: TokenIssuer::new(keys, settings),
            store,
            clock,
        }
    }

    pub fn in_memory() -> Self {
        Self::new(Arc::new(MemoryUserStore::new()))
    }

    /// On a fresh DynamoDB Local table.
    pub async fn on_dynamo_local() -> Self {
        let (client, table) = dynamo_local::fresh_table().await;
        Self::new(Arc::new(
            jwt_auth_core::store::dynamodb::DynamoUserStore::new(client, table),
        ))
    }

    /// Creates a user with a real argon2id hash of `password`.
    pub async fn create_user(&self, username: &str, role: Role, password: &str) -> User {
        let password_hash = hasher()
            .hash(&SecretString::from(password.to_string()))
            .expect("hashing works");
        self.store
            .create_user(
                NewUser {
                    username: normalize_username(username).expect("valid test username"),
                    name: format!("{username} (test)"),
                    role,
                    password_hash,
                },
                jwt_auth_core::startup::clock::unix_now(),
                Actor::Operator,
            )
            .await
            .expect("test user created")
    }

    /// What the authorizer answers, at the app's clock, for `events/authorizer-valid.json`
    /// carrying this `Authorization` value (`None`: no header).
    pub async fn authorize(
        &self,
        authorization: Option<&str>,
    ) -> Result<jwt_auth_core::access::policy::AuthorizerResponse, authorizer::AuthorizerError>
    {
        let mut event = authorizer_event("authorizer-valid.json");
        event.authorization_token = authorization.map(str::to_owned);
        authorizer::authorize(
            &event,
            &self.verifier,
            &self.permissions,
            self.store.as_ref(),
            self.clock.now(),
        )
        .await
    }

    /// The caller behind this access token as a backend sees it behind the authorizer
    /// (the token verified at `now`, its claims as the authorizer's context).
    pub fn caller(&self, access_token: &str, now: u64) -> jwt_auth_core::web::request::Caller {
        let claims = self
            .verifier
            .verify(access_token, now)
            .expect("a valid access token");
        jwt_auth_core::web::request::Caller {
            second_factor: claims.second_factor(),
            sub: claims.sub,
            role: claims.role,
            username: claims.username,
            jti: claims.jti,
            sid: claims.sid,
            exp: claims.exp,
            ver: claims.ver,
        }
    }

    /// A fresh access token (at the app's clock) for a user that has never revoked its
    /// tokens (token version 0), as login would issue it.
    pub fn token_for(&self, user: &User) -> String {
        self.issuer
            .issue(user, &Session::start(0), self.clock.now())
            .expect("signing works")
            .token
    }
}

/// The claims of a JWT as sent, unverified (what a client reads from its token).
pub fn claims_of(token: &str) -> serde_json::Value {
    serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            token.split('.').nth(1).expect("a JWS has three parts"),
        )
        .expect("base64url"),
    )
    .expect("JSON claims")
}

/// The workspace root (where `events/` and `template.yaml` are).
/// The TOTP secret an enrolment answered (`secret`: RFC 4648 base32, no padding, as
/// authenticator apps read it), decoded here rather than by the code under test.
pub fn totp_secret_of(base32: &str) -> jwt_auth_core::crypto::totp::TotpSecret {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut count, mut bytes) = (0u64, 0, Vec::new());
    for symbol in base32.bytes() {
        let value = ALPHABET
            .iter()
            .position(|&a| a == symbol)
            .unwrap_or_else(|| panic!("{base32:?} is not base32"));
        bits = (bits << 5) | value as u64;
        count += 5;
        if count >= 8 {
            count -= 8;
            bytes.push((bits >> count) as u8);
        }
    }
    jwt_auth_core::crypto::totp::TotpSecret::from_bytes(bytes)
        .expect("a secret of 128 bits or more")
}

/// [`on_both_stores!`] for tests of the local API: each `async fn case(store: StoreChoice)`
/// runs as `memory::case` on the in-memory store and `dynamo::case` on a fresh DynamoDB
/// Local table.
#[macro_export]
macro_rules! on_both_local_apis {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(local_gateway::app::StoreChoice::Memory).await;
                }
            )*
        }
        mod dynamo {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case($crate::running_api::dynamo_store().await).await;
                }
            )*
        }
    };
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The text of `events/<name>`.
pub fn event_text(name: &str) -> String {
    let path = workspace_root().join("events").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// `events/<name>` as lambda_http hands it to a handler (REST proxy, payload v1).
pub fn http_event(name: &str) -> Request {
    lambda_http::request::from_str(&event_text(name)).unwrap_or_else(|err| panic!("{name}: {err}"))
}

/// `events/<name>` as the authorizer receives it.
pub fn authorizer_event(name: &str) -> ApiGatewayCustomAuthorizerRequest {
    serde_json::from_str(&event_text(name)).unwrap_or_else(|err| panic!("{name}: {err}"))
}

/// A response body as JSON (every answer of ours is JSON).
pub fn body_json(response: &Response<Body>) -> serde_json::Value {
    let bytes: &[u8] = match response.body() {
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => b"null",
    };
    serde_json::from_slice(bytes)
        .unwrap_or_else(|err| panic!("body is not JSON ({err}): {bytes:?}"))
}

/// Changes the REST request context of `request` (the authorizer fields, the resource
/// path…), as API Gateway would have filled it differently.
pub fn edit_context(
    request: Request,
    edit: impl FnOnce(&mut lambda_http::aws_lambda_events::apigw::ApiGatewayProxyRequestContext),
) -> Request {
    use lambda_http::RequestExt;
    use lambda_http::request::RequestContext;
    let Some(RequestContext::ApiGatewayV1(context)) = request.request_context_ref() else {
        panic!("not a REST (payload v1) request");
    };
    let mut context = context.clone();
    edit(&mut context);
    request.with_request_context(RequestContext::ApiGatewayV1(context))
}

/// `request` as sent by `caller` (the authorizer context API Gateway would forward), for
/// the user `path_id` when given: the ids in `events/` are placeholders no store contains.
/// The event's `jti`, `sid`, `exp` and `ver` (0, a user that never revoked its tokens)
/// stay as they are.
pub fn as_caller(request: Request, caller: &User, path_id: Option<&str>) -> Request {
    use lambda_http::RequestExt;
    let request = edit_context(request, |context| {
        let fields = &mut context.authorizer.fields;
        fields.insert("principalId".into(), caller.id.clone().into());
        fields.insert("sub".into(), caller.id.clone().into());
        fields.insert("role".into(), caller.role.as_str().into());
        fields.insert("username".into(), caller.username.clone().into());
    });
    match path_id {
        Some(id) => request.with_path_parameters(std::collections::HashMap::from([(
            "id".to_string(),
            id.to_string(),
        )])),
        None => request,
    }
}

/// Instantiates each `async fn case(app: TestApp)` twice: `memory::case` on the in-memory
/// store and `dynamo::case` on a fresh DynamoDB Local table.
#[macro_export]
macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::TestApp::in_memory()).await;
                }
            )*
        }
        mod dynamo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::TestApp::on_dynamo_local().await).await;
                }
            )*
        }
    };
}
