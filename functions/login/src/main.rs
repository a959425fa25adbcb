use jwt_auth_core::clock::Clock;
use jwt_auth_core::device::DeviceTokens;
use jwt_auth_core::login::{DEFAULT_REFRESH_TTL_SECS, LoginService};
use jwt_auth_core::password::PasswordHasher;
use jwt_auth_core::runtime::ColdStart;
use jwt_auth_core::store::SessionStore;
use jwt_auth_core::store::dynamodb::DynamoUserStore;
use jwt_auth_core::token::{TokenIssuer, TokenKeys};
use lambda_http::{Error, run, service_fn};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let cold = ColdStart::load().await?;
    let store = DynamoUserStore::new(cold.dynamodb_client(), cold.config.users_table.clone());
    // One cheap read now moves the TLS handshake to DynamoDB out of the first request.
    let _ = store.login_failures("warm-up").await;
    let service = LoginService {
        store: Arc::new(store),
        hasher: Arc::new(PasswordHasher::new()),
        issuer: TokenIssuer::new(
            Arc::new(TokenKeys::hs256(&cold.secret)),
            cold.config.tokens.clone(),
        ),
        refresh_ttl_secs: DEFAULT_REFRESH_TTL_SECS,
        session_max_secs: cold.config.session_max_secs,
        clock: Clock::system(),
        devices: DeviceTokens::new(&cold.secret),
        source_failure_limit: cold.config.login_source_failure_limit,
    };
    run(service_fn(|request| login::handle(request, &service))).await
}
