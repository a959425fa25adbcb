use authorizer::handle;
use jwt_auth_core::runtime::ColdStart;
use jwt_auth_core::store::UserStore;
use jwt_auth_core::store::dynamodb::DynamoUserStore;
use jwt_auth_core::token::{TokenKeys, TokenVerifier};
use lambda_runtime::{Error, run, service_fn};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let cold = ColdStart::load().await?;
    let verifier = TokenVerifier::new(
        Arc::new(TokenKeys::hs256(&cold.signing_secret().await?)),
        &cold.config.tokens,
    );
    let store = DynamoUserStore::new(cold.dynamodb_client(), cold.config.users_table.clone());
    // One cheap read now moves the TLS handshake to DynamoDB (~0.7 s at low memory sizes)
    // out of the first request. Its answer does not matter.
    let _ = store
        .authorization_state(&"0".repeat(32), "warm-up", "warm-up")
        .await;
    run(service_fn(|event| handle(event, &verifier, &store))).await
}
