use jwt_auth_core::crypto::keys::rotation::{KeyRotation, SecretsManagerSecret, retention_secs};
use jwt_auth_core::startup::cold_start::ColdStart;
use jwt_auth_core::startup::config::{ConfigError, TokenKeySource};
use lambda_runtime::{Error, run, service_fn};
use rotation::handle;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let cold = ColdStart::load("rotation").await?;
    let config = &cold.config;
    let TokenKeySource::SecretsManager { secret_id } = &config.token_keys else {
        return Err(ConfigError::Missing("SIGNING_KEYS_SECRET_ARN").into());
    };
    let store = cold.store();
    let rotation = KeyRotation {
        secret: Box::new(SecretsManagerSecret {
            client: jwt_auth_core::crypto::secret::secrets_manager_client(&cold.sdk_config),
            secret_id: secret_id.clone(),
        }),
        store,
        algorithm: config.signing_algorithm,
        retention_secs: retention_secs(
            config.tokens.ttl_secs,
            config.authorizer_cache_ttl_secs,
            config.key_publish_lead_secs,
        ),
        publish_lead_secs: config.key_publish_lead_secs,
        // For the self-check of a new key (sign, then verify) only: no token leaves
        // rotation, so the issuer need not be read from its SSM parameter.
        tokens: config.tokens.clone(),
    };
    let secret_arn = secret_id.clone();
    run(service_fn(|event| handle(event, &rotation, &secret_arn))).await
}
