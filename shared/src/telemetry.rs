//! Logging setup shared by the functions: JSON lines (CloudWatch-friendly), level from
//! `RUST_LOG` (default `info`). Nothing logged anywhere includes a password or a raw token.

pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_ansi(false)
        .without_time() // CloudWatch stamps every line already
        .with_target(false)
        .try_init();
}
