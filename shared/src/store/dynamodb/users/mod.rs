//! Users: the profile and credential items, written together (see the module docs).

use super::*;

/// The profile item. Also the shape of `by-kind` index items, which lack `version`
/// (not projected), hence its default.
#[derive(Debug, Serialize, Deserialize)]
struct ProfileItem {
    pk: String,
    kind: String,
    id: String,
    username: String,
    name: String,
    role: String,
    disabled: bool,
    created_at: u64,
    #[serde(default)]
    version: u64,
    /// Bumped to revoke every token issued before; what the authorizer compares with a
    /// token's `ver`. Items written before it existed read as 0.
    #[serde(default)]
    token_version: u64,
}

impl ProfileItem {
    fn new(user: &User, version: u64) -> Self {
        Self {
            pk: profile_pk(&user.id),
            kind: USER_KIND.to_string(),
            id: user.id.clone(),
            username: user.username.clone(),
            name: user.name.clone(),
            role: user.role.as_str().to_string(),
            disabled: user.disabled,
            created_at: user.created_at,
            version,
            token_version: 0,
        }
    }

    fn into_user(self) -> Result<User, StoreError> {
        Ok(User {
            role: parse_role(&self.role)?,
            id: self.id,
            username: self.username,
            name: self.name,
            disabled: self.disabled,
            created_at: self.created_at,
        })
    }
}

/// The credential item: what login reads, with the password hash. No `Debug`: the hash
/// must not end up in a log line by accident.
#[derive(Serialize, Deserialize)]
struct CredentialItem {
    pk: String,
    user_id: String,
    username: String,
    name: String,
    role: String,
    disabled: bool,
    created_at: u64,
    password_hash: String,
    version: u64,
    /// The same as the profile's (both are written in one transaction); login puts it in
    /// the token's `ver` claim.
    #[serde(default)]
    token_version: u64,
}

impl CredentialItem {
    fn new(user: &User, password_hash: &StoredHash, version: u64) -> Self {
        Self {
            pk: credential_pk(&user.username),
            user_id: user.id.clone(),
            username: user.username.clone(),
            name: user.name.clone(),
            role: user.role.as_str().to_string(),
            disabled: user.disabled,
            created_at: user.created_at,
            password_hash: password_hash.as_phc().to_string(),
            version,
            token_version: 0,
        }
    }

    fn into_login_record(self) -> Result<LoginRecord, StoreError> {
        Ok(LoginRecord {
            token_version: self.token_version,
            user: User {
                role: parse_role(&self.role)?,
                id: self.user_id,
                username: self.username,
                name: self.name,
                disabled: self.disabled,
                created_at: self.created_at,
            },
            password_hash: StoredHash::from_phc(self.password_hash),
        })
    }
}

/// What the authorizer reads of a profile item (projected: nothing else is transferred).
#[derive(Deserialize)]
struct AuthStateItem {
    role: String,
    disabled: bool,
    #[serde(default)]
    token_version: u64,
}

mod writes;

use writes::UserWrite;

#[async_trait::async_trait]
impl UserStore for DynamoUserStore {
    async fn update_user(
        &self,
        id: &str,
        changes: UserChanges,
        actor: Actor<'_>,
    ) -> Result<User, StoreError> {
        if changes == UserChanges::default() {
            // Nothing to write: no version bump for a change that changes nothing.
            return self.get_user(id).await?.ok_or(StoreError::NotFound);
        }
        let write = UserWrite {
            changes: &changes,
            actor,
            ..UserWrite::default()
        };
        let (user, _) = self.change_user(id, write, "update_user").await?;
        Ok(user)
    }

    async fn delete_user(&self, id: &str, actor: Actor<'_>) -> Result<(), StoreError> {
        // A transaction cannot check the item it deletes; deleting oneself is refused
        // above the store (there would be no caller left to check anyway).
        if matches!(actor, Actor::Caller(caller) if caller.id == id) {
            return Err(StoreError::backend(
                "delete_user: a caller cannot delete itself",
            ));
        }
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            let (profile, credential) =
                self.get_user_items(id).await?.ok_or(StoreError::NotFound)?;
            // Both items go in one transaction, so the username is free exactly when the
            // user is gone. No version conditions: a delete wins over any change, and a
            // concurrent change then fails its own condition and finds no user.
            let mut items = vec![self.delete_existing(profile.pk.clone(), None)?];
            if let Some(credential) = credential {
                items.push(self.delete_existing(credential.pk, Some(&profile.id))?);
            }
            // Its second factor, if any, goes with it (ids are never reused, so it would
            // otherwise stay for ever).
            items.push(
                TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(&self.table)
                            .set_key(Some(key(super::factors::factor_pk(id))))
                            .build()
                            .map_err(StoreError::backend)?,
                    )
                    .build(),
            );
            let first_check = items.len();
            items.extend(self.caller_checks(actor, false)?);
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(err) => match cancellation(&err) {
                    Some(Cancelled::ConditionFailed { last, .. }) if last >= first_check => {
                        return Err(StoreError::CallerRevoked);
                    }
                    // Deleted by someone else since it was read (the next read says
                    // NotFound), or a conflicting write: read again and decide again.
                    Some(_) if attempt + 1 < MAX_WRITE_ATTEMPTS => backoff(attempt).await,
                    // Still contended after every attempt: a retry later may work (503).
                    Some(_) => return Err(StoreError::unavailable(err)),
                    None => return Err(sdk_error(err)),
                },
            }
        }
        Err(StoreError::unavailable(
            "delete_user: too many conflicting writes",
        ))
    }

    async fn revoke_all_tokens(&self, id: &str, actor: Actor<'_>) -> Result<(), StoreError> {
        let write = UserWrite {
            revoke_all: true,
            actor,
            ..UserWrite::default()
        };
        self.change_user(id, write, "revoke_all_tokens")
            .await
            .map(|_| ())
    }

    async fn authorization_state(
        &self,
        id: &str,
        jti: &str,
        sid: &str,
    ) -> Result<AuthorizationState, StoreError> {
        // One BatchGetItem for the three keys, strongly consistent so that a disable, a
        // token version bump, a logout or a revoked session is seen by the very next request.
        let user_pk = profile_pk(id);
        let jti_pk = revoked_pk(jti);
        let family_pk = family_pk(sid);
        let keys = KeysAndAttributes::builder()
            .keys(key(user_pk.clone()))
            .keys(key(jti_pk.clone()))
            .keys(key(family_pk.clone()))
            .consistent_read(true)
            .projection_expression(AUTHORIZATION_STATE_PROJECTION)
            .set_expression_attribute_names(Some(
                AUTHORIZATION_STATE_ATTRIBUTES
                    .iter()
                    .map(|name| (format!("#{name}"), (*name).to_string()))
                    .collect(),
            ))
            .build()
            .map_err(StoreError::backend)?;
        let mut pending = HashMap::from([(self.table.clone(), keys)]);
        let mut state = AuthorizationState {
            user: None,
            jti_revoked: false,
            session_revoked: false,
        };
        for attempt in 0..MAX_READ_ATTEMPTS {
            let output = self
                .client
                .batch_get_item()
                .set_request_items(Some(pending))
                .send()
                .await
                .map_err(sdk_error)?;
            let items = output
                .responses
                .and_then(|mut responses| responses.remove(&self.table))
                .unwrap_or_default();
            for item in items {
                match item.get("pk") {
                    Some(AttributeValue::S(pk)) if *pk == user_pk => {
                        let user = from_item::<AuthStateItem>(item)?;
                        state.user = Some(UserAuthState {
                            role: parse_role(&user.role)?,
                            disabled: user.disabled,
                            token_version: user.token_version,
                        });
                    }
                    // Any deny-list item counts, even one past its `expires_at` that TTL
                    // has not removed yet: the token it names has expired by then anyway.
                    Some(AttributeValue::S(pk)) if *pk == jti_pk => state.jti_revoked = true,
                    Some(AttributeValue::S(pk)) if *pk == family_pk => {
                        state.session_revoked = from_item::<FamilyItem>(item)?.revoked;
                    }
                    _ => {}
                }
            }
            // DynamoDB may leave keys unprocessed (throttling); ask again for those only.
            match output.unprocessed_keys {
                Some(unprocessed) if !unprocessed.is_empty() => {
                    pending = unprocessed;
                    backoff(attempt).await;
                }
                _ => return Ok(state),
            }
        }
        Err(StoreError::unavailable(
            "authorization_state: keys left unprocessed",
        ))
    }

    async fn create_user(
        &self,
        new_user: NewUser,
        now: u64,
        actor: Actor<'_>,
    ) -> Result<User, StoreError> {
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            let user = User {
                id: new_user_id(),
                username: new_user.username.clone(),
                name: new_user.name.clone(),
                role: new_user.role,
                disabled: false,
                created_at: now,
            };
            // Order matters: the index of a failed condition says which item it was.
            let profile = self.put_new(to_item(&ProfileItem::new(&user, 1))?)?;
            let credential = self.put_new(to_item(&CredentialItem::new(
                &user,
                &new_user.password_hash,
                1,
            ))?)?;
            let items = [profile, credential]
                .into_iter()
                .chain(self.caller_checks(actor, false)?)
                .collect();
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(user),
                Err(err) => err,
            };
            match cancellation(&err) {
                // Checked first: a caller no longer standing learns nothing, not even
                // whether the username is taken.
                Some(Cancelled::ConditionFailed { last, .. }) if last >= 2 => {
                    return Err(StoreError::CallerRevoked);
                }
                // The credential item exists: someone holds this username.
                Some(Cancelled::ConditionFailed { index: 1, .. }) => {
                    return Err(StoreError::UsernameTaken);
                }
                // The profile item exists: a 128-bit random id collided. Take another one.
                Some(Cancelled::ConditionFailed { .. }) | Some(Cancelled::Conflict)
                    if attempt + 1 < MAX_WRITE_ATTEMPTS =>
                {
                    backoff(attempt).await
                }
                Some(Cancelled::Conflict) => return Err(StoreError::unavailable(err)),
                _ => return Err(sdk_error(err)),
            }
        }
        Err(StoreError::unavailable(
            "create_user: too many conflicting writes",
        ))
    }

    async fn get_user(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.get_profile(id)
            .await?
            .map(ProfileItem::into_user)
            .transpose()
    }

    async fn find_login(&self, username: &str) -> Result<Option<LoginRecord>, StoreError> {
        self.get_credential(username)
            .await?
            .map(CredentialItem::into_login_record)
            .transpose()
    }

    async fn list_users(
        &self,
        limit: usize,
        after: Option<&PageKey>,
    ) -> Result<UserPage, StoreError> {
        // Ask for one user more than the page holds: if it exists there is a next page, and
        // if not this is the last one. Relying on LastEvaluatedKey alone would end a list
        // whose size is a multiple of `limit` with an empty page, and the in-memory store
        // (which must give the same pages) would have no equivalent.
        let wanted = limit.saturating_add(1);
        let mut start_key: Option<Item> = after.map(|page| {
            HashMap::from([
                ("pk".to_string(), AttributeValue::S(profile_pk(&page.id))),
                ("kind".to_string(), AttributeValue::S(USER_KIND.to_string())),
                (
                    "username".to_string(),
                    AttributeValue::S(page.username.clone()),
                ),
            ])
        });
        let mut users = Vec::with_capacity(wanted.min(128));
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(BY_KIND_INDEX)
                .key_condition_expression("#kind = :kind")
                .expression_attribute_names("#kind", "kind")
                .expression_attribute_values(":kind", AttributeValue::S(USER_KIND.to_string()))
                .scan_index_forward(true)
                .limit(i32::try_from(wanted - users.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start_key.take())
                .send()
                .await
                .map_err(sdk_error)?;
            for item in output.items.unwrap_or_default() {
                users.push(from_item::<ProfileItem>(item)?.into_user()?);
            }
            // A Query stops at `Limit` items or at 1 MB, whichever comes first; after the
            // 1 MB cap it returns fewer items and a LastEvaluatedKey, so keep reading.
            match output.last_evaluated_key {
                Some(last_key) if users.len() < wanted => start_key = Some(last_key),
                _ => break,
            }
        }
        Ok(UserPage::from_one_more(users, limit))
    }

    async fn set_password_hash(
        &self,
        id: &str,
        password_hash: StoredHash,
        write: PasswordWrite<'_>,
        actor: Actor<'_>,
    ) -> Result<(User, u64), StoreError> {
        // Both items in one transaction even for a rehash: the credential item holds the
        // hash, the profile the token version, and a change must move both at once.
        let write = UserWrite {
            password: Some((&password_hash, write)),
            actor,
            ..UserWrite::default()
        };
        self.change_user(id, write, "set_password_hash").await
    }
}
