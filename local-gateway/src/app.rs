//! Builds the local API: the template's model, a store, a signing secret, and the real
//! function services, wired as the functions' `main`s wire them on Lambda.

use crate::gateway::{ApiIdentity, Functions, Gateway, Handler};
use crate::template::ApiModel;
use jwt_auth_core::access::registry::{DEFAULT_REFRESH_SECS, Permissions, StaticDocuments};
use jwt_auth_core::crypto::keys::live::{
    KeySetSource, LiveKeys, PublishedKeySet, VERIFIER_REFRESH_SECS,
};
use jwt_auth_core::crypto::keys::local::LocalSecret;
use jwt_auth_core::crypto::keys::{KeySetDocument, SigningAlgorithm};
use jwt_auth_core::crypto::password::PasswordHasher;
use jwt_auth_core::crypto::secret::SigningSecret;
use jwt_auth_core::crypto::token::{TokenIssuer, TokenVerifier};
use jwt_auth_core::sessions::device::DeviceTokens;
use jwt_auth_core::sessions::login::DEFAULT_REFRESH_TTL_SECS;
use jwt_auth_core::sessions::login::LoginService;
use jwt_auth_core::startup::aws::local_dynamodb_client;
use jwt_auth_core::startup::clock::Clock;
use jwt_auth_core::startup::config::Config;
use jwt_auth_core::store::Actor;
use jwt_auth_core::store::dynamodb::{DynamoUserStore, create_table};
use jwt_auth_core::store::memory::MemoryUserStore;
use jwt_auth_core::store::{NewUser, Store};
use jwt_auth_core::users::cursor::CursorCodec;
use jwt_auth_core::users::user::Role;
use secrecy::SecretString;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use users::UsersService;

/// Where local users live.
#[derive(Debug, Clone)]
pub enum StoreChoice {
    /// In memory, seeded with [`DEMO_USERS`].
    Memory,
    /// A DynamoDB table (DynamoDB Local when `endpoint` is set), created if missing.
    Dynamo {
        endpoint: Option<String>,
        table: String,
    },
}

/// Demo accounts of the in-memory store: local runs only (a deployed stack has no seeded
/// account; its first admin is created with `jwt-auth users create`).
pub const DEMO_USERS: &[(&str, Role, &str)] = &[
    ("admin", Role::Admin, "local-admin-password"),
    ("alice", Role::Customer, "local-alice-password"),
    ("bob", Role::Customer, "local-bob-password"),
];

pub struct LocalOptions {
    pub template: PathBuf,
    pub store: StoreChoice,
    /// The HMAC secret of cursors and device tokens; a random one is generated when `None`.
    pub secret: Option<SigningSecret>,
    /// Template parameter overrides (`StageName=dev`, `AuthorizerCacheTtlSeconds=0`).
    pub parameter_overrides: HashMap<String, String>,
    /// Seed [`DEMO_USERS`] into the in-memory store.
    pub seed_demo_users: bool,
    /// "Now" for the authorizer and the functions: the system clock, or a test's.
    pub clock: Clock,
    /// The algorithm of the key set generated at start (when `key_file` holds none yet).
    pub signing_algorithm: SigningAlgorithm,
    /// Where the local stand-in of the key-set secret is kept, so that `keys rotate` (another
    /// process) can rotate it; in memory when `None`.
    pub key_file: Option<PathBuf>,
    /// How often the functions re-read the key set (the deployed default is
    /// [`jwt_auth_core::crypto::keys::live::SIGNER_REFRESH_SECS`]).
    pub key_refresh_secs: u64,
    /// APIs of other stacks served beside this one, behind the same authorizer.
    pub other_apis: Vec<OtherApi>,
    /// Where the API is served, when known before it is built: a `TokenIssuer` left to the
    /// template's default (the API's own URL, deployed) is then this API's URL, and its
    /// OIDC discovery works locally. Unknown, the issuer is `lambda-jwt-auth`.
    pub address: Option<std::net::SocketAddr>,
}

/// Another stack's API (its template imports this stack's authorizer and registers its own
/// permissions document), served by its own gateway.
pub struct OtherApi {
    pub template: PathBuf,
    /// Its HTTP functions by `BuildProperties.Binary`, made from this stack's store (their
    /// re-check reads it) and the clock.
    pub functions: MakeFunctions,
}

/// Makes another API's functions from this stack's store and the clock.
pub type MakeFunctions = Box<dyn FnOnce(Arc<dyn Store>, Clock) -> HashMap<String, Handler> + Send>;

pub struct LocalApi {
    pub gateway: Gateway,
    /// The gateways of [`LocalOptions::other_apis`], in order (API ids `local2`, `local3`…).
    pub others: Vec<Gateway>,
    pub store: Arc<dyn Store>,
    pub issuer: TokenIssuer,
    /// The key-set secret the login function reads (rotations run against it).
    pub key_secret: Arc<LocalSecret>,
    /// The verifier's keys (the authorizer's view, for tests that count re-reads).
    pub verifier_keys: Arc<LiveKeys>,
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Template(#[from] crate::template::TemplateError),
    #[error(transparent)]
    Gateway(#[from] crate::gateway::GatewayError),
    #[error(transparent)]
    Config(#[from] jwt_auth_core::startup::config::ConfigError),
    #[error(transparent)]
    Store(#[from] jwt_auth_core::store::StoreError),
    #[error("signing keys: {0}")]
    Keys(String),
}

impl LocalApi {
    pub async fn build(options: LocalOptions) -> Result<Self, LocalError> {
        let model = ApiModel::from_file(&options.template, &options.parameter_overrides)?;
        // The functions read the environment the template gives them; locally the secret
        // and the table come from the options instead of Secrets Manager and the stack.
        let mut environment = model.function_environment.clone();
        environment.insert("USERS_TABLE".into(), "local".into());
        environment.insert("HMAC_SECRET".into(), "x".repeat(32));
        environment.remove("HMAC_SECRET_ARN");
        environment.remove("SIGNING_KEYS_SECRET_ARN");
        // Deployed, an empty JWT_ISSUER means the API's URL, read from an SSM parameter.
        let issuer_is_api_url = environment
            .get("JWT_ISSUER")
            .is_none_or(|issuer| issuer.trim().is_empty());
        if let (true, Some(address)) = (issuer_is_api_url, options.address) {
            environment.insert(
                "JWT_ISSUER".into(),
                format!("http://{address}/{}", model.stage),
            );
        }
        environment.remove("JWT_ISSUER_PARAMETER");
        let config = Config::from_lookup(|name| environment.get(name).cloned())?;
        let secret = options.secret.unwrap_or_else(SigningSecret::generate);

        let store: Arc<dyn Store> = match &options.store {
            StoreChoice::Memory => Arc::new(MemoryUserStore::new()),
            StoreChoice::Dynamo { endpoint, table } => {
                let client = match endpoint {
                    Some(endpoint) => local_dynamodb_client(endpoint),
                    None => jwt_auth_core::startup::aws::dynamodb_client(
                        &aws_config::defaults(aws_config::BehaviorVersion::latest())
                            .load()
                            .await,
                    ),
                };
                if endpoint.is_some() {
                    create_table(&client, table).await?;
                }
                Arc::new(DynamoUserStore::new(client, table.clone()))
            }
        };
        let hasher = Arc::new(PasswordHasher::new());
        if options.seed_demo_users {
            seed_demo_users(store.as_ref(), &hasher).await?;
        }

        // The key set lives in a local stand-in for its Secrets Manager secret; its public
        // half is published in the store, where the authorizer reads it, as rotation does.
        let algorithm = options.signing_algorithm;
        let initial = || KeySetDocument::generate(algorithm, options.clock.now()).to_json();
        let key_secret = Arc::new(match &options.key_file {
            Some(path) => LocalSecret::in_file(path.clone(), initial)
                .map_err(|err| LocalError::Keys(format!("{}: {err}", path.display())))?,
            None => LocalSecret::in_memory(&initial()),
        });
        let document = key_secret
            .current()
            .ok()
            .flatten()
            .and_then(|json| KeySetDocument::from_json(&json).ok())
            .ok_or_else(|| LocalError::Keys("the local key set is unusable".into()))?;
        jwt_auth_core::crypto::keys::rotation::publish(
            store.as_ref(),
            &document,
            options.clock.now(),
        )
        .await
        .map_err(|err| LocalError::Keys(err.to_string()))?;
        let load = |source: Box<dyn KeySetSource>, refresh_secs| {
            LiveKeys::load(source, options.clock.clone(), refresh_secs)
        };
        let keys_err = |err: jwt_auth_core::crypto::keys::live::KeySourceError| {
            LocalError::Keys(err.to_string())
        };
        let signer_keys = load(Box::new(key_secret.clone()), options.key_refresh_secs)
            .await
            .map_err(keys_err)?;
        let hs256 = document
            .current_key()
            .is_some_and(|key| key.alg == SigningAlgorithm::Hs256.as_str());
        let verifier_source: Box<dyn KeySetSource> = if hs256 {
            Box::new(key_secret.clone())
        } else {
            Box::new(PublishedKeySet::new(store.clone()))
        };
        let verifier_keys = load(
            verifier_source,
            options.key_refresh_secs.min(VERIFIER_REFRESH_SECS),
        )
        .await
        .map_err(keys_err)?;
        // Each API's document as its template registers it, under the emulated API's id:
        // an API without one is denied every route, as deployed.
        let mut documents = Vec::new();
        let mut other_gateways = Vec::new();
        let mut other_functions = HashMap::new();
        for (i, other) in options.other_apis.into_iter().enumerate() {
            let other_model = ApiModel::from_file(&other.template, &HashMap::new())?;
            let identity = ApiIdentity {
                api_id: format!("local{}", i + 2),
                ..ApiIdentity::default()
            };
            if let Some(document) = &other_model.permissions_document {
                documents.push((identity.api_id.clone(), document.clone()));
            }
            other_functions.extend((other.functions)(Arc::clone(&store), options.clock.clone()));
            other_gateways.push((other_model, identity));
        }
        if let Some(document) = &model.permissions_document {
            documents.push((ApiIdentity::default().api_id, document.clone()));
        }
        let permissions = Permissions::load(
            Box::new(StaticDocuments::new(documents)),
            config.roles.clone(),
            config.second_factor_rule.clone(),
            DEFAULT_REFRESH_SECS,
            options.clock.now(),
        )
        .await
        .map_err(|err| LocalError::Keys(err.to_string()))?;
        let functions = Functions {
            permissions,
            others: other_functions,
            login: LoginService {
                store: Arc::clone(&store),
                hasher: Arc::clone(&hasher),
                issuer: TokenIssuer::new(Arc::clone(&signer_keys), config.tokens.clone()),
                refresh_ttl_secs: DEFAULT_REFRESH_TTL_SECS,
                session_max_secs: config.session_max_secs,
                clock: options.clock.clone(),
                devices: DeviceTokens::new(&secret),
                second_factor: jwt_auth_core::sessions::login::SecondFactorKeys::new(&secret),
                source_failure_limit: config.login_source_failure_limit,
                public_keys: load(
                    Box::new(PublishedKeySet::new(store.clone())),
                    options
                        .key_refresh_secs
                        .min(jwt_auth_core::sessions::login::JWKS_REFRESH_SECS),
                )
                .await
                .map_err(keys_err)?,
                cors: config.cors.clone(),
                second_factor_rule: config.second_factor_rule.clone(),
            },
            users: UsersService {
                store: Arc::clone(&store),
                cursors: CursorCodec::new(&secret),
                hasher,
                clock: options.clock.clone(),
                cors: config.cors.clone(),
                roles: config.roles.clone(),
                second_factor_rule: config.second_factor_rule.clone(),
            },
            verifier: TokenVerifier::new(Arc::clone(&verifier_keys), &config.tokens),
            store: Arc::clone(&store),
            clock: options.clock,
        };
        let functions = Arc::new(functions);
        let gateway = Gateway::new(model, ApiIdentity::default(), Arc::clone(&functions))?;
        let others = other_gateways
            .into_iter()
            .map(|(model, identity)| Gateway::new(model, identity, Arc::clone(&functions)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            gateway,
            others,
            store,
            issuer: TokenIssuer::new(signer_keys, config.tokens),
            key_secret,
            verifier_keys,
        })
    }
}

/// Creates the [`DEMO_USERS`] missing from `store` (local stores only: their passwords are
/// in this file, and they are not held to the password policy).
pub async fn seed_demo_users(
    store: &dyn Store,
    hasher: &PasswordHasher,
) -> Result<(), jwt_auth_core::store::StoreError> {
    for (username, role, password) in DEMO_USERS {
        if store.find_login(username).await?.is_some() {
            continue;
        }
        let password_hash = hasher
            .hash(&SecretString::from(password.to_string()))
            .map_err(|err| jwt_auth_core::store::StoreError::backend(err.to_string()))?;
        store
            .create_user(
                NewUser {
                    username: username.to_string(),
                    name: format!("Demo {}", capitalize(username)),
                    role: *role,
                    password_hash,
                },
                jwt_auth_core::startup::clock::unix_now(),
                Actor::Operator,
            )
            .await?;
    }
    Ok(())
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
