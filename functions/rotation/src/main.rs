use jwt_auth_core::config::{ConfigError, TokenKeySource};
use jwt_auth_core::keys::rotation::{KeyRotation, SecretsManagerSecret, retention_secs};
use jwt_auth_core::runtime::ColdStart;
use jwt_auth_core::store::dynamodb::DynamoUserStore;
use lambda_runtime::{Error, run, service_fn};
use rotation::handle;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let cold = ColdStart::load().await?;
    let config = &cold.config;
    let TokenKeySource::SecretsManager { secret_id } = &config.token_keys else {
        return Err(ConfigError::Missing("SIGNING_KEYS_SECRET_ARN").into());
    };
    let store = DynamoUserStore::new(cold.dynamodb_client(), config.users_table.clone());
    let rotation = KeyRotation {
        secret: Box::new(SecretsManagerSecret {
            client: jwt_auth_core::secret::secrets_manager_client(&cold.sdk_config),
            secret_id: secret_id.clone(),
        }),
        store: Arc::new(store),
        algorithm: config.signing_algorithm,
        retention_secs: retention_secs(config.tokens.ttl_secs, config.authorizer_cache_ttl_secs),
        tokens: config.tokens.clone(),
    };
    let secret_arn = secret_id.clone();
    run(service_fn(|event| handle(event, &rotation, &secret_arn))).await
}
