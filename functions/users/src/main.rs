use jwt_auth_core::cursor::CursorCodec;
use jwt_auth_core::password::PasswordHasher;
use jwt_auth_core::runtime::ColdStart;
use jwt_auth_core::store::dynamodb::DynamoUserStore;
use lambda_http::{Error, run, service_fn};
use std::sync::Arc;
use users::UsersService;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let cold = ColdStart::load().await?;
    let service = UsersService {
        store: Arc::new(DynamoUserStore::new(
            cold.dynamodb_client(),
            cold.config.users_table.clone(),
        )),
        cursors: CursorCodec::new(&cold.secret),
        hasher: Arc::new(PasswordHasher::new()),
    };
    run(service_fn(|request| users::handle(request, &service))).await
}
