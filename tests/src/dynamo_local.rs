//! DynamoDB Local for tests: a fresh table per test, so store tests run in parallel and
//! never see each other's users.
//!
//! `make test` starts DynamoDB Local and exports `DYNAMODB_ENDPOINT`. Without it the tests
//! fail loudly: a store suite that silently skips would pass without testing anything.

use jwt_auth_core::startup::aws::local_dynamodb_client;
use jwt_auth_core::store::dynamodb::create_table;

/// The environment variable naming DynamoDB Local's URL, e.g. `http://127.0.0.1:8123`.
pub const ENDPOINT_VAR: &str = "DYNAMODB_ENDPOINT";

/// A client for DynamoDB Local and the name of a new, empty users table built like the one
/// in `template.yaml`. Panics (failing the test) if `DYNAMODB_ENDPOINT` is unset or
/// DynamoDB Local does not answer.
pub async fn fresh_table() -> (aws_sdk_dynamodb::Client, String) {
    let endpoint = std::env::var(ENDPOINT_VAR)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| {
            panic!("{ENDPOINT_VAR} is not set: run `make test`, which starts DynamoDB Local")
        });
    let client = local_dynamodb_client(&endpoint);
    // 64 random bits: unique across the tests of one run and across runs on a shared
    // DynamoDB Local.
    let table = format!(
        "users-test-{}",
        &jwt_auth_core::users::user::new_user_id()[..16]
    );
    if let Err(err) = create_table(&client, &table).await {
        panic!(
            "could not create table {table} on DynamoDB Local at {endpoint}: {}",
            jwt_auth_core::web::error::error_chain(&err)
        );
    }
    (client, table)
}
