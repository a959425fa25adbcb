//! Logging setup shared by the functions: JSON lines (CloudWatch-friendly), level from
//! `RUST_LOG` (default `info`). Nothing logged anywhere includes a password or a raw token.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

pub fn init() {
    let filter = log_filter(|name| std::env::var(name).ok());
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(false)
                .with_ansi(false)
                .without_time() // CloudWatch stamps every line already
                .with_target(false),
        )
        .with(filter)
        .try_init();
}

/// The filter of `RUST_LOG`, else of Lambda's `AWS_LAMBDA_LOG_LEVEL`, else `info`: a level
/// and per-target levels (`info,jwt_auth_core=debug`). `Targets` rather than `EnvFilter`,
/// whose span and field matching pulls in a regex engine (~0.3 MB of every bootstrap) for
/// filters nobody sets on a Lambda function. A filter that does not parse falls back to
/// `info` rather than silencing the function.
fn log_filter(lookup: impl Fn(&str) -> Option<String>) -> Targets {
    ["RUST_LOG", "AWS_LAMBDA_LOG_LEVEL"]
        .into_iter()
        .find_map(|name| lookup(name).filter(|value| !value.trim().is_empty()))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;
    use tracing_subscriber::filter::LevelFilter;

    fn filter(vars: &[(&str, &str)]) -> Targets {
        log_filter(crate::startup::config::test_env(vars))
    }

    #[test]
    fn info_unless_told_otherwise() {
        let default = filter(&[]);
        assert!(default.would_enable("jwt_auth_core", &Level::INFO));
        assert!(!default.would_enable("jwt_auth_core", &Level::DEBUG));
        assert_eq!(default.default_level(), Some(LevelFilter::INFO));
    }

    #[test]
    fn rust_log_wins_over_lambdas_level_and_targets_work() {
        let both = filter(&[
            ("RUST_LOG", "warn,jwt_auth_core=debug"),
            ("AWS_LAMBDA_LOG_LEVEL", "TRACE"),
        ]);
        assert!(both.would_enable("jwt_auth_core::sessions::login", &Level::DEBUG));
        assert!(!both.would_enable("aws_smithy_runtime", &Level::INFO));
        let lambda = filter(&[("AWS_LAMBDA_LOG_LEVEL", "ERROR")]);
        assert!(!lambda.would_enable("login", &Level::WARN));
        assert!(lambda.would_enable("login", &Level::ERROR));
    }

    #[test]
    fn a_filter_that_does_not_parse_keeps_info() {
        let garbled = filter(&[("RUST_LOG", "info,jwt_auth_core=loud")]);
        assert!(garbled.would_enable("login", &Level::INFO));
        assert!(!garbled.would_enable("login", &Level::DEBUG));
    }
}
