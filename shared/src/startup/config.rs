//! Typed configuration, read once at cold start.
//!
//! Every function calls [`Config::from_env`] in `main` and fails to start, naming the
//! variable, when something is missing or malformed. Handlers never read the environment.

use crate::crypto::secret::{SecretError, SigningSecret};
use crate::crypto::token::TokenSettings;
// Token settings live with the tokens they configure; re-exported where they are read.

/// Longest access-token lifetime accepted from configuration.
pub const MAX_TOKEN_TTL_SECS: u64 = 3600;
/// Default absolute session lifetime: 30 days from login, however often it is refreshed.
pub const DEFAULT_SESSION_MAX_SECS: u64 = 30 * 24 * 3600;
/// Bounds of `SESSION_MAX_SECONDS`: an hour to a year.
pub const SESSION_MAX_SECS_RANGE: std::ops::RangeInclusive<u64> = 3600..=365 * 24 * 3600;

/// Where the HMAC secret of pagination cursors and device tokens comes from.
#[derive(Debug)]
pub enum SecretSource {
    /// `HMAC_SECRET_ARN`: AWS Secrets Manager, read once at cold start (production).
    SecretsManager { secret_id: String },
    /// `HMAC_SECRET`: the value itself (local runs and tests only).
    Inline(SigningSecret),
}

/// Where the token keys come from.
#[derive(Debug)]
pub enum TokenKeySource {
    /// `SIGNING_KEYS_SECRET_ARN`: the key set in Secrets Manager, private keys included (the
    /// login function; the authorizer of an HS256 deployment).
    SecretsManager { secret_id: String },
    /// Neither variable set: the public keys rotation publishes in the users table (the
    /// authorizer of an ES256 or EdDSA deployment, which may not read private keys).
    Published,
    /// `JWT_SECRET`: one HS256 key given inline (local runs, `sam local invoke`, tests).
    Inline(SigningSecret),
}

/// The settings every function shares.
#[derive(Debug)]
pub struct Config {
    /// `USERS_TABLE`: the DynamoDB table holding users.
    pub users_table: String,
    /// `DYNAMODB_ENDPOINT`: overrides the DynamoDB endpoint (DynamoDB Local); unset on AWS.
    pub dynamodb_endpoint: Option<String>,
    /// `HMAC_SECRET_ARN` or `HMAC_SECRET`: required by the functions that make cursors
    /// or device tokens ([`Config::hmac_secret`]).
    pub hmac_secret: Option<SecretSource>,
    /// `SIGNING_KEYS_SECRET_ARN`, `JWT_SECRET`, or the published public keys.
    pub token_keys: TokenKeySource,
    /// `JWT_ISSUER` and the rest of [`TokenSettings`]. With [`Config::issuer_parameter`] set,
    /// `tokens.issuer` is not known until cold start reads it: the functions that issue or
    /// verify take their settings from [`crate::startup::cold_start::ColdStart::token_settings`].
    pub tokens: TokenSettings,
    /// `JWT_ISSUER_PARAMETER`: the SSM parameter holding the issuer, when the template
    /// defaults it to the API's own URL (a function cannot name its own API's URL in its
    /// environment: CloudFormation would have a circular dependency). Exclusive with
    /// `JWT_ISSUER`.
    pub issuer_parameter: Option<String>,
    /// `SESSION_MAX_SECONDS` (default 30 days): a session (refresh-token family) ends this
    /// long after its login, however often it is refreshed.
    pub session_max_secs: u64,
    /// `METRICS_NAMESPACE` (default `LambdaJwtAuth`): the CloudWatch namespace of the
    /// security events' metrics ([`crate::audit`]).
    pub metrics_namespace: String,
    /// `CORS_ALLOW_ORIGIN` (empty = off): the one origin (or `*`) browsers may call from.
    pub cors: crate::web::cors::Cors,
    /// `SIGNING_ALGORITHM` (default ES256): the algorithm of keys rotation creates.
    pub signing_algorithm: crate::crypto::keys::SigningAlgorithm,
    /// `AUTHORIZER_CACHE_TTL_SECONDS` (default 300): how long API Gateway may replay an
    /// answer; a retired key stays verifiable that much longer.
    pub authorizer_cache_ttl_secs: u64,
    /// `KEY_PUBLISH_LEAD_SECONDS` (default 7500, at least 60): how long rotation publishes
    /// a new key before any signer uses it; longer than any verifier keeps our key set.
    pub key_publish_lead_secs: u64,
    /// `LOGIN_SOURCE_FAILURE_LIMIT` (default 100): failed logins one source address may
    /// make per 15 minutes across usernames before it gets 429 (password spraying).
    pub login_source_failure_limit: u64,
    /// `ROLES` (default `admin,customer`): the roles users may be given; a token of any
    /// other role gets no route.
    pub roles: crate::users::user::DeclaredRoles,
    /// `MFA_REQUIRED_ROLES` (default `admin`; set and empty: none): the roles whose users
    /// must sign in with a second factor; until they enrol one, their tokens reach only the
    /// enrolment routes and logout ([`crate::access::second_factor`]).
    pub second_factor_rule: crate::access::second_factor::SecondFactorRule,
    /// `PERMISSIONS_PATH` (the authorizer's): the SSM parameter path under which every
    /// protected API registers its permissions document, one parameter per API id. Unset
    /// (local runs only), this API's built-in document answers for any API.
    pub permissions_path: Option<String>,
    /// `PERMISSIONS_REFRESH_SECONDS` (default 60): how often the authorizer re-reads the
    /// documents, so a change reaches every instance within this, plus the cache TTL.
    pub permissions_refresh_secs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("the token issuer could not be read from SSM parameter {name}: {reason}")]
    IssuerParameter { name: String, reason: String },
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let non_empty = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let users_table = non_empty("USERS_TABLE").ok_or(ConfigError::Missing("USERS_TABLE"))?;
        let inline_secret = |name: &'static str| -> Result<Option<SigningSecret>, ConfigError> {
            non_empty(name)
                .map(|inline| {
                    SigningSecret::new(inline.into_bytes()).map_err(|err| ConfigError::Invalid {
                        name,
                        reason: err.to_string(),
                    })
                })
                .transpose()
        };
        // A local secret beside a Secrets Manager ARN is a deployment that `sam local` or a
        // mistake gave a test key: refused, never silently preferred or ignored.
        let refuse_local = |name: &'static str, arn: &str| ConfigError::Invalid {
            name,
            reason: format!("a local secret is refused when {arn} is set"),
        };
        let hmac_secret = match (non_empty("HMAC_SECRET_ARN"), inline_secret("HMAC_SECRET")?) {
            (Some(_), Some(_)) => return Err(refuse_local("HMAC_SECRET", "HMAC_SECRET_ARN")),
            (Some(secret_id), None) => Some(SecretSource::SecretsManager { secret_id }),
            (None, Some(inline)) => Some(SecretSource::Inline(inline)),
            (None, None) => None,
        };
        let token_keys = match (
            non_empty("SIGNING_KEYS_SECRET_ARN"),
            inline_secret("JWT_SECRET")?,
        ) {
            (Some(_), Some(_)) => {
                return Err(refuse_local("JWT_SECRET", "SIGNING_KEYS_SECRET_ARN"));
            }
            (Some(secret_id), None) => TokenKeySource::SecretsManager { secret_id },
            (None, Some(inline)) => TokenKeySource::Inline(inline),
            (None, None) => TokenKeySource::Published,
        };
        // A whole number within `range` (seconds, or a count), `default` when unset.
        let seconds = |name: &'static str, default: u64, range: std::ops::RangeInclusive<u64>| {
            match non_empty(name) {
                None => Ok(default),
                Some(raw) => match raw.trim().parse::<u64>() {
                    Ok(secs) if range.contains(&secs) => Ok(secs),
                    _ => Err(ConfigError::Invalid {
                        name,
                        reason: format!(
                            "expected whole seconds in {}..={}",
                            range.start(),
                            range.end()
                        ),
                    }),
                },
            }
        };
        let defaults = TokenSettings::default();
        let ttl_secs = seconds(
            "TOKEN_TTL_SECONDS",
            defaults.ttl_secs,
            60..=MAX_TOKEN_TTL_SECS,
        )?;
        let session_max_secs = seconds(
            "SESSION_MAX_SECONDS",
            DEFAULT_SESSION_MAX_SECS,
            SESSION_MAX_SECS_RANGE,
        )?;
        let login_source_failure_limit = seconds(
            "LOGIN_SOURCE_FAILURE_LIMIT",
            crate::sessions::lockout::DEFAULT_SOURCE_FAILURE_LIMIT,
            1..=1_000_000,
        )
        .map_err(|_| ConfigError::Invalid {
            name: "LOGIN_SOURCE_FAILURE_LIMIT",
            reason: "expected a whole number of failed logins in 1..=1000000".into(),
        })?;
        let signing_algorithm = match non_empty("SIGNING_ALGORITHM") {
            None => crate::crypto::keys::SigningAlgorithm::Es256,
            Some(raw) => crate::crypto::keys::SigningAlgorithm::parse(raw.trim()).ok_or(
                ConfigError::Invalid {
                    name: "SIGNING_ALGORITHM",
                    reason: "expected ES256, EdDSA or HS256".into(),
                },
            )?,
        };
        let authorizer_cache_ttl_secs = seconds("AUTHORIZER_CACHE_TTL_SECONDS", 300, 0..=3600)?;
        let key_publish_lead_secs = seconds(
            "KEY_PUBLISH_LEAD_SECONDS",
            crate::crypto::keys::DEFAULT_PUBLISH_LEAD_SECS,
            crate::crypto::keys::SIGNING_LEAD_SECS..=86_400,
        )?;
        let cors = match non_empty("CORS_ALLOW_ORIGIN") {
            None => crate::web::cors::Cors::off(),
            Some(origin) => {
                crate::web::cors::Cors::allowing(origin.trim()).ok_or(ConfigError::Invalid {
                    name: "CORS_ALLOW_ORIGIN",
                    reason: "expected * or one origin such as https://app.example.com".into(),
                })?
            }
        };
        let roles = match non_empty("ROLES") {
            None => crate::users::user::DeclaredRoles::default(),
            Some(raw) => crate::users::user::DeclaredRoles::parse_list(&raw).map_err(|reason| {
                ConfigError::Invalid {
                    name: "ROLES",
                    reason,
                }
            })?,
        };
        // Unset is the default (admins); set to nothing is a deliberate "no role".
        let second_factor_rule = match lookup("MFA_REQUIRED_ROLES") {
            None => crate::access::second_factor::SecondFactorRule::default(),
            Some(raw) => crate::access::second_factor::SecondFactorRule::parse_list(&raw, &roles)
                .map_err(|reason| ConfigError::Invalid {
                name: "MFA_REQUIRED_ROLES",
                reason,
            })?,
        };
        let ssm_name = |name: &'static str, example: &str| -> Result<Option<String>, ConfigError> {
            let Some(path) = non_empty(name).map(|path| path.trim().to_string()) else {
                return Ok(None);
            };
            let valid = path.starts_with('/')
                && !path.ends_with('/')
                && path.len() <= 900
                && path
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'.' | b'-'));
            if !valid {
                return Err(ConfigError::Invalid {
                    name,
                    reason: format!("expected an SSM parameter name such as {example}"),
                });
            }
            Ok(Some(path))
        };
        let permissions_path = ssm_name("PERMISSIONS_PATH", "/my-stack/permissions")?;
        let issuer_parameter = ssm_name("JWT_ISSUER_PARAMETER", "/my-stack/token-issuer")?;
        if issuer_parameter.is_some() && non_empty("JWT_ISSUER").is_some() {
            return Err(ConfigError::Invalid {
                name: "JWT_ISSUER_PARAMETER",
                reason: "set either JWT_ISSUER or JWT_ISSUER_PARAMETER, not both".into(),
            });
        }
        let permissions_refresh_secs = seconds(
            "PERMISSIONS_REFRESH_SECONDS",
            crate::access::registry::DEFAULT_REFRESH_SECS,
            1..=3600,
        )?;
        Ok(Self {
            roles,
            second_factor_rule,
            permissions_path,
            permissions_refresh_secs,
            metrics_namespace: non_empty("METRICS_NAMESPACE")
                .unwrap_or_else(|| crate::audit::DEFAULT_NAMESPACE.into()),
            cors,
            signing_algorithm,
            authorizer_cache_ttl_secs,
            key_publish_lead_secs,
            users_table,
            dynamodb_endpoint: non_empty("DYNAMODB_ENDPOINT"),
            hmac_secret,
            token_keys,
            issuer_parameter,
            tokens: TokenSettings {
                issuer: non_empty("JWT_ISSUER").unwrap_or(defaults.issuer),
                audience: non_empty("JWT_AUDIENCE").unwrap_or(defaults.audience),
                ttl_secs,
                previous_issuer: non_empty("JWT_PREVIOUS_ISSUER"),
            },
            session_max_secs,
            login_source_failure_limit,
        })
    }

    /// The HMAC secret's source, for the functions that need one (login, users).
    pub fn hmac_secret(&self) -> Result<SecretSource, ConfigError> {
        self.hmac_secret
            .clone()
            .ok_or(ConfigError::Missing("HMAC_SECRET_ARN"))
    }

    /// Whether this function calls an AWS service (DynamoDB, Secrets Manager or SSM), and
    /// so needs a region and credentials; not with DynamoDB Local and inline keys only.
    pub fn calls_aws(&self) -> bool {
        self.dynamodb_endpoint.is_none()
            || self.permissions_path.is_some()
            || self.issuer_parameter.is_some()
            || matches!(self.token_keys, TokenKeySource::SecretsManager { .. })
            || matches!(self.hmac_secret, Some(SecretSource::SecretsManager { .. }))
    }
}

impl Clone for SecretSource {
    fn clone(&self) -> Self {
        match self {
            SecretSource::SecretsManager { secret_id } => SecretSource::SecretsManager {
                secret_id: secret_id.clone(),
            },
            SecretSource::Inline(secret) => SecretSource::Inline(secret.duplicate()),
        }
    }
}

impl SecretSource {
    /// Resolves the signing secret: from Secrets Manager (one call, at cold start) or inline.
    pub async fn resolve(
        &self,
        sdk_config: &aws_types::SdkConfig,
    ) -> Result<SigningSecret, ConfigError> {
        match self {
            SecretSource::Inline(secret) => Ok(secret.duplicate()),
            SecretSource::SecretsManager { secret_id } => {
                Ok(crate::crypto::secret::load_from_secrets_manager(sdk_config, secret_id).await?)
            }
        }
    }
}

/// An environment of these variables, for the tests of everything configured from one.
#[cfg(test)]
pub(crate) fn test_env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let vars: std::collections::HashMap<String, String> = vars
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    move |name| vars.get(name).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_env as lookup;

    const GOOD_SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn defaults_apply_when_only_the_required_variables_are_set() {
        let config = Config::from_lookup(lookup(&[
            ("USERS_TABLE", "users"),
            ("HMAC_SECRET", GOOD_SECRET),
        ]))
        .unwrap();
        assert_eq!(config.users_table, "users");
        assert_eq!(config.tokens, TokenSettings::default());
        assert!(config.dynamodb_endpoint.is_none());
    }

    #[test]
    fn only_dynamodb_local_with_inline_keys_calls_no_aws_service() {
        let local = [
            ("USERS_TABLE", "users"),
            ("DYNAMODB_ENDPOINT", "http://127.0.0.1:8000"),
            ("HMAC_SECRET", GOOD_SECRET),
            ("JWT_SECRET", GOOD_SECRET),
        ];
        assert!(!Config::from_lookup(lookup(&local)).unwrap().calls_aws());
        let aws_table = Config::from_lookup(lookup(&[local[0], local[2], local[3]])).unwrap();
        assert!(aws_table.calls_aws());
        let secret_in_aws = Config::from_lookup(lookup(&[
            local[0],
            local[1],
            (
                "HMAC_SECRET_ARN",
                "arn:aws:secretsmanager:us-east-1:1:secret:hmac",
            ),
            local[3],
        ]))
        .unwrap();
        assert!(secret_in_aws.calls_aws());
    }

    #[test]
    fn a_missing_table_is_named_in_the_error() {
        let err = Config::from_lookup(lookup(&[("HMAC_SECRET", GOOD_SECRET)])).unwrap_err();
        assert!(err.to_string().contains("USERS_TABLE"));
    }

    #[test]
    fn startup_fails_closed_without_a_secret() {
        let config = Config::from_lookup(lookup(&[("USERS_TABLE", "users")])).unwrap();
        let err = config.hmac_secret().unwrap_err();
        assert!(err.to_string().contains("HMAC_SECRET_ARN"));
        assert!(matches!(config.token_keys, TokenKeySource::Published));
    }

    #[test]
    fn startup_fails_closed_with_a_short_secret() {
        let err = Config::from_lookup(lookup(&[
            ("USERS_TABLE", "users"),
            ("HMAC_SECRET", "secret"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("HMAC_SECRET"));
        assert!(
            !err.to_string().contains("secret\""),
            "the value is not echoed"
        );
    }

    #[test]
    fn a_local_secret_beside_a_secrets_manager_arn_is_refused() {
        for (local, arn) in [
            ("HMAC_SECRET", "HMAC_SECRET_ARN"),
            ("JWT_SECRET", "SIGNING_KEYS_SECRET_ARN"),
        ] {
            let err = Config::from_lookup(lookup(&[
                ("USERS_TABLE", "users"),
                (local, GOOD_SECRET),
                (arn, "arn:aws:secretsmanager:us-east-1:1:secret:x"),
            ]))
            .unwrap_err();
            assert!(err.to_string().contains(local), "{err}");
            assert!(!err.to_string().contains(GOOD_SECRET));
        }
        // Declared but empty (how the template declares them for `sam local`): unset.
        let config = Config::from_lookup(lookup(&[
            ("USERS_TABLE", "users"),
            ("HMAC_SECRET", ""),
            (
                "HMAC_SECRET_ARN",
                "arn:aws:secretsmanager:us-east-1:1:secret:x",
            ),
            ("JWT_SECRET", ""),
            (
                "SIGNING_KEYS_SECRET_ARN",
                "arn:aws:secretsmanager:us-east-1:1:secret:keys",
            ),
        ]))
        .unwrap();
        assert!(matches!(
            config.hmac_secret,
            Some(SecretSource::SecretsManager { .. })
        ));
        assert!(matches!(
            config.token_keys,
            TokenKeySource::SecretsManager { .. }
        ));
    }

    #[test]
    fn token_lifetime_outside_bounds_is_refused() {
        for bad in ["0", "59", "3601", "abc", "-5"] {
            let result = Config::from_lookup(lookup(&[
                ("USERS_TABLE", "users"),
                ("HMAC_SECRET", GOOD_SECRET),
                ("TOKEN_TTL_SECONDS", bad),
            ]));
            assert!(result.is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn session_lifetime_defaults_to_thirty_days_and_is_bounded() {
        let vars = |value: Option<&'static str>| {
            let mut vars = vec![("USERS_TABLE", "users"), ("HMAC_SECRET", GOOD_SECRET)];
            vars.extend(value.map(|v| ("SESSION_MAX_SECONDS", v)));
            Config::from_lookup(lookup(&vars))
        };
        assert_eq!(vars(None).unwrap().session_max_secs, 30 * 24 * 3600);
        assert_eq!(vars(Some("7200")).unwrap().session_max_secs, 7200);
        for bad in ["0", "3599", "31536001", "a week"] {
            let err = vars(Some(bad)).unwrap_err();
            assert!(err.to_string().contains("SESSION_MAX_SECONDS"), "{bad}");
        }
    }

    #[test]
    fn debug_output_of_the_config_never_shows_the_secret() {
        let config = Config::from_lookup(lookup(&[
            ("USERS_TABLE", "users"),
            ("HMAC_SECRET", GOOD_SECRET),
        ]))
        .unwrap();
        assert!(!format!("{config:?}").contains(GOOD_SECRET));
    }
}
