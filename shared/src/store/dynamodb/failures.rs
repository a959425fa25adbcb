//! Failed-login counters: `FAILURES#<counter>` items, changed only by atomic updates.

use super::*;

/// The login attempts of one username: `pk = FAILURES#<username>`, plus `expires_at`.
#[derive(Deserialize)]
struct FailuresItem {
    #[serde(default)]
    count: u64,
    #[serde(default)]
    last_failure_at: u64,
    #[serde(default)]
    locked_until: u64,
    #[serde(default)]
    locks: u64,
    #[serde(default)]
    last_refused_at: u64,
    #[serde(default)]
    refused: u64,
}

impl From<FailuresItem> for LoginFailures {
    fn from(item: FailuresItem) -> Self {
        Self {
            count: item.count,
            last_failure_at: item.last_failure_at,
            locked_until: item.locked_until,
            locks: item.locks,
            last_refused_at: item.last_refused_at,
            refused: item.refused,
        }
    }
}

#[async_trait::async_trait]
impl LoginFailureStore for DynamoUserStore {
    async fn login_failures(&self, username: &str) -> Result<LoginFailures, StoreError> {
        Ok(match self.get_item(failures_pk(username)).await? {
            Some(item) => from_item::<FailuresItem>(item)?.into(),
            None => LoginFailures::default(),
        })
    }

    async fn count_login_attempt(
        &self,
        username: &str,
        now: u64,
        window_secs: u64,
    ) -> Result<LoginFailures, StoreError> {
        let pk = failures_pk(username);
        // A count whose last failure is before `window_start` is stale and starts again.
        let window_start = now.saturating_sub(window_secs);
        let expires_at = now.saturating_add(window_secs);
        // Each failed step means another writer changed the item in between (added,
        // reset or cleared), so this loop ends after a couple of passes.
        for _ in 0..MAX_WRITE_ATTEMPTS {
            // (a) Count one more, atomically, unless the count is stale.
            let added = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(pk.clone())))
                .update_expression(
                    "ADD #count :one SET #last_failure_at = :now, #expires_at = :expires_at, \
                     #locked_until = if_not_exists(#locked_until, :zero), \
                     #locks = if_not_exists(#locks, :zero)",
                )
                .condition_expression(
                    "attribute_not_exists(#pk) OR #last_failure_at >= :window_start",
                )
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_names("#count", "count")
                .expression_attribute_names("#last_failure_at", "last_failure_at")
                .expression_attribute_names("#expires_at", TTL_ATTRIBUTE)
                .expression_attribute_names("#locked_until", "locked_until")
                .expression_attribute_names("#locks", "locks")
                .expression_attribute_values(":one", number(1))
                .expression_attribute_values(":zero", number(0))
                .expression_attribute_values(":now", number(now))
                .expression_attribute_values(":expires_at", number(expires_at))
                .expression_attribute_values(":window_start", number(window_start))
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match added {
                Ok(output) => {
                    // ALL_NEW always holds the count just added to; an answer without it is
                    // an error, never a count of 0 (which would let the attempt through).
                    let attributes = output
                        .attributes
                        .filter(|attributes| attributes.contains_key("count"))
                        .ok_or_else(|| {
                            StoreError::backend("count_login_attempt: no count returned")
                        })?;
                    return Ok(from_item::<FailuresItem>(attributes)?.into());
                }
                Err(err) if update_condition_failed(&err) => {}
                Err(err) => return Err(sdk_error(err)),
            }
            // (b) Stale: start again from 1, if it is still stale (of parallel resetters
            // only one wins; the others go back to (a) and add to its count).
            let reset = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", AttributeValue::S(pk.clone()))
                .item("count", number(1))
                .item("last_failure_at", number(now))
                .item("locked_until", number(0))
                .item("locks", number(0))
                .item(TTL_ATTRIBUTE, number(expires_at))
                .condition_expression("#last_failure_at < :window_start")
                .expression_attribute_names("#last_failure_at", "last_failure_at")
                .expression_attribute_values(":window_start", number(window_start))
                .send()
                .await;
            match reset {
                Ok(_) => {
                    return Ok(LoginFailures {
                        count: 1,
                        last_failure_at: now,
                        ..LoginFailures::default()
                    });
                }
                Err(err) if put_condition_failed(&err) => {}
                Err(err) => return Err(sdk_error(err)),
            }
        }
        Err(StoreError::unavailable(
            "count_login_attempt: too many conflicting writes",
        ))
    }

    async fn lock_login(
        &self,
        username: &str,
        seen_locks: u64,
        now: u64,
        locked_until: u64,
    ) -> Result<bool, StoreError> {
        // `locks = :seen` makes this a compare-and-set: of parallel lockers one wins.
        let locked = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(failures_pk(username))))
            .update_expression("SET #locked_until = :until ADD #locks :one")
            .condition_expression(
                "attribute_exists(#pk) AND #locks = :seen AND #locked_until <= :now",
            )
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#locked_until", "locked_until")
            .expression_attribute_names("#locks", "locks")
            .expression_attribute_values(":until", number(locked_until))
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":seen", number(seen_locks))
            .expression_attribute_values(":now", number(now))
            .send()
            .await;
        match locked {
            Ok(_) => Ok(true),
            Err(err) if update_condition_failed(&err) => Ok(false),
            Err(err) => Err(sdk_error(err)),
        }
    }

    async fn clear_login_failures(&self, username: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(failures_pk(username))))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    async fn uncount_login_attempt(&self, counter: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(failures_pk(counter))))
            .update_expression("ADD #count :minus_one")
            .condition_expression("attribute_exists(#pk) AND #count > :zero")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#count", "count")
            .expression_attribute_values(":minus_one", AttributeValue::N("-1".into()))
            .expression_attribute_values(":zero", number(0))
            .send()
            .await;
        match result {
            // Nothing to take off (already zero, or the item expired): nothing to do.
            Err(err) if update_condition_failed(&err) => Ok(()),
            other => other.map(|_| ()).map_err(sdk_error),
        }
    }

    async fn record_refused_login(&self, counter: &str, now: u64) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(failures_pk(counter))))
            .update_expression("SET #last_refused_at = :now ADD #refused :one")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#last_refused_at", "last_refused_at")
            .expression_attribute_names("#refused", "refused")
            .expression_attribute_values(":now", number(now))
            .expression_attribute_values(":one", number(1))
            .send()
            .await;
        match result {
            // Cleared by a parallel success, or expired: not brought back without its TTL.
            Err(err) if update_condition_failed(&err) => Ok(()),
            other => other.map(|_| ()).map_err(sdk_error),
        }
    }
}
