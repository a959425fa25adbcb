use jwt_auth_core::clock::Clock;
use jwt_auth_core::cursor::CursorCodec;
use jwt_auth_core::password::PasswordHasher;
use jwt_auth_core::runtime::{ColdStart, NeedsSecret};
use jwt_auth_core::store::UserStore;
use jwt_auth_core::store::dynamodb::DynamoUserStore;
use lambda_http::{Error, run, service_fn};
use std::sync::Arc;
use users::UsersService;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let cold = ColdStart::load().await?;
    jwt_auth_core::audit::init(&cold.config.metrics_namespace, "users");
    let store = DynamoUserStore::new(cold.dynamodb_client(), cold.config.users_table.clone());
    // One cheap read now moves the TLS handshake to DynamoDB out of the first request.
    let _ = store.get_user(&"0".repeat(32)).await;
    let store = Arc::new(store);
    let hasher = Arc::new(PasswordHasher::new());
    let cors = cold.config.cors.clone();
    let unavailable_cors = cors.clone();
    let service = NeedsSecret::start(
        cold.config.hmac_secret()?,
        cold.sdk_config.clone(),
        move |secret| UsersService {
            store: store.clone(),
            cursors: CursorCodec::new(secret),
            hasher: hasher.clone(),
            clock: Clock::system(),
            cors: cors.clone(),
        },
    )
    .await?;
    run(service_fn(|request| {
        service.respond(&unavailable_cors, |service| users::handle(request, service))
    }))
    .await
}
