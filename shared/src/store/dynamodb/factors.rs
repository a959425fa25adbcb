//! Second factors (`FACTOR#<user id>`) and sign-in challenges (`CHALLENGE#<id>`).
//!
//! A factor item holds `state` (`pending` or `active`), `sealed_secret`, `last_step` (the
//! last time step spent), `recovery` (a binary set of the recovery-code hashes left; gone
//! when none is) and, while pending, the TTL attribute. Each spend is one conditional
//! write whose condition is the spend's rule, so parallel spends of one step or one code
//! let exactly one through; a sign-in's step or recovery code is spent in one transaction
//! with its challenge (an item that only exists, until the TTL removes it).

use super::*;
use crate::crypto::recovery_codes::RecoveryCodeHash;
use crate::store::second_factor::{
    FactorState, SecondFactor, SecondFactorStore, SignInProof, SignInSpend,
};
use aws_sdk_dynamodb::primitives::Blob;

const PENDING: &str = "pending";
const ACTIVE: &str = "active";

fn state_value(state: FactorState) -> AttributeValue {
    AttributeValue::S(
        match state {
            FactorState::Pending => PENDING,
            FactorState::Active => ACTIVE,
        }
        .into(),
    )
}

fn factor_from_item(item: &Item) -> Result<SecondFactor, StoreError> {
    let text = |name: &str| {
        item.get(name)
            .and_then(|value| value.as_s().ok())
            .cloned()
            .ok_or_else(|| StoreError::backend(format!("second factor item without {name}")))
    };
    let whole = |name: &str| -> Result<Option<u64>, StoreError> {
        item.get(name)
            .map(|value| {
                value
                    .as_n()
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| {
                        StoreError::backend(format!("second factor {name} not a number"))
                    })
            })
            .transpose()
    };
    let state = match text("state")?.as_str() {
        PENDING => FactorState::Pending,
        ACTIVE => FactorState::Active,
        other => {
            return Err(StoreError::backend(format!(
                "second factor in an unknown state {other:?}"
            )));
        }
    };
    let recovery_codes = match item.get("recovery") {
        None => Vec::new(),
        Some(value) => value
            .as_bs()
            .map_err(|_| StoreError::backend("second factor recovery codes not a binary set"))?
            .iter()
            .map(|blob| {
                <[u8; 32]>::try_from(blob.as_ref())
                    .map(RecoveryCodeHash)
                    .map_err(|_| StoreError::backend("a recovery-code hash not 32 bytes"))
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(SecondFactor {
        user_id: text("user_id")?,
        state,
        sealed_secret: text("sealed_secret")?,
        last_step: whole("last_step")?,
        recovery_codes,
        expires_at: match state {
            FactorState::Pending => whole(TTL_ATTRIBUTE)?,
            FactorState::Active => None,
        },
    })
}

impl DynamoUserStore {
    /// `write`, and the checks that `actor` still stands, in one transaction: `Ok(false)`
    /// when `write`'s own condition failed, [`StoreError::CallerRevoked`] when a caller
    /// check did (a revoked caller wins over a failed condition).
    async fn write_for(
        &self,
        write: TransactWriteItem,
        actor: Actor<'_>,
    ) -> Result<bool, StoreError> {
        let mut items = vec![write];
        items.extend(self.caller_checks(actor, false)?);
        match self.transact(items).await? {
            None => Ok(true),
            Some(failed) if failed.last > 0 => Err(StoreError::CallerRevoked),
            Some(_) => Ok(false),
        }
    }

    /// One conditional UpdateItem: `false` when its condition failed.
    async fn conditional_update(
        &self,
        update: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    ) -> Result<bool, StoreError> {
        match update.send().await {
            Ok(_) => Ok(true),
            Err(err) if update_condition_failed(&err) => Ok(false),
            Err(err) => Err(sdk_error(err)),
        }
    }
}

pub(super) fn factor_pk(user_id: &str) -> String {
    format!("{FACTOR_PREFIX}{user_id}")
}

fn challenge_pk(id: &str) -> String {
    format!("{CHALLENGE_PREFIX}{id}")
}

#[async_trait::async_trait]
impl SecondFactorStore for DynamoUserStore {
    async fn second_factor(
        &self,
        user_id: &str,
        now: u64,
    ) -> Result<Option<SecondFactor>, StoreError> {
        let Some(item) = self.get_item(factor_pk(user_id)).await? else {
            return Ok(None);
        };
        let factor = factor_from_item(&item)?;
        Ok(factor
            .expires_at
            .is_none_or(|expires_at| now < expires_at)
            .then_some(factor))
    }

    async fn start_enrolment(
        &self,
        user_id: &str,
        sealed_secret: &str,
        expires_at: u64,
        _now: u64,
        actor: Actor<'_>,
    ) -> Result<bool, StoreError> {
        let item = HashMap::from([
            ("pk".to_string(), AttributeValue::S(factor_pk(user_id))),
            ("user_id".to_string(), AttributeValue::S(user_id.into())),
            ("state".to_string(), state_value(FactorState::Pending)),
            (
                "sealed_secret".to_string(),
                AttributeValue::S(sealed_secret.into()),
            ),
            (TTL_ATTRIBUTE.to_string(), number(expires_at)),
        ]);
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk) OR #state = :pending")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":pending", state_value(FactorState::Pending))
            .build()
            .map_err(StoreError::backend)?;
        self.write_for(TransactWriteItem::builder().put(put).build(), actor)
            .await
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
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(factor_pk(user_id))))
            .condition_expression("#state = :pending AND #sealed = :sealed AND #expires_at > :now")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#sealed", "sealed_secret")
            .expression_attribute_names("#expires_at", TTL_ATTRIBUTE)
            .expression_attribute_names("#last_step", "last_step")
            .expression_attribute_values(":pending", state_value(FactorState::Pending))
            .expression_attribute_values(":active", state_value(FactorState::Active))
            .expression_attribute_values(":sealed", AttributeValue::S(sealed_secret.into()))
            .expression_attribute_values(":now", number(now))
            .expression_attribute_values(":step", number(step));
        // A binary set cannot be empty: no codes, no attribute.
        let expression = if recovery_codes.is_empty() {
            "SET #state = :active, #last_step = :step REMOVE #expires_at"
        } else {
            update = update
                .expression_attribute_names("#recovery", "recovery")
                .expression_attribute_values(
                    ":recovery",
                    AttributeValue::Bs(
                        recovery_codes
                            .iter()
                            .map(|code| Blob::new(code.0.to_vec()))
                            .collect(),
                    ),
                );
            "SET #state = :active, #last_step = :step, #recovery = :recovery REMOVE #expires_at"
        };
        let update = update
            .update_expression(expression)
            .build()
            .map_err(StoreError::backend)?;
        self.write_for(TransactWriteItem::builder().update(update).build(), actor)
            .await
    }

    async fn spend_step(
        &self,
        user_id: &str,
        sealed_secret: &str,
        step: u64,
    ) -> Result<bool, StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(factor_pk(user_id))))
            .update_expression("SET #last_step = :step")
            .condition_expression(
                "#state = :active AND #sealed = :sealed \
                 AND (attribute_not_exists(#last_step) OR #last_step < :step)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#sealed", "sealed_secret")
            .expression_attribute_names("#last_step", "last_step")
            .expression_attribute_values(":active", state_value(FactorState::Active))
            .expression_attribute_values(":sealed", AttributeValue::S(sealed_secret.into()))
            .expression_attribute_values(":step", number(step));
        self.conditional_update(update).await
    }

    async fn remove_factor(&self, user_id: &str, actor: Actor<'_>) -> Result<(), StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(factor_pk(user_id))))
            .build()
            .map_err(StoreError::backend)?;
        self.write_for(TransactWriteItem::builder().delete(delete).build(), actor)
            .await
            .map(|_| ())
    }

    async fn spend_sign_in(
        &self,
        user_id: &str,
        proof: SignInProof<'_>,
        challenge_id: &str,
        challenge_expires_at: u64,
    ) -> Result<SignInSpend, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(factor_pk(user_id))))
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":active", state_value(FactorState::Active));
        let update = match proof {
            SignInProof::Step {
                sealed_secret,
                step,
            } => update
                .update_expression("SET #last_step = :step")
                .condition_expression(
                    "#state = :active AND #sealed = :sealed \
                     AND (attribute_not_exists(#last_step) OR #last_step < :step)",
                )
                .expression_attribute_names("#sealed", "sealed_secret")
                .expression_attribute_names("#last_step", "last_step")
                .expression_attribute_values(":sealed", AttributeValue::S(sealed_secret.into()))
                .expression_attribute_values(":step", number(step)),
            SignInProof::RecoveryCode(code) => {
                let blob = Blob::new(code.0.to_vec());
                update
                    .update_expression("DELETE #recovery :spent")
                    .condition_expression("#state = :active AND contains(#recovery, :code)")
                    .expression_attribute_names("#recovery", "recovery")
                    .expression_attribute_values(":code", AttributeValue::B(blob.clone()))
                    .expression_attribute_values(":spent", AttributeValue::Bs(vec![blob]))
            }
        }
        .build()
        .map_err(StoreError::backend)?;
        let challenge = Put::builder()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(challenge_pk(challenge_id)))
            .item(TTL_ATTRIBUTE, number(challenge_expires_at))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .build()
            .map_err(StoreError::backend)?;
        let items = vec![
            TransactWriteItem::builder().update(update).build(),
            TransactWriteItem::builder().put(challenge).build(),
        ];
        // A used challenge decides, whatever the proof: `last` is the challenge's when its
        // condition failed.
        Ok(match self.transact(items).await? {
            None => SignInSpend::Spent,
            Some(failed) if failed.last == 1 => SignInSpend::ChallengeUsed,
            Some(_) => SignInSpend::ProofRefused,
        })
    }
}
