use jwt_auth_core::crypto::password::PasswordHasher;
use jwt_auth_core::startup::clock::Clock;
use jwt_auth_core::startup::cold_start::{ColdStart, NeedsSecret};
use jwt_auth_core::store::UserStore;
use jwt_auth_core::users::cursor::CursorCodec;
use lambda_http::{Error, run, service_fn};
use std::sync::Arc;
use users::UsersService;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let cold = ColdStart::load("users").await?;
    let store = cold.store();
    let hmac_source = cold.config.hmac_secret()?;
    // The secret and one cheap read (which moves the TLS handshake to DynamoDB out of the
    // first request) at once.
    let nobody = "0".repeat(32);
    let (_, hmac_secret) = tokio::join!(
        store.get_user(&nobody),
        NeedsSecret::<UsersService>::first_fetch(&hmac_source, &cold.sdk_config),
    );
    let hasher = Arc::new(PasswordHasher::new());
    let cors = cold.config.cors.clone();
    let roles = cold.config.roles.clone();
    let second_factor_rule = cold.config.second_factor_rule.clone();
    let unavailable_cors = cors.clone();
    let service = NeedsSecret::after_first_fetch(
        hmac_secret?,
        hmac_source,
        cold.sdk_config.clone(),
        move |secret| UsersService {
            store: store.clone(),
            cursors: CursorCodec::new(secret),
            hasher: hasher.clone(),
            clock: Clock::system(),
            cors: cors.clone(),
            roles: roles.clone(),
            second_factor_rule: second_factor_rule.clone(),
        },
    );
    run(service_fn(|request| {
        service.respond(&unavailable_cors, |service| users::handle(request, service))
    }))
    .await
}
