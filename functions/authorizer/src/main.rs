use authorizer::handle;
use jwt_auth_core::clock::Clock;
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
    // The keys (the public keys in the table, or the secret with HS256) and a warm-up of
    // the per-request read, at once: the TLS handshake to DynamoDB (~0.7 s at low memory
    // sizes) is out of the first request either way.
    let nobody = "0".repeat(32);
    let (keys, _) = tokio::join!(
        cold.token_keys(false, VERIFIER_REFRESH_SECS, store.clone()),
        store.authorization_state(&nobody, "warm-up", "warm-up"),
    );
    let verifier = TokenVerifier::new(keys?, &cold.config.tokens);
    let clock = Clock::system();
    run(service_fn(|event| {
        handle(event, &verifier, store.as_ref(), &clock)
    }))
    .await
}
