use jwt_auth_core::startup::aws::{dynamodb_client, sdk_config_from_env};
use jwt_auth_core::startup::clock::Clock;
use jwt_auth_core::store::UserStore;
use jwt_auth_core::store::dynamodb::DynamoUserStore;
use lambda_http::{Error, run, service_fn};
use orders_example::dynamodb::DynamoOrders;
use orders_example::{OrderStore, OrdersService, handle};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    jwt_auth_core::startup::telemetry::init();
    let env = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|value| !value.trim().is_empty())
    };
    let sdk_config = sdk_config_from_env(|name| std::env::var(name).ok());
    let client = dynamodb_client(&sdk_config);
    let orders_table =
        env("ORDERS_TABLE").ok_or("environment variable ORDERS_TABLE is required")?;
    let orders: Arc<dyn OrderStore> = Arc::new(DynamoOrders::new(client.clone(), orders_table));
    // The auth stack's users table, for the per-request re-check (optional).
    let revocation = env("AUTH_USERS_TABLE")
        .map(|table| Arc::new(DynamoUserStore::new(client, table)) as Arc<dyn UserStore>);
    let second_factor_rule =
        OrdersService::second_factor_rule_from(std::env::var("MFA_REQUIRED_ROLES").ok().as_deref())
            .map_err(|reason| {
                format!("environment variable MFA_REQUIRED_ROLES is invalid: {reason}")
            })?;
    let service = OrdersService {
        orders,
        revocation,
        clock: Clock::system(),
        second_factor_rule,
    };
    run(service_fn(|request| handle(request, &service))).await
}
