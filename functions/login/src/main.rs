use jwt_auth_core::crypto::keys::live::SIGNER_REFRESH_SECS;
use jwt_auth_core::crypto::password::PasswordHasher;
use jwt_auth_core::crypto::token::TokenIssuer;
use jwt_auth_core::sessions::device::DeviceTokens;
use jwt_auth_core::sessions::login::{
    DEFAULT_REFRESH_TTL_SECS, JWKS_REFRESH_SECS, LoginService, SecondFactorKeys,
};
use jwt_auth_core::startup::clock::Clock;
use jwt_auth_core::startup::cold_start::{ColdStart, NeedsSecret};
use jwt_auth_core::store::LoginFailureStore;
use lambda_http::{Error, run, service_fn};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let cold = ColdStart::load("login").await?;
    let store = cold.store();
    let hmac_source = cold.config.hmac_secret()?;
    // The start-up reads do not depend on each other: together they take the longest one.
    // The warm-up read moves the TLS handshake to DynamoDB out of the first request.
    let (_, tokens, keys, public_keys, hmac_secret) = tokio::join!(
        store.login_failures("warm-up"),
        cold.token_settings(),
        cold.token_keys(true, SIGNER_REFRESH_SECS, store.clone()),
        cold.jwks_keys(JWKS_REFRESH_SECS, store.clone()),
        NeedsSecret::<LoginService>::first_fetch(&hmac_source, &cold.sdk_config),
    );
    let (tokens, keys, public_keys) = (tokens?, keys?, public_keys?);
    let hasher = Arc::new(PasswordHasher::new());
    let config = &cold.config;
    let (session_max_secs, source_failure_limit) =
        (config.session_max_secs, config.login_source_failure_limit);
    let cors = config.cors.clone();
    let second_factor_rule = config.second_factor_rule.clone();
    let unavailable_cors = cors.clone();
    let service = NeedsSecret::after_first_fetch(
        hmac_secret?,
        hmac_source,
        cold.sdk_config.clone(),
        move |secret| LoginService {
            store: store.clone(),
            hasher: hasher.clone(),
            issuer: TokenIssuer::new(keys.clone(), tokens.clone()),
            refresh_ttl_secs: DEFAULT_REFRESH_TTL_SECS,
            session_max_secs,
            clock: Clock::system(),
            devices: DeviceTokens::new(secret),
            second_factor: SecondFactorKeys::new(secret),
            source_failure_limit,
            public_keys: public_keys.clone(),
            cors: cors.clone(),
            second_factor_rule: second_factor_rule.clone(),
        },
    );
    run(service_fn(|request| {
        service.respond(&unavailable_cors, |service| login::handle(request, service))
    }))
    .await
}
