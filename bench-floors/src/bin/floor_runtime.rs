//! The first floor of the cold-start bench: a `lambda_runtime` bootstrap that answers
//! every event with itself. What any Rust function pays before its own work.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
