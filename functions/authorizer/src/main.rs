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
    // The token settings (the issuer may be an SSM parameter), the keys (the public keys in the table, or the secret with HS256), the permissions
    // documents and a warm-up of the per-request read, at once: the TLS handshakes to
    // DynamoDB and SSM (~0.7 s each at low memory sizes) are out of the first request.
    let nobody = "0".repeat(32);
    let (tokens, keys, permissions, _) = tokio::join!(
        cold.token_settings(),
        cold.token_keys(false, VERIFIER_REFRESH_SECS, store.clone()),
        cold.permissions(),
        store.authorization_state(&nobody, "warm-up", "warm-up"),
    );
    let verifier = TokenVerifier::new(keys?, &tokens?);
    let permissions = permissions?;
    let clock = Clock::system();
    run(service_fn(|event| {
        handle(event, &verifier, &permissions, store.as_ref(), &clock)
    }))
    .await
}
