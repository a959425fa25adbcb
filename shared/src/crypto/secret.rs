//! The signing secret: where it comes from and the rules it must meet.

use secrecy::{ExposeSecret, SecretBox};

/// Shortest signing secret accepted: 32 bytes, the HS256 output size (RFC 7518 §3.2).
/// A shorter secret makes startup fail instead of issuing crackable tokens (RFC 8725 §3.5).
pub const MIN_SECRET_BYTES: usize = 32;

/// The HMAC key that signs tokens and pagination cursors. `Debug` never prints it.
pub struct SigningSecret(SecretBox<[u8]>);

impl SigningSecret {
    /// Accepts the secret only if it is at least [`MIN_SECRET_BYTES`] long.
    pub fn new(bytes: Vec<u8>) -> Result<Self, SecretError> {
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort { len: bytes.len() });
        }
        Ok(Self(SecretBox::new(bytes.into_boxed_slice())))
    }

    /// A fresh random secret, for local runs and tests; never used by a deployed stack.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; 48];
        fill_random(&mut bytes);
        Self(SecretBox::new(bytes.into_boxed_slice()))
    }

    /// A second handle on the same secret (kept out of `Clone` so copies are deliberate).
    pub fn duplicate(&self) -> Self {
        Self(SecretBox::new(self.expose().to_vec().into_boxed_slice()))
    }

    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }

    /// A key for another purpose derived from this one (HMAC-SHA256 of a label), so that a
    /// cursor MAC can never be replayed as a token signature or the other way round.
    pub fn derive(&self, label: &str) -> SigningSecret {
        use aws_lc_rs::hmac;
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.expose());
        let tag = hmac::sign(&key, label.as_bytes());
        Self(SecretBox::new(tag.as_ref().to_vec().into_boxed_slice()))
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret([REDACTED])")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the signing secret is {len} bytes; at least {MIN_SECRET_BYTES} are required")]
    TooShort { len: usize },
    #[error("could not read the signing secret from Secrets Manager")]
    SecretsManager(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Secrets Manager is throttled, failing on its side or unreachable: a retry later may
    /// work (the functions answer 503 meanwhile, see [`crate::startup::cold_start::NeedsSecret`]).
    #[error("Secrets Manager is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the Secrets Manager secret has no SecretString")]
    NoSecretString,
}

/// Fills `bytes` from the operating system's CSPRNG.
pub fn fill_random(bytes: &mut [u8]) {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    // SystemRandom only fails when the OS has no entropy source at all; nothing is safe then.
    SystemRandom::new()
        .fill(bytes)
        .expect("the operating system's random number generator failed");
}

/// Which version of a secret to read.
#[derive(Debug, Clone, Copy)]
pub enum SecretVersion<'a> {
    /// `AWSCURRENT`, asked for by name (a stage-less read may lag behind a stage move).
    Current,
    /// The version a rotation is creating: `AWSPENDING` with this `ClientRequestToken`.
    Pending(&'a str),
}

/// The `SecretString` of one version of a secret; `None` when the version does not exist
/// (or holds no string). Throttling, server errors and network failures are
/// [`SecretError::Unavailable`].
pub async fn read_secret_string(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
    version: SecretVersion<'_>,
) -> Result<Option<String>, SecretError> {
    let request = client.get_secret_value().secret_id(secret_id);
    let request = match version {
        SecretVersion::Current => request.version_stage("AWSCURRENT"),
        SecretVersion::Pending(token) => request.version_id(token).version_stage("AWSPENDING"),
    };
    match request.send().await {
        Ok(output) => Ok(output.secret_string().map(str::to_owned)),
        Err(err) if matches!(version, SecretVersion::Pending(_)) && is_not_found(&err) => Ok(None),
        Err(err) => Err(secrets_manager_error(err)),
    }
}

fn is_not_found<E: aws_sdk_secretsmanager::error::ProvideErrorMetadata>(
    err: &aws_sdk_secretsmanager::error::SdkError<
        E,
        aws_sdk_secretsmanager::config::http::HttpResponse,
    >,
) -> bool {
    use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
    matches!(err.code(), Some("ResourceNotFoundException"))
}

/// Sorts a Secrets Manager failure into "try again later" and "misconfigured".
pub fn secrets_manager_error<E>(
    err: aws_sdk_secretsmanager::error::SdkError<
        E,
        aws_sdk_secretsmanager::config::http::HttpResponse,
    >,
) -> SecretError
where
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static,
{
    use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
    let unavailable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            service.raw().status().is_server_error()
                || matches!(err.code(), Some("ThrottlingException"))
        }
        _ => false,
    };
    if unavailable {
        SecretError::Unavailable(Box::new(err))
    } else {
        SecretError::SecretsManager(Box::new(err))
    }
}

/// Reads the HMAC secret once at cold start from AWS Secrets Manager.
pub async fn load_from_secrets_manager(
    sdk_config: &aws_types::SdkConfig,
    secret_id: &str,
) -> Result<SigningSecret, SecretError> {
    let client = secrets_manager_client(sdk_config);
    let value = read_secret_string(&client, secret_id, SecretVersion::Current)
        .await?
        .ok_or(SecretError::NoSecretString)?;
    SigningSecret::new(value.into_bytes())
}

/// The Secrets Manager client of the SDK configuration (which honours
/// `AWS_ENDPOINT_URL_SECRETS_MANAGER`: the tests point it at moto).
pub fn secrets_manager_client(sdk_config: &aws_types::SdkConfig) -> aws_sdk_secretsmanager::Client {
    // The SDK sets no timeout: a Secrets Manager that never answers would hold the request
    // that happens to re-read the keys until the Lambda timeout.
    let timeouts = aws_sdk_secretsmanager::config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(1))
        .operation_attempt_timeout(std::time::Duration::from_secs(2))
        .operation_timeout(std::time::Duration::from_secs(4))
        .build();
    let config = aws_sdk_secretsmanager::config::Builder::from(sdk_config)
        .timeout_config(timeouts)
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_shorter_than_32_bytes_is_refused() {
        assert!(matches!(
            SigningSecret::new(vec![7; 31]),
            Err(SecretError::TooShort { len: 31 })
        ));
        assert!(SigningSecret::new(vec![7; 32]).is_ok());
    }

    #[test]
    fn an_empty_secret_is_refused() {
        assert!(SigningSecret::new(Vec::new()).is_err());
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let secret =
            SigningSecret::new(b"super-secret-value-that-is-long-enough".to_vec()).unwrap();
        assert_eq!(format!("{secret:?}"), "SigningSecret([REDACTED])");
    }

    #[test]
    fn derived_keys_differ_by_label_and_from_the_parent() {
        let secret = SigningSecret::generate();
        let a = secret.derive("cursor");
        let b = secret.derive("other");
        assert_ne!(a.expose(), b.expose());
        assert_ne!(a.expose(), secret.expose());
    }
}
