//! moto's server mode standing in for Secrets Manager and SSM: `make test` starts it
//! and exports `MOTO_ENDPOINT`. Without it these tests fail loudly rather than skip.

/// The environment variable naming moto's URL, e.g. `http://127.0.0.1:8124`.
pub const ENDPOINT_VAR: &str = "MOTO_ENDPOINT";

/// An SDK configuration for moto, built as the functions build theirs on Lambda
/// ([`jwt_auth_core::startup::aws`]): a fixed region, dummy credentials, and moto's URL as
/// `AWS_ENDPOINT_URL_SECRETS_MANAGER` and `AWS_ENDPOINT_URL_SSM`.
pub fn sdk_config() -> aws_config::SdkConfig {
    let endpoint = std::env::var(ENDPOINT_VAR)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| panic!("{ENDPOINT_VAR} is not set: run `make test`, which starts moto"));
    jwt_auth_core::startup::aws::sdk_config_from_env(|name| {
        match name {
            "AWS_REGION" => Some("us-east-1"),
            "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" => Some("local"),
            "AWS_ENDPOINT_URL_SECRETS_MANAGER" | "AWS_ENDPOINT_URL_SSM" => Some(endpoint.as_str()),
            _ => None,
        }
        .map(String::from)
    })
}

/// A new secret holding `value` (a name unique to the test); answers its ARN.
pub async fn create_secret(client: &aws_sdk_secretsmanager::Client, value: &str) -> String {
    let name = format!("test-{}", &jwt_auth_core::users::user::new_user_id()[..16]);
    client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap_or_else(|err| panic!("moto CreateSecret: {err:?}"))
        .arn
        .expect("an ARN")
}

/// An SSM parameter path of the caller's own, e.g. `/test-0a1b2c3d4e5f/permissions`.
pub fn fresh_parameter_path() -> String {
    format!(
        "/test-{}/permissions",
        &jwt_auth_core::users::user::new_user_id()[..12]
    )
}

/// Puts (or overwrites) the `String` parameter `name`.
pub async fn put_parameter(client: &aws_sdk_ssm::Client, name: &str, value: &str) {
    client
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .unwrap_or_else(|err| panic!("moto PutParameter {name}: {err:?}"));
}
