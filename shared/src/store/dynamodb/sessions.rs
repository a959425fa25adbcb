//! Sessions: refresh tokens and their families, the deny-list, logout, leases.

use super::*;

/// A refresh token: `pk = REFRESH#<hash>`. No `Debug`, like the credential item.
#[derive(Serialize, Deserialize)]
struct RefreshTokenItem {
    pk: String,
    user_id: String,
    family_id: String,
    token_version: u64,
    /// Absent on items written before sessions had an absolute lifetime; those count from
    /// the token's own `created_at`.
    #[serde(default)]
    session_started_at: Option<u64>,
    created_at: u64,
    /// The TTL attribute.
    expires_at: u64,
    /// Present (true) when the session began with the second factor; absent on items
    /// written before sessions recorded it, which count as password only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    second_factor: bool,
    /// Absent while the token is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retired_at: Option<u64>,
}

impl RefreshTokenItem {
    fn new(token: &NewRefreshToken) -> Self {
        Self {
            pk: refresh_pk(&token.hash),
            user_id: token.user_id.clone(),
            family_id: token.family_id.clone(),
            token_version: token.token_version,
            session_started_at: Some(token.session_started_at),
            created_at: token.created_at,
            expires_at: token.expires_at,
            second_factor: token.second_factor,
            retired_at: None,
        }
    }

    fn into_token(self) -> Result<(NewRefreshToken, Option<u64>), StoreError> {
        let hash = self
            .pk
            .strip_prefix(REFRESH_PREFIX)
            .ok_or_else(|| StoreError::backend("refresh token item with a foreign key"))?
            .to_string();
        Ok((
            NewRefreshToken {
                hash,
                user_id: self.user_id,
                family_id: self.family_id,
                token_version: self.token_version,
                session_started_at: self.session_started_at.unwrap_or(self.created_at),
                created_at: self.created_at,
                expires_at: self.expires_at,
                second_factor: self.second_factor,
            },
            self.retired_at,
        ))
    }
}

#[async_trait::async_trait]
impl SessionStore for DynamoUserStore {
    async fn create_refresh_token(&self, token: NewRefreshToken) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&RefreshTokenItem::new(&token))?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // 256 random bits collided, or a caller stored one token twice: never overwrite
            // a token (it could be retired, or another user's).
            Err(err) if put_condition_failed(&err) => {
                Err(StoreError::backend("refresh token hash collision"))
            }
            Err(err) => Err(sdk_error(err)),
        }
    }

    async fn find_refresh_token(
        &self,
        hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, StoreError> {
        let Some(item) = self.get_item(refresh_pk(hash)).await? else {
            return Ok(None);
        };
        let (token, retired_at) = from_item::<RefreshTokenItem>(item)?.into_token()?;
        let family_revoked = match self.get_item(family_pk(&token.family_id)).await? {
            Some(family) => from_item::<FamilyItem>(family)?.revoked,
            None => false,
        };
        Ok(Some(RefreshTokenRecord {
            token,
            retired_at,
            family_revoked,
        }))
    }

    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        successor: NewRefreshToken,
        now: u64,
    ) -> Result<Rotation, StoreError> {
        if successor.hash == old_hash {
            // One transaction cannot touch one item twice; and a token cannot succeed itself.
            return Ok(Rotation::Refused);
        }
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            // 0: retire the old token if it is active, unexpired, and of the successor's
            // family (so that 1 checks the right family).
            let retire = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(refresh_pk(old_hash))))
                .update_expression("SET #retired_at = :now")
                .condition_expression(
                    "attribute_exists(#pk) AND attribute_not_exists(#retired_at) \
                     AND #expires_at > :now AND #family_id = :family_id",
                )
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_names("#retired_at", "retired_at")
                .expression_attribute_names("#expires_at", "expires_at")
                .expression_attribute_names("#family_id", "family_id")
                .expression_attribute_values(":now", number(now))
                .expression_attribute_values(
                    ":family_id",
                    AttributeValue::S(successor.family_id.clone()),
                )
                .build()
                .map_err(StoreError::backend)?;
            // 1: the family is not revoked (it has no item until it is).
            let family_check = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(key(family_pk(&successor.family_id))))
                .condition_expression("attribute_not_exists(#pk) OR #revoked = :false")
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_names("#revoked", "revoked")
                .expression_attribute_values(":false", AttributeValue::Bool(false))
                .build()
                .map_err(StoreError::backend)?;
            // 2: store the successor.
            let store_successor = self.put_new(to_item(&RefreshTokenItem::new(&successor))?)?;
            let result = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(retire).build())
                .transact_items(
                    TransactWriteItem::builder()
                        .condition_check(family_check)
                        .build(),
                )
                .transact_items(store_successor)
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(Rotation::Rotated),
                Err(err) => err,
            };
            match cancellation(&err) {
                // A decision: already rotated (by a parallel request, say), expired, unknown,
                // or its family revoked. Nothing was written.
                Some(Cancelled::ConditionFailed { .. }) => return Ok(Rotation::Refused),
                // Undecided: the token may still be active, so Refused would be wrong. Try
                // again until DynamoDB decides.
                Some(Cancelled::Conflict) if attempt + 1 < MAX_WRITE_ATTEMPTS => {
                    backoff(attempt).await
                }
                Some(Cancelled::Conflict) => return Err(StoreError::unavailable(err)),
                _ => return Err(sdk_error(err)),
            }
        }
        Err(StoreError::unavailable(
            "rotate_refresh_token: too many conflicting writes",
        ))
    }

    async fn revoke_family(&self, family_id: &str, expires_at: u64) -> Result<(), StoreError> {
        let pk = family_pk(family_id);
        // Revoke first, unconditionally: whatever happens next, the family is revoked.
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk.clone())))
            .update_expression(
                "SET #revoked = :true, #expires_at = if_not_exists(#expires_at, :expires_at)",
            )
            .expression_attribute_names("#revoked", "revoked")
            .expression_attribute_names("#expires_at", TTL_ATTRIBUTE)
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":expires_at", number(expires_at))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(sdk_error)?;
        let stored_expiry = match output
            .attributes
            .as_ref()
            .and_then(|a| a.get(TTL_ATTRIBUTE))
        {
            Some(AttributeValue::N(n)) => n.parse::<u64>().map_err(StoreError::backend)?,
            _ => return Err(StoreError::backend("revoke_family: no expires_at returned")),
        };
        if stored_expiry >= expires_at {
            return Ok(());
        }
        // Revoked before with an earlier expiry: extend it, never shorten it (expression
        // language has no max, so the condition does it; a failure means someone else
        // extended it further in between).
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk)))
            .update_expression("SET #expires_at = :expires_at")
            .condition_expression("#expires_at < :expires_at")
            .expression_attribute_names("#expires_at", TTL_ATTRIBUTE)
            .expression_attribute_values(":expires_at", number(expires_at))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if update_condition_failed(&err) => Ok(()),
            Err(err) => Err(sdk_error(err)),
        }
    }

    async fn revoke_access_token(&self, jti: &str, expires_at: u64) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(revoked_pk(jti)))
            .item(TTL_ATTRIBUTE, number(expires_at))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    async fn end_session(
        &self,
        caller: StandingCaller<'_>,
        jti_expires_at: u64,
        session_expires_at: u64,
    ) -> Result<(), StoreError> {
        // The deny-list entry and the revoked family are the caller's own `jti` and `sid`
        // items: their conditions (not yet revoked) are the caller checks for those two.
        let deny = Put::builder()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(revoked_pk(caller.jti)))
            .item(TTL_ATTRIBUTE, number(jti_expires_at))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .build()
            .map_err(StoreError::backend)?;
        let revoke = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(family_pk(caller.sid))))
            .update_expression("SET #revoked = :true, #expires_at = :expires_at")
            .condition_expression("attribute_not_exists(#revoked) OR #revoked = :false")
            .expression_attribute_names("#revoked", "revoked")
            .expression_attribute_names("#expires_at", TTL_ATTRIBUTE)
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":expires_at", number(session_expires_at))
            .build()
            .map_err(StoreError::backend)?;
        let mut items = vec![
            TransactWriteItem::builder().put(deny).build(),
            TransactWriteItem::builder().update(revoke).build(),
        ];
        // Only the user item: the other two checks are the writes' own conditions.
        items.extend(
            self.caller_checks(Actor::Caller(caller), false)?
                .into_iter()
                .take(1),
        );
        // A failed condition, whichever: the deny-list entry or the session exists
        // already, or the caller's user moved on; the caller no longer stands either way.
        match self.transact(items).await? {
            None => Ok(()),
            Some(_) => Err(StoreError::CallerRevoked),
        }
    }

    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: u64,
        until: u64,
    ) -> Result<bool, StoreError> {
        // TTL deletes expired items only eventually: the condition decides, not the TTL.
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(format!("{LEASE_PREFIX}{name}")))
            .item("holder", AttributeValue::S(holder.to_string()))
            .item(TTL_ATTRIBUTE, number(until))
            .condition_expression("attribute_not_exists(#pk) OR #expires_at <= :now")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#expires_at", TTL_ATTRIBUTE)
            .expression_attribute_values(":now", number(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if put_condition_failed(&err) => Ok(false),
            Err(err) => Err(sdk_error(err)),
        }
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("{LEASE_PREFIX}{name}"))))
            .condition_expression("#holder = :holder")
            .expression_attribute_names("#holder", "holder")
            .expression_attribute_values(":holder", AttributeValue::S(holder.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Taken over by someone else after it ended, or gone already: not ours to free.
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(
                        aws_sdk_dynamodb::operation::delete_item::DeleteItemError::ConditionalCheckFailedException(_)
                    )
                ) =>
            {
                Ok(())
            }
            Err(err) => Err(sdk_error(err)),
        }
    }
}
