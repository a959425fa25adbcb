//! Cold-start wiring shared by the three functions' `main`: logging, configuration, the AWS
//! SDK configuration and the signing secret, each loaded exactly once.

use crate::config::{Config, ConfigError};
use crate::secret::SigningSecret;

/// What every function loads before serving its first request.
pub struct ColdStart {
    pub config: Config,
    pub sdk_config: aws_config::SdkConfig,
    pub secret: SigningSecret,
}

impl ColdStart {
    /// Sets up logging, then reads the environment and the signing secret. Any failure stops
    /// the function from starting (fail closed) with the reason in the log.
    pub async fn load() -> Result<Self, ConfigError> {
        crate::telemetry::init();
        let config = Config::from_env()
            .inspect_err(|err| tracing::error!(error = %err, "bad configuration"))?;
        let sdk_config = config.aws_sdk_config().await;
        let secret = config
            .secret_source
            .resolve(&sdk_config)
            .await
            .inspect_err(
                |err| tracing::error!(error = %crate::error::error_chain(err), "no signing secret"),
            )?;
        Ok(Self {
            config,
            sdk_config,
            secret,
        })
    }

    pub fn dynamodb_client(&self) -> aws_sdk_dynamodb::Client {
        self.config.dynamodb_client(&self.sdk_config)
    }
}
