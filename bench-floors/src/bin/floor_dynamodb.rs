//! The second floor of the cold-start bench, and the one our functions are measured
//! against: a `lambda_runtime` bootstrap that builds a DynamoDB client the cheapest way
//! (region, credentials and endpoint given, as Lambda gives them in the environment) and
//! makes one GetItem before it serves, as each of our functions warms its connection.

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::AttributeValue;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let env = |name: &str| std::env::var(name).unwrap_or_default();
    let mut config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(env("AWS_REGION")))
        .credentials_provider(Credentials::new(
            env("AWS_ACCESS_KEY_ID"),
            env("AWS_SECRET_ACCESS_KEY"),
            std::env::var("AWS_SESSION_TOKEN").ok(),
            None,
            "environment",
        ));
    if let Ok(endpoint) = std::env::var("DYNAMODB_ENDPOINT") {
        config = config.endpoint_url(endpoint);
    }
    let client = aws_sdk_dynamodb::Client::from_conf(config.build());
    client
        .get_item()
        .table_name(env("USERS_TABLE"))
        .key("pk", AttributeValue::S("USER#warm-up".into()))
        .send()
        .await?;
    run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
