//! How a change to a user lands: both items read, the change decided on what was read,
//! and both written in one transaction conditioned on their versions and on the caller's
//! standing (see [`DynamoUserStore::change_user`]).

use super::*;

/// What [`DynamoUserStore::change_user`] writes.
pub(super) struct UserWrite<'a> {
    pub(super) changes: &'a UserChanges,
    /// Bump the token version whatever changes ("log out everywhere").
    pub(super) revoke_all: bool,
    /// A new password hash, and how it replaces the stored one.
    pub(super) password: Option<(&'a StoredHash, PasswordWrite<'a>)>,
    /// Who it is for: a caller's write also checks that the caller still stands.
    pub(super) actor: Actor<'a>,
}

static NO_CHANGES: UserChanges = UserChanges {
    name: None,
    role: None,
    disabled: None,
};

impl Default for UserWrite<'_> {
    fn default() -> Self {
        Self {
            changes: &NO_CHANGES,
            revoke_all: false,
            password: None,
            actor: Actor::Operator,
        }
    }
}

impl DynamoUserStore {
    pub(super) async fn get_profile(&self, id: &str) -> Result<Option<ProfileItem>, StoreError> {
        self.get_item(profile_pk(id))
            .await?
            .map(from_item)
            .transpose()
    }

    pub(super) async fn get_credential(
        &self,
        username: &str,
    ) -> Result<Option<CredentialItem>, StoreError> {
        self.get_item(credential_pk(username))
            .await?
            .map(from_item)
            .transpose()
    }

    /// Both items of the user with this id: its profile (`None` if there is no such user)
    /// and the credential item of its username, if that still belongs to it.
    pub(super) async fn get_user_items(
        &self,
        id: &str,
    ) -> Result<Option<(ProfileItem, Option<CredentialItem>)>, StoreError> {
        let Some(profile) = self.get_profile(id).await? else {
            return Ok(None);
        };
        let credential = self
            .get_credential(&profile.username)
            .await?
            .filter(|credential| credential.user_id == profile.id);
        Ok(Some((profile, credential)))
    }

    /// Writes `user`'s copied fields and `token_version` to one of its items, applied only
    /// if the item still has the version that was read (optimistic locking: a concurrent
    /// change makes the transaction fail instead of being overwritten by a decision taken
    /// on stale data). Every field is written, not only the changed ones: the condition
    /// makes the read values current, so this is exactly "what was read, plus the changes".
    /// `password_hash`, when given, is set too (only the credential item holds one).
    pub(super) fn user_update(
        &self,
        pk: String,
        user: &User,
        token_version: u64,
        expected_version: u64,
        password_hash: Option<&StoredHash>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut expression = String::from(
            "SET #name = :name, #role = :role, #disabled = :disabled, \
             #token_version = :token_version, #version = #version + :one",
        );
        let mut update = Update::builder();
        if let Some(hash) = password_hash {
            expression.push_str(", #hash = :hash");
            update = update
                .expression_attribute_names("#hash", "password_hash")
                .expression_attribute_values(":hash", AttributeValue::S(hash.as_phc().into()));
        }
        let update = update
            .table_name(&self.table)
            .set_key(Some(key(pk)))
            .update_expression(expression)
            .condition_expression("attribute_exists(#pk) AND #version = :expected")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#name", "name")
            .expression_attribute_names("#role", "role")
            .expression_attribute_names("#disabled", "disabled")
            .expression_attribute_names("#token_version", "token_version")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":name", AttributeValue::S(user.name.clone()))
            .expression_attribute_values(":role", AttributeValue::S(user.role.as_str().into()))
            .expression_attribute_values(":disabled", AttributeValue::Bool(user.disabled))
            .expression_attribute_values(":token_version", number(token_version))
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":expected", number(expected_version))
            .build()
            .map_err(StoreError::backend)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// A delete of one item that still exists, optionally only if `user_id` is `id`.
    pub(super) fn delete_existing(
        &self,
        pk: String,
        owner: Option<&str>,
    ) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk)))
            .expression_attribute_names("#pk", "pk");
        let delete = match owner {
            Some(id) => delete
                .condition_expression("attribute_exists(#pk) AND #user_id = :user_id")
                .expression_attribute_names("#user_id", "user_id")
                .expression_attribute_values(":user_id", AttributeValue::S(id.to_string())),
            None => delete.condition_expression("attribute_exists(#pk)"),
        };
        Ok(TransactWriteItem::builder()
            .delete(delete.build().map_err(StoreError::backend)?)
            .build())
    }

    /// Applies `write` to both items of a user: read both, write both in one transaction
    /// conditioned on both versions, and on a lost race read again and decide again.
    /// Returns the user as written and its token version.
    pub(super) async fn change_user(
        &self,
        id: &str,
        write: UserWrite<'_>,
        operation: &str,
    ) -> Result<(User, u64), StoreError> {
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            let Some((profile, credential)) = self.get_user_items(id).await? else {
                return Err(write.actor.no_such_user(id));
            };
            // Each item has its own version (items written by older code may differ), so
            // both versions are read and both are checked.
            let Some(credential) = credential else {
                // A delete between the two reads (the next read finds no profile), or a
                // user torn in half, which no write here could have produced.
                if attempt + 1 < MAX_WRITE_ATTEMPTS {
                    backoff(attempt).await;
                    continue;
                }
                return Err(StoreError::backend(
                    "user profile without its credential item",
                ));
            };
            if let Some((_, password_write)) = &write.password
                && password_write
                    .previous()
                    .is_some_and(|previous| previous.as_phc() != credential.password_hash)
            {
                // Decided on this read; the version condition below makes it still true
                // when the write lands.
                return Err(StoreError::PasswordChanged);
            }
            let profile_pk = profile.pk.clone();
            let profile_version = profile.version;
            let profile_token_version = profile.token_version;
            let stored_token_version = profile.token_version.max(credential.token_version);
            let mut user = profile.into_user()?;
            // A caller changing its own user: the values read are what the transaction's
            // version conditions pin, so checking them here is checking them at the write.
            let writes_caller_user_item = match write.actor {
                Actor::Caller(caller) if caller.id == id => {
                    if !caller.is_stood_for_by(&user, profile_token_version) {
                        return Err(StoreError::CallerRevoked);
                    }
                    true
                }
                _ => false,
            };
            let changes = write.changes;
            let revoke = write.revoke_all
                || changes.revokes_tokens_of(&user)
                || write
                    .password
                    .as_ref()
                    .is_some_and(|(_, password_write)| password_write.revokes_tokens());
            // Both copies are always written together; `max` only matters for items that
            // were never both written since `token_version` was introduced.
            let token_version = stored_token_version + u64::from(revoke);
            if let Some(name) = &changes.name {
                user.name.clone_from(name);
            }
            if let Some(role) = changes.role {
                user.role = role;
            }
            if let Some(disabled) = changes.disabled {
                user.disabled = disabled;
            }
            let items = [
                self.user_update(profile_pk, &user, token_version, profile_version, None)?,
                self.user_update(
                    credential.pk.clone(),
                    &user,
                    token_version,
                    credential.version,
                    write.password.as_ref().map(|(hash, _)| *hash),
                )?,
            ];
            let checks = self.caller_checks(write.actor, writes_caller_user_item)?;
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.into_iter().chain(checks).collect()))
                .send()
                .await;
            match result {
                // The write was conditioned on the versions read, so the stored user is
                // exactly the one read with the changes applied.
                Ok(_) => return Ok((user, token_version)),
                Err(err) => match cancellation(&err) {
                    Some(Cancelled::ConditionFailed { last, .. }) if last >= 2 => {
                        return Err(StoreError::CallerRevoked);
                    }
                    // Changed (or deleted) since it was read: read again and decide again.
                    Some(_) if attempt + 1 < MAX_WRITE_ATTEMPTS => backoff(attempt).await,
                    // Still contended after every attempt: a retry later may work (503).
                    Some(_) => return Err(StoreError::unavailable(err)),
                    None => return Err(sdk_error(err)),
                },
            }
        }
        Err(StoreError::unavailable(format!(
            "{operation}: too many conflicting writes"
        )))
    }

    /// The condition checks that let a write land only while `actor` stands, to go last in
    /// its transaction (so a failed condition at an index past the write's own items is
    /// the caller's): its user item, its `REVOKED#<jti>` absent, its `FAMILY#<sid>` not
    /// revoked. A transaction cannot check an item it also writes: when the write changes
    /// the caller's own user item, that item is left out here and the caller checks the
    /// values it read, which the write's version condition pins ([`Self::change_user`]).
    pub(in crate::store::dynamodb) fn caller_checks(
        &self,
        actor: Actor<'_>,
        writes_caller_user_item: bool,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let Actor::Caller(caller) = actor else {
            return Ok(Vec::new());
        };
        let check = |pk: String, condition: &str, names: &[(&str, &str)], values: Item| {
            let mut builder = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(key(pk)))
                .condition_expression(condition)
                .set_expression_attribute_values((!values.is_empty()).then_some(values));
            for (placeholder, name) in names {
                builder = builder.expression_attribute_names(*placeholder, *name);
            }
            builder
                .build()
                .map(|check| TransactWriteItem::builder().condition_check(check).build())
                .map_err(StoreError::backend)
        };
        let mut checks = Vec::with_capacity(3);
        if !writes_caller_user_item {
            // Items written before `token_version` existed read as version 0.
            let version = if caller.token_version == 0 {
                "(#token_version = :token_version OR attribute_not_exists(#token_version))"
            } else {
                "#token_version = :token_version"
            };
            checks.push(check(
                profile_pk(caller.id),
                &format!(
                    "attribute_exists(#pk) AND #disabled = :false AND #role = :role AND {version}"
                ),
                &[
                    ("#pk", "pk"),
                    ("#disabled", "disabled"),
                    ("#role", "role"),
                    ("#token_version", "token_version"),
                ],
                HashMap::from([
                    (":false".to_string(), AttributeValue::Bool(false)),
                    (
                        ":role".to_string(),
                        AttributeValue::S(caller.role.as_str().into()),
                    ),
                    (":token_version".to_string(), number(caller.token_version)),
                ]),
            )?);
        }
        checks.push(check(
            revoked_pk(caller.jti),
            "attribute_not_exists(#pk)",
            &[("#pk", "pk")],
            Item::new(),
        )?);
        checks.push(check(
            family_pk(caller.sid),
            "attribute_not_exists(#revoked) OR #revoked = :false",
            &[("#revoked", "revoked")],
            HashMap::from([(":false".to_string(), AttributeValue::Bool(false))]),
        )?);
        Ok(checks)
    }

    /// A put that only creates: it fails if an item with this key exists.
    pub(in crate::store::dynamodb) fn put_new(
        &self,
        item: Item,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .build()
            .map_err(StoreError::backend)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}
