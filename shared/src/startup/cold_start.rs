//! Cold-start wiring shared by the four functions' `main`: logging, configuration, the AWS
//! SDK configuration (from Lambda's environment, [`crate::startup::aws`]) and the signing secret,
//! each loaded exactly once.

use crate::ApiError;
use crate::crypto::keys::KeyRing;
use crate::crypto::keys::live::{KeySetSource, LiveKeys, PublishedKeySet, SecretKeySet};
use crate::crypto::secret::{SecretError, SigningSecret};
use crate::crypto::token::TokenSettings;
use crate::startup::aws::{dynamodb_client, local_dynamodb_client};
use crate::startup::clock::Clock;
use crate::startup::config::{Config, ConfigError, SecretSource, TokenKeySource};
use crate::store::PublicKeyStore;
use crate::store::dynamodb::DynamoUserStore;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What every function loads before serving its first request.
pub struct ColdStart {
    pub config: Config,
    pub sdk_config: aws_types::SdkConfig,
    /// One SSM client (one connection) for the authorizer's two reads of SSM.
    ssm: std::sync::OnceLock<aws_sdk_ssm::Client>,
}

impl ColdStart {
    /// Sets up logging and the audit lines of `function`, then reads the environment and
    /// the SDK configuration. Any failure stops the function from starting (fail closed)
    /// with the reason in the log.
    pub async fn load(function: &'static str) -> Result<Self, ConfigError> {
        crate::startup::telemetry::init();
        let config = Config::from_env()
            .inspect_err(|err| tracing::error!(error = %err, "bad configuration"))?;
        crate::audit::init(&config.metrics_namespace, function);
        let sdk_config = crate::startup::aws::sdk_config_from_env(|name| std::env::var(name).ok());
        crate::startup::aws::check_usable(&sdk_config, config.calls_aws())
            .inspect_err(|err| tracing::error!(error = %err, "bad configuration"))?;
        Ok(Self::new(config, sdk_config))
    }

    /// What [`Self::load`] ends with, from a configuration already read (tests).
    pub fn new(config: Config, sdk_config: aws_types::SdkConfig) -> Self {
        Self {
            config,
            sdk_config,
            ssm: std::sync::OnceLock::new(),
        }
    }

    fn ssm_client(&self) -> aws_sdk_ssm::Client {
        self.ssm
            .get_or_init(|| crate::startup::aws::ssm_client(&self.sdk_config))
            .clone()
    }

    /// The settings tokens are issued and verified with: the configuration's, with the
    /// issuer read now from `JWT_ISSUER_PARAMETER` when the template names one (its
    /// default: the API's own URL, which the stack writes there). A failed read stops the
    /// start: a guessed issuer would issue tokens no verifier accepts, or accept the wrong ones.
    pub async fn token_settings(&self) -> Result<TokenSettings, ConfigError> {
        let mut settings = self.config.tokens.clone();
        let Some(name) = &self.config.issuer_parameter else {
            return Ok(settings);
        };
        let failed = |reason: String| {
            tracing::error!(parameter = %name, error = %reason, "no token issuer");
            ConfigError::IssuerParameter {
                name: name.clone(),
                reason,
            }
        };
        let answer = self
            .ssm_client()
            .get_parameter()
            .name(name)
            .send()
            .await
            .map_err(|err| failed(crate::web::error::error_chain(&err)))?;
        let value = answer
            .parameter()
            .and_then(|parameter| parameter.value())
            .map(str::trim)
            .unwrap_or_default();
        if !is_usable_issuer(value) {
            return Err(failed(format!("unusable issuer {value:?}")));
        }
        settings.issuer = value.to_string();
        Ok(settings)
    }

    /// The DynamoDB client: the SDK configuration's region and credentials on AWS; with
    /// `DYNAMODB_ENDPOINT` set, a client for DynamoDB Local (fixed region, dummy
    /// credentials, no AWS account needed).
    pub fn dynamodb_client(&self) -> aws_sdk_dynamodb::Client {
        match &self.config.dynamodb_endpoint {
            Some(endpoint) => local_dynamodb_client(endpoint),
            None => dynamodb_client(&self.sdk_config),
        }
    }

    /// The users table, as every function reads and writes it.
    pub fn store(&self) -> Arc<DynamoUserStore> {
        Arc::new(DynamoUserStore::new(
            self.dynamodb_client(),
            self.config.users_table.clone(),
        ))
    }

    /// The permissions documents the authorizer answers each API from, read now (a
    /// failure stops the start) and re-read every `PERMISSIONS_REFRESH_SECONDS`: those
    /// registered under `PERMISSIONS_PATH`, or, without one (a local run), this API's
    /// built-in document for whatever API asks; with `MFA_REQUIRED_ROLES`' rule.
    pub async fn permissions(
        &self,
    ) -> Result<crate::access::registry::Permissions, crate::access::registry::SourceError> {
        use crate::access::registry::Permissions;
        let roles = self.config.roles.clone();
        let rule = self.config.second_factor_rule.clone();
        match &self.config.permissions_path {
            Some(path) => {
                Permissions::load(
                    Box::new(crate::startup::permissions::SsmDocuments::new(
                        self.ssm_client(),
                        path,
                    )),
                    roles,
                    rule,
                    self.config.permissions_refresh_secs,
                    Clock::system().now(),
                )
                .await
            }
            None => {
                tracing::warn!(
                    "no PERMISSIONS_PATH: this API's built-in document answers for every API (local runs only)"
                );
                Ok(Permissions::every_api(
                    &crate::access::routes::THIS_API,
                    roles,
                    rule,
                ))
            }
        }
    }

    /// The token keys, read now and kept current ([`crate::crypto::keys::live`]): the key set in
    /// Secrets Manager, the public keys published in `published` (a verifier without
    /// `SIGNING_KEYS_SECRET_ARN`), or an inline local key. A signer (`signs`) needs the
    /// private set. An unreachable source is retried later; a misconfigured one (access
    /// denied, no such secret, an unusable set) stops the start.
    pub async fn token_keys(
        &self,
        signs: bool,
        refresh_secs: u64,
        published: Arc<dyn PublicKeyStore>,
    ) -> Result<Arc<LiveKeys>, lambda_runtime::Error> {
        let source: Box<dyn KeySetSource> = match &self.config.token_keys {
            TokenKeySource::Inline(secret) => {
                return Ok(LiveKeys::fixed(Arc::new(KeyRing::hs256(secret))));
            }
            TokenKeySource::SecretsManager { secret_id } => Box::new(SecretKeySet::new(
                crate::crypto::secret::secrets_manager_client(&self.sdk_config),
                secret_id.clone(),
            )),
            TokenKeySource::Published if signs => {
                return Err(ConfigError::Missing("SIGNING_KEYS_SECRET_ARN").into());
            }
            TokenKeySource::Published => Box::new(PublishedKeySet::new(published)),
        };
        LiveKeys::load(source, Clock::system(), refresh_secs)
            .await
            .map_err(|err| {
                tracing::error!(error = %crate::web::error::error_chain(&err), "no token keys");
                err.into()
            })
    }

    /// The keys `GET /.well-known/jwks.json` publishes: the public keys rotation wrote to
    /// `published`, re-read every `refresh_secs`; none with an inline local key (HS256,
    /// which nobody outside may verify), where no rotation publishes anything.
    pub async fn jwks_keys(
        &self,
        refresh_secs: u64,
        published: Arc<dyn PublicKeyStore>,
    ) -> Result<Arc<LiveKeys>, lambda_runtime::Error> {
        if let TokenKeySource::Inline(secret) = &self.config.token_keys {
            return Ok(LiveKeys::fixed(Arc::new(KeyRing::hs256(secret))));
        }
        Ok(LiveKeys::load(
            Box::new(PublishedKeySet::new(published)),
            Clock::system(),
            refresh_secs,
        )
        .await?)
    }
}

/// An issuer a token can carry and a verifier compare: a visible, bounded string (what the
/// template writes is the API's https URL).
fn is_usable_issuer(value: &str) -> bool {
    !value.is_empty() && value.len() <= 1024 && value.chars().all(|c| c.is_ascii_graphic())
}

fn log_secret_error(err: &ConfigError) {
    tracing::error!(error = %crate::web::error::error_chain(err), "no HMAC secret");
}

/// Least time between two tries to fetch the signing secret after Secrets Manager was
/// unavailable: a function instance adds at most one call per interval to an outage.
pub const SECRET_RETRY_SECS: u64 = 5;

/// An HTTP function's service, which needs the signing secret. It is built at cold start;
/// if Secrets Manager is throttled or unreachable then, the function starts anyway, answers
/// every request `503` with `Retry-After`, and tries again at most every
/// [`SECRET_RETRY_SECS`] until the secret comes. Any other failure (access denied, no such
/// secret, a secret too short) stops the start: that is a misconfiguration, and refusing to
/// run is failing closed.
pub struct NeedsSecret<T> {
    source: SecretSource,
    sdk_config: aws_types::SdkConfig,
    build: Box<dyn Fn(&SigningSecret) -> T + Send + Sync>,
    service: tokio::sync::OnceCell<T>,
    next_try: std::sync::Mutex<Instant>,
}

impl<T> NeedsSecret<T> {
    /// Fetches the secret and builds the service with `build`, now if it can.
    pub async fn start(
        source: SecretSource,
        sdk_config: aws_types::SdkConfig,
        build: impl Fn(&SigningSecret) -> T + Send + Sync + 'static,
    ) -> Result<Self, ConfigError> {
        let first = Self::first_fetch(&source, &sdk_config).await?;
        Ok(Self::after_first_fetch(first, source, sdk_config, build))
    }

    /// The cold start's fetch of the secret, on its own so that it can run beside the other
    /// start-up reads: `None` when Secrets Manager is unavailable (the function starts and
    /// answers 503), an error when it is misconfigured (the function does not start).
    pub async fn first_fetch(
        source: &SecretSource,
        sdk_config: &aws_types::SdkConfig,
    ) -> Result<Option<SigningSecret>, ConfigError> {
        match source
            .resolve(sdk_config)
            .await
            .inspect_err(log_secret_error)
        {
            Ok(secret) => Ok(Some(secret)),
            Err(ConfigError::Secret(SecretError::Unavailable(_))) => {
                tracing::warn!("starting without the signing secret: answering 503 until it comes");
                Ok(None)
            }
            Err(fatal) => Err(fatal),
        }
    }

    /// The service from what [`Self::first_fetch`] got.
    pub fn after_first_fetch(
        first: Option<SigningSecret>,
        source: SecretSource,
        sdk_config: aws_types::SdkConfig,
        build: impl Fn(&SigningSecret) -> T + Send + Sync + 'static,
    ) -> Self {
        let this = Self {
            source,
            sdk_config,
            build: Box::new(build),
            service: tokio::sync::OnceCell::new(),
            next_try: std::sync::Mutex::new(Instant::now()),
        };
        match first {
            Some(secret) => {
                let _ = this.service.set((this.build)(&secret));
            }
            None => {
                *this.lock_next_try() = Instant::now() + Duration::from_secs(SECRET_RETRY_SECS);
            }
        }
        this
    }

    fn lock_next_try(&self) -> std::sync::MutexGuard<'_, Instant> {
        self.next_try
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The service, or `503` while the secret cannot be had.
    pub async fn get(&self) -> Result<&T, ApiError> {
        if let Some(service) = self.service.get() {
            return Ok(service);
        }
        {
            let mut next_try = self.lock_next_try();
            let now = Instant::now();
            if now < *next_try {
                return Err(ApiError::Unavailable(
                    "signing secret not loaded yet".into(),
                ));
            }
            *next_try = now + Duration::from_secs(SECRET_RETRY_SECS);
        }
        self.service
            .get_or_try_init(|| async {
                let secret = self.fetch().await.map_err(|err| match err {
                    ConfigError::Secret(SecretError::Unavailable(source)) => {
                        ApiError::Unavailable(source)
                    }
                    other => ApiError::internal(other),
                })?;
                Ok((self.build)(&secret))
            })
            .await
    }

    /// Answers a request with `handle` on the service, or the `503` (with `cors`) while the
    /// secret cannot be had: the whole request loop of an HTTP function's `main`.
    pub async fn respond<'a, F, Fut>(
        &'a self,
        cors: &crate::web::cors::Cors,
        handle: F,
    ) -> Result<lambda_http::Response<lambda_http::Body>, std::convert::Infallible>
    where
        F: FnOnce(&'a T) -> Fut,
        Fut: std::future::Future<
                Output = Result<lambda_http::Response<lambda_http::Body>, std::convert::Infallible>,
            >,
    {
        match self.get().await {
            Ok(service) => handle(service).await,
            Err(unavailable) => {
                let mut response = unavailable.into_response();
                cors.apply(&mut response);
                Ok(response)
            }
        }
    }

    async fn fetch(&self) -> Result<SigningSecret, ConfigError> {
        self.source
            .resolve(&self.sdk_config)
            .await
            .inspect_err(log_secret_error)
    }
}
