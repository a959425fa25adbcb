//! The AWS SDK configuration as Lambda hands it over: the region, the execution role's
//! credentials and any endpoint overrides are all in the environment, so the functions
//! build it from there and do not link `aws-config`.
//!
//! `aws-config`'s loader walks provider chains Lambda never needs (profile files, SSO,
//! IMDS, ECS, web identity through STS) and links the STS client whatever the features:
//! ~0.6 MB of every bootstrap and a few milliseconds of every cold start (`make bench`).
//! The CLI and the local gateway, which run on people's machines, keep `aws-config`.

use crate::startup::config::ConfigError;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use aws_types::SdkConfig;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};
use std::collections::HashMap;
use std::time::Duration;

/// The SDK configuration from the variables `lookup` answers (the process environment in
/// the functions): `AWS_REGION` (or `AWS_DEFAULT_REGION`), `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, and the SDK's endpoint overrides
/// `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` (e.g. `..._SECRETS_MANAGER`).
///
/// Missing credentials or region are not an error here: a deployment that calls no AWS
/// service (DynamoDB Local, inline keys) needs neither, and a call without them fails with
/// the SDK's own error, which stops the cold start (fail closed) with the reason logged.
pub fn sdk_config_from_env(lookup: impl Fn(&str) -> Option<String>) -> SdkConfig {
    let var = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
    let mut builder = SdkConfig::builder().behavior_version(BehaviorVersion::latest());
    if let Some(region) = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")) {
        builder.set_region(Some(Region::new(region)));
    }
    if let (Some(access_key_id), Some(secret_access_key)) =
        (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
    {
        let credentials = Credentials::new(
            access_key_id,
            secret_access_key,
            var("AWS_SESSION_TOKEN"),
            None,
            "LambdaEnvironment",
        );
        builder.set_credentials_provider(Some(SharedCredentialsProvider::new(credentials)));
    }
    // FIPS and dual-stack endpoints, as the SDKs read them: a deployment that asks for
    // FIPS must not silently get the standard endpoints.
    let flag = |name: &str| var(name).map(|value| value.trim().eq_ignore_ascii_case("true"));
    builder.set_use_fips(flag("AWS_USE_FIPS_ENDPOINT"));
    builder.set_use_dual_stack(flag("AWS_USE_DUALSTACK_ENDPOINT"));
    let endpoints = EndpointOverrides::from_lookup(&var);
    if !endpoints.0.is_empty() {
        builder.set_service_config(Some(endpoints));
    }
    builder.build()
}

/// An SSM client from `sdk_config`, with timeouts: the SDK sets none, and an SSM that never
/// answers would otherwise hold a cold start, or the request that happens to re-read the
/// permissions documents, until the Lambda timeout.
pub fn ssm_client(sdk_config: &SdkConfig) -> aws_sdk_ssm::Client {
    let timeouts = aws_sdk_ssm::config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(4))
        .build();
    let config = aws_sdk_ssm::config::Builder::from(sdk_config)
        .timeout_config(timeouts)
        .build();
    aws_sdk_ssm::Client::from_conf(config)
}

/// Refuses to start a function that calls AWS (`calls_aws`) without a region or
/// credentials in its environment: named now, at cold start, rather than as an SDK error on
/// the first call. (Lambda always sets them; a runtime that hands credentials some other
/// way, such as a container credentials endpoint, is not one these functions support.)
pub fn check_usable(config: &SdkConfig, calls_aws: bool) -> Result<(), ConfigError> {
    if !calls_aws {
        return Ok(());
    }
    if config.region().is_none() {
        return Err(ConfigError::Missing("AWS_REGION"));
    }
    if config.credentials_provider().is_none() {
        return Err(ConfigError::Missing("AWS_ACCESS_KEY_ID"));
    }
    Ok(())
}

/// `AWS_ENDPOINT_URL_<SERVICE>` over `AWS_ENDPOINT_URL`, as the SDKs define them; each
/// client asks for its own when it is built from the [`SdkConfig`].
#[derive(Debug, Default)]
struct EndpointOverrides(HashMap<String, String>);

/// The services the functions call, by the SDK's service id.
const SERVICE_IDS: [&str; 3] = ["DynamoDB", "Secrets Manager", "SSM"];

impl EndpointOverrides {
    fn from_lookup(var: &impl Fn(&str) -> Option<String>) -> Self {
        let names = SERVICE_IDS
            .iter()
            .map(|id| env_name("AWS_ENDPOINT_URL", id))
            .chain(["AWS_ENDPOINT_URL".to_string()]);
        Self(
            names
                .filter_map(|name| var(&name).map(|value| (name, value)))
                .collect(),
        )
    }
}

impl LoadServiceConfig for EndpointOverrides {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        self.0
            .get(&env_name(key.env(), key.service_id()))
            .or_else(|| self.0.get(key.env()))
            .cloned()
    }
}

/// `AWS_ENDPOINT_URL` + `Secrets Manager` -> `AWS_ENDPOINT_URL_SECRETS_MANAGER`.
fn env_name(base: &str, service_id: &str) -> String {
    format!(
        "{base}_{}",
        service_id.to_ascii_uppercase().replace(' ', "_")
    )
}

/// A client for DynamoDB Local at `endpoint` (e.g. `http://127.0.0.1:8000`): region
/// us-east-1 and fixed dummy credentials. DynamoDB Local does not check credentials, but
/// with `-sharedDb` off it keys tables by access key and region, so fixed values make every
/// tool see the same tables. Never use this against AWS.
pub fn local_dynamodb_client(endpoint: &str) -> Client {
    let config = aws_sdk_dynamodb::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "static"))
        .endpoint_url(endpoint)
        // DynamoDB Local on a busy test machine (a JVM, GC pauses) is slower than DynamoDB.
        .timeout_config(timeouts(Duration::from_secs(3), Duration::from_secs(6)))
        .build();
    Client::from_conf(config)
}

/// The DynamoDB client on AWS: the SDK's configuration with our timeouts.
pub fn dynamodb_client(sdk_config: &aws_types::SdkConfig) -> Client {
    let config = aws_sdk_dynamodb::config::Builder::from(sdk_config)
        .timeout_config(timeouts(Duration::from_secs(1), Duration::from_secs(3)))
        .build();
    Client::from_conf(config)
}

/// Bounds on one DynamoDB call: the SDK sets none by default, so a DynamoDB that accepts a
/// connection and never answers would hold a request until the Lambda timeout (a 502 from
/// API Gateway). With these, each attempt and the call as a whole (retries included) give
/// up in time for the request to be answered 503 with `Retry-After`.
fn timeouts(attempt: Duration, operation: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(attempt)
        .operation_attempt_timeout(attempt)
        .operation_timeout(operation)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::startup::config::test_env as lookup;
    use aws_sdk_dynamodb::config::ProvideCredentials;

    #[tokio::test]
    async fn region_and_credentials_come_from_lambdas_variables() {
        let config = sdk_config_from_env(lookup(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret-example"),
            ("AWS_SESSION_TOKEN", "session-example"),
        ]));
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        let credentials = config
            .credentials_provider()
            .expect("a provider")
            .provide_credentials()
            .await
            .unwrap();
        assert_eq!(credentials.access_key_id(), "AKIDEXAMPLE");
        assert_eq!(credentials.secret_access_key(), "secret-example");
        assert_eq!(credentials.session_token(), Some("session-example"));
        // The secret never reaches Debug output (logs of the configuration).
        let debug = format!("{config:?}");
        assert!(!debug.contains("secret-example") && !debug.contains("session-example"));
    }

    #[test]
    fn fips_and_dual_stack_are_honoured() {
        let config = sdk_config_from_env(lookup(&[
            ("AWS_USE_FIPS_ENDPOINT", "TRUE"),
            ("AWS_USE_DUALSTACK_ENDPOINT", "false"),
        ]));
        assert_eq!(config.use_fips(), Some(true));
        assert_eq!(config.use_dual_stack(), Some(false));
        let unset = sdk_config_from_env(lookup(&[]));
        assert_eq!(unset.use_fips(), None);
    }

    #[test]
    fn nothing_set_leaves_region_and_credentials_unset() {
        let config = sdk_config_from_env(lookup(&[("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")]));
        assert!(config.region().is_none());
        assert!(config.credentials_provider().is_none());
        assert!(config.service_config().is_none());
    }

    #[test]
    fn a_function_that_calls_aws_needs_a_region_and_credentials() {
        let complete = sdk_config_from_env(lookup(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret-example"),
        ]));
        assert!(check_usable(&complete, true).is_ok());
        let no_credentials = sdk_config_from_env(lookup(&[("AWS_REGION", "eu-west-1")]));
        assert!(matches!(
            check_usable(&no_credentials, true),
            Err(ConfigError::Missing("AWS_ACCESS_KEY_ID"))
        ));
        let no_region = sdk_config_from_env(lookup(&[
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret-example"),
        ]));
        assert!(matches!(
            check_usable(&no_region, true),
            Err(ConfigError::Missing("AWS_REGION"))
        ));
        // DynamoDB Local and inline keys: nothing of AWS is needed.
        assert!(check_usable(&sdk_config_from_env(lookup(&[])), false).is_ok());
    }

    #[test]
    fn a_service_endpoint_overrides_the_global_one() {
        let config = sdk_config_from_env(lookup(&[
            ("AWS_ENDPOINT_URL", "http://everything:1"),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://moto:2"),
        ]));
        let overrides = config.service_config().expect("overrides");
        // The keys exactly as the generated clients ask (`service_config_key` in their
        // `config.rs`); `tests::moto` calls Secrets Manager through this path.
        let key = |service_id| {
            ServiceConfigKey::builder()
                .service_id(service_id)
                .env("AWS_ENDPOINT_URL")
                .profile("endpoint_url")
                .build()
                .unwrap()
        };
        assert_eq!(
            overrides.load_config(key("Secrets Manager")).as_deref(),
            Some("http://moto:2")
        );
        assert_eq!(
            overrides.load_config(key("DynamoDB")).as_deref(),
            Some("http://everything:1")
        );
    }
}
