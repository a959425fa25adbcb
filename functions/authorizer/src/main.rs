use authorizer::handle;
use jwt_auth_core::crypto::keys::live::VERIFIER_REFRESH_SECS;
use jwt_auth_core::crypto::token::TokenVerifier;
use jwt_auth_core::startup::clock::Clock;
use jwt_auth_core::startup::cold_start::ColdStart;
use jwt_auth_core::store::UserStore;
use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let cold = ColdStart::load("authorizer").await?;
    let store = cold.store();
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
