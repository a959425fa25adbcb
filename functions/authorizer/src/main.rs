use authorizer::handle;
use jwt_auth_core::keys::live::VERIFIER_REFRESH_SECS;
use jwt_auth_core::runtime::ColdStart;
use jwt_auth_core::store::UserStore;
use jwt_auth_core::store::dynamodb::DynamoUserStore;
use jwt_auth_core::token::TokenVerifier;
use lambda_runtime::{Error, run, service_fn};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let cold = ColdStart::load().await?;
    jwt_auth_core::audit::init(&cold.config.metrics_namespace, "authorizer");
    let store = Arc::new(DynamoUserStore::new(
        cold.dynamodb_client(),
        cold.config.users_table.clone(),
    ));
    // Reading the public keys (or the secret) first also moves the TLS handshake to
    // DynamoDB (~0.7 s at low memory sizes) out of the first request.
    let keys = cold
        .token_keys(false, VERIFIER_REFRESH_SECS, store.clone())
        .await?;
    let verifier = TokenVerifier::new(keys, &cold.config.tokens);
    let _ = store
        .authorization_state(&"0".repeat(32), "warm-up", "warm-up")
        .await;
    run(service_fn(|event| handle(event, &verifier, store.as_ref()))).await
}
