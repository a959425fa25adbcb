//! The second-factor aggregate: a user's TOTP factor (sealed secret, the last time step
//! spent, the hashes of the recovery codes left) and the single-use sign-in challenges.
//! Kept apart from the user's items: login's first step reads the user, and only a user
//! who passed it has this item read.

use super::{Actor, StoreError};
use crate::crypto::recovery_codes::RecoveryCodeHash;

/// Where an enrolment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorState {
    /// Started, not yet confirmed with a first code: sign-in does not ask for it. Lapses
    /// at `expires_at`.
    Pending,
    /// Confirmed: sign-in asks for a code or a recovery code.
    Active,
}

/// A user's TOTP factor as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SecondFactor {
    pub user_id: String,
    pub state: FactorState,
    /// The TOTP secret, sealed for this user ([`crate::crypto::sealing`]).
    pub sealed_secret: String,
    /// The last time step a code was accepted for; a code of this step or any earlier one
    /// is refused.
    pub last_step: Option<u64>,
    /// The hashes of the recovery codes not yet used.
    pub recovery_codes: Vec<RecoveryCodeHash>,
    /// A pending enrolment lapses then; `None` once active.
    pub expires_at: Option<u64>,
}

impl std::fmt::Debug for SecondFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecondFactor")
            .field("user_id", &self.user_id)
            .field("state", &self.state)
            .field("last_step", &self.last_step)
            .field("recovery_codes_left", &self.recovery_codes.len())
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What a second step spends, beside its challenge.
#[derive(Debug, Clone, Copy)]
pub enum SignInProof<'a> {
    /// A TOTP step of the active factor holding `sealed_secret`.
    Step { sealed_secret: &'a str, step: u64 },
    /// One of the recovery codes left.
    RecoveryCode(&'a RecoveryCodeHash),
}

/// How [`SecondFactorStore::spend_sign_in`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInSpend {
    /// The proof and the challenge are spent.
    Spent,
    /// The step was not later than the last one, or the code not left (or no active
    /// factor): nothing was written.
    ProofRefused,
    /// The challenge was used before: nothing was written.
    ChallengeUsed,
}

/// The store of second factors. Every write that spends something (a step, a recovery code,
/// a challenge) is one conditional write: of parallel requests spending the same thing,
/// exactly one gets `true`.
#[async_trait::async_trait]
pub trait SecondFactorStore: Send + Sync {
    /// The user's factor, strongly consistent; a pending one past its `expires_at` is
    /// `None` (the table's TTL removes it some time later).
    async fn second_factor(
        &self,
        user_id: &str,
        now: u64,
    ) -> Result<Option<SecondFactor>, StoreError>;

    /// Starts an enrolment: a pending factor with `sealed_secret`, replacing any pending
    /// one, until `expires_at`. `false` (nothing written) if an active factor exists.
    /// [`StoreError::CallerRevoked`] if `actor` no longer stands.
    async fn start_enrolment(
        &self,
        user_id: &str,
        sealed_secret: &str,
        expires_at: u64,
        now: u64,
        actor: Actor<'_>,
    ) -> Result<bool, StoreError>;

    /// Confirms the pending enrolment holding `sealed_secret`: it becomes active, with
    /// `step` spent and `recovery_codes` stored. `false` (nothing written) if there is no
    /// such pending enrolment at `now` (lapsed, replaced, already confirmed).
    async fn activate_factor(
        &self,
        user_id: &str,
        sealed_secret: &str,
        step: u64,
        recovery_codes: &[RecoveryCodeHash],
        now: u64,
        actor: Actor<'_>,
    ) -> Result<bool, StoreError>;

    /// Spends `step` of the active factor holding `sealed_secret`: `true` only if it is
    /// later than the last step spent.
    async fn spend_step(
        &self,
        user_id: &str,
        sealed_secret: &str,
        step: u64,
    ) -> Result<bool, StoreError>;

    /// Removes the user's factor, pending or active (turned off, or reset by an admin).
    /// Removing none is not an error.
    async fn remove_factor(&self, user_id: &str, actor: Actor<'_>) -> Result<(), StoreError>;

    /// A sign-in's second step, spent whole or not at all: `proof` (a step later than the
    /// last one spent, or a recovery code left) and the challenge `challenge_id` (kept
    /// until `challenge_expires_at`), in one conditional write. A challenge already used
    /// is [`SignInSpend::ChallengeUsed`] whatever the proof, and spends nothing: a double
    /// submit wastes no code.
    async fn spend_sign_in(
        &self,
        user_id: &str,
        proof: SignInProof<'_>,
        challenge_id: &str,
        challenge_expires_at: u64,
    ) -> Result<SignInSpend, StoreError>;
}
