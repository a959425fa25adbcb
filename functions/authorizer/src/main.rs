use authorizer::handle;
use jwt_auth_core::runtime::ColdStart;
use jwt_auth_core::store::dynamodb::DynamoUserStore;
use jwt_auth_core::token::{TokenKeys, TokenVerifier};
use lambda_runtime::{Error, run, service_fn};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let cold = ColdStart::load().await?;
    let verifier = TokenVerifier::new(
        Arc::new(TokenKeys::hs256(&cold.secret)),
        &cold.config.tokens,
    );
    let store = DynamoUserStore::new(cold.dynamodb_client(), cold.config.users_table.clone());
    run(service_fn(|event| handle(event, &verifier, &store))).await
}
