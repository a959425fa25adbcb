//! The Secrets Manager rotation function of the token key set: Secrets Manager invokes it
//! four times per rotation (`createSecret`, `setSecret`, `testSecret`, `finishSecret`),
//! on the schedule of `KeyRotationDays` and on `aws secretsmanager rotate-secret`. The
//! steps and the timeline are in [`jwt_auth_core::crypto::keys::rotation`].

use jwt_auth_core::crypto::keys::rotation::{KeyRotation, RotationError, Step};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Deserialize;

/// What Secrets Manager sends.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotationEvent {
    pub secret_id: String,
    pub client_request_token: String,
    pub step: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RotationFailure {
    #[error("not this deployment's key set: {0}")]
    OtherSecret(String),
    #[error("unknown rotation step {0}")]
    UnknownStep(String),
    #[error("{0}")]
    Step(String),
}

impl From<RotationFailure> for Diagnostic {
    fn from(failure: RotationFailure) -> Self {
        Diagnostic {
            error_type: "RotationFailed".into(),
            error_message: failure.to_string(),
        }
    }
}

/// Runs one step for `rotation`, whose secret is `secret_arn`, at `now`. A failed step is
/// an error, which makes Secrets Manager retry it (every step is idempotent).
pub async fn rotate(
    event: &RotationEvent,
    rotation: &KeyRotation,
    secret_arn: &str,
    now: u64,
) -> Result<(), RotationFailure> {
    // Only the secret this function was deployed for: a rotation of anything else (a
    // misconfigured schedule) must not be answered with a key set.
    if event.secret_id != secret_arn {
        return Err(RotationFailure::OtherSecret(event.secret_id.clone()));
    }
    let step =
        Step::parse(&event.step).ok_or_else(|| RotationFailure::UnknownStep(event.step.clone()))?;
    tracing::info!(?step, "rotation step");
    rotation
        .run(step, &event.client_request_token, now)
        .await
        .map_err(|err: RotationError| {
            tracing::error!(?step, error = %jwt_auth_core::web::error::error_chain(&err), "rotation step failed");
            RotationFailure::Step(format!("{step:?} failed"))
        })
}

pub async fn handle(
    event: LambdaEvent<RotationEvent>,
    rotation: &KeyRotation,
    secret_arn: &str,
) -> Result<(), RotationFailure> {
    rotate(
        &event.payload,
        rotation,
        secret_arn,
        jwt_auth_core::startup::clock::unix_now(),
    )
    .await
}
