//! Second factors and sign-in challenges, in memory.

use super::*;
use crate::crypto::recovery_codes::RecoveryCodeHash;
use crate::store::second_factor::{
    FactorState, SecondFactor, SecondFactorStore, SignInProof, SignInSpend,
};

#[async_trait::async_trait]
impl SecondFactorStore for MemoryUserStore {
    async fn second_factor(
        &self,
        user_id: &str,
        now: u64,
    ) -> Result<Option<SecondFactor>, StoreError> {
        Ok(self
            .read()
            .second_factors
            .get(user_id)
            .filter(|factor| factor.expires_at.is_none_or(|expires_at| now < expires_at))
            .cloned())
    }

    async fn start_enrolment(
        &self,
        user_id: &str,
        sealed_secret: &str,
        expires_at: u64,
        _now: u64,
        actor: Actor<'_>,
    ) -> Result<bool, StoreError> {
        let mut state = self.write();
        state.check(actor)?;
        if state
            .second_factors
            .get(user_id)
            .is_some_and(|factor| factor.state == FactorState::Active)
        {
            return Ok(false);
        }
        state.second_factors.insert(
            user_id.to_string(),
            SecondFactor {
                user_id: user_id.to_string(),
                state: FactorState::Pending,
                sealed_secret: sealed_secret.to_string(),
                last_step: None,
                recovery_codes: Vec::new(),
                expires_at: Some(expires_at),
            },
        );
        Ok(true)
    }

    async fn activate_factor(
        &self,
        user_id: &str,
        sealed_secret: &str,
        step: u64,
        recovery_codes: &[RecoveryCodeHash],
        now: u64,
        actor: Actor<'_>,
    ) -> Result<bool, StoreError> {
        let mut state = self.write();
        state.check(actor)?;
        let Some(factor) = state.second_factors.get_mut(user_id) else {
            return Ok(false);
        };
        let pending = factor.state == FactorState::Pending
            && factor.sealed_secret == sealed_secret
            && factor.expires_at.is_some_and(|expires_at| now < expires_at);
        if !pending {
            return Ok(false);
        }
        factor.state = FactorState::Active;
        factor.last_step = Some(step);
        factor.recovery_codes = recovery_codes.to_vec();
        factor.expires_at = None;
        Ok(true)
    }

    async fn spend_step(
        &self,
        user_id: &str,
        sealed_secret: &str,
        step: u64,
    ) -> Result<bool, StoreError> {
        let mut state = self.write();
        let Some(factor) = state.second_factors.get_mut(user_id) else {
            return Ok(false);
        };
        let spendable = factor.state == FactorState::Active
            && factor.sealed_secret == sealed_secret
            && factor.last_step.is_none_or(|last| step > last);
        if spendable {
            factor.last_step = Some(step);
        }
        Ok(spendable)
    }

    async fn remove_factor(&self, user_id: &str, actor: Actor<'_>) -> Result<(), StoreError> {
        let mut state = self.write();
        state.check(actor)?;
        state.second_factors.remove(user_id);
        Ok(())
    }

    async fn spend_sign_in(
        &self,
        user_id: &str,
        proof: SignInProof<'_>,
        challenge_id: &str,
        challenge_expires_at: u64,
    ) -> Result<SignInSpend, StoreError> {
        // Under one lock, as DynamoDB's transaction: the challenge first (a used one spends
        // nothing, whatever the proof), then the proof, then both written.
        let mut state = self.write();
        if state.challenges.contains_key(challenge_id) {
            return Ok(SignInSpend::ChallengeUsed);
        }
        let Some(factor) = state
            .second_factors
            .get_mut(user_id)
            .filter(|factor| factor.state == FactorState::Active)
        else {
            return Ok(SignInSpend::ProofRefused);
        };
        match proof {
            SignInProof::Step {
                sealed_secret,
                step,
            } => {
                let spendable = factor.sealed_secret == sealed_secret
                    && factor.last_step.is_none_or(|last| step > last);
                if !spendable {
                    return Ok(SignInSpend::ProofRefused);
                }
                factor.last_step = Some(step);
            }
            SignInProof::RecoveryCode(code) => {
                let Some(index) = factor.recovery_codes.iter().position(|left| left == code) else {
                    return Ok(SignInSpend::ProofRefused);
                };
                factor.recovery_codes.remove(index);
            }
        }
        // What DynamoDB's TTL does: challenges past their expiry go (the map stays bounded
        // by the challenges of the last few minutes).
        let now =
            challenge_expires_at.saturating_sub(crate::sessions::challenge::CHALLENGE_TTL_SECS);
        state.challenges.retain(|_, kept_until| *kept_until > now);
        state
            .challenges
            .insert(challenge_id.to_string(), challenge_expires_at);
        Ok(SignInSpend::Spent)
    }
}
