//! The DynamoDB [`UserStore`]: one table, two items per user.
//!
//! - The **profile** item (`pk = USER#<id>`) is what `get_user` and the user list read. It
//!   is the only item with a `kind` attribute, so the `by-kind` index (HASH `kind`, RANGE
//!   `username`) is a sparse index holding exactly the users, sorted by username. It never
//!   holds the password hash, so no read of a profile or of the index can leak one.
//! - The **credential** item (`pk = USERNAME#<username>`) holds a copy of the user and the
//!   password hash. Keying it by username gives login one strongly consistent GetItem (no
//!   Scan, no eventually consistent index on the login path), and its
//!   `attribute_not_exists(pk)` condition is what makes usernames unique: DynamoDB has no
//!   unique constraint on non-key attributes, but it does on keys.
//!
//! Both items are written in one transaction, so a user never exists half-created, and
//! updates to the copied fields (`disabled`) change both items atomically.
//!
//! The table layout is the `UsersTable` of `template.yaml`; [`create_table`] builds the same
//! table for DynamoDB Local.

use super::{LoginRecord, NewUser, PageKey, StoreError, UserPage, UserStore};
use crate::password::StoredHash;
use crate::user::{Role, User, new_user_id};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, IndexStatus,
    KeySchemaElement, KeyType, Projection, ProjectionType, Put, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification, TransactWriteItem, Update,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

type Item = HashMap<String, AttributeValue>;

/// Name of the sparse index of profile items, sorted by username (see `template.yaml`).
pub const BY_KIND_INDEX: &str = "by-kind";
/// The table's TTL attribute (epoch seconds), for expiring items such as revocations.
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// Attributes copied into the `by-kind` index besides the keys. Deliberately not
/// `password_hash` (which profile items do not have anyway) and not `version`.
const BY_KIND_PROJECTION: [&str; 5] = ["id", "name", "role", "disabled", "created_at"];

/// The `kind` of profile items; the partition key of the `by-kind` index.
const USER_KIND: &str = "USER";
const PROFILE_PREFIX: &str = "USER#";
const CREDENTIAL_PREFIX: &str = "USERNAME#";

/// Attempts for a write that lost a race (a transaction conflict or a changed version).
/// Each attempt re-reads, so only a hot item exhausts them; 8 attempts with the backoff
/// below wait at most about 0.6 s in all.
const MAX_WRITE_ATTEMPTS: u32 = 8;

/// Users in DynamoDB, in the table described in `template.yaml`.
#[derive(Debug, Clone)]
pub struct DynamoUserStore {
    client: Client,
    table: String,
}

impl DynamoUserStore {
    /// A store on `table`. The client decides the endpoint (AWS or DynamoDB Local).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

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
        }
    }

    fn into_login_record(self) -> Result<LoginRecord, StoreError> {
        Ok(LoginRecord {
            token_version: 0, // helper-3: read from the item
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

fn profile_pk(id: &str) -> String {
    format!("{PROFILE_PREFIX}{id}")
}

fn credential_pk(username: &str) -> String {
    format!("{CREDENTIAL_PREFIX}{username}")
}

fn key(pk: String) -> Item {
    HashMap::from([("pk".to_string(), AttributeValue::S(pk))])
}

fn parse_role(raw: &str) -> Result<Role, StoreError> {
    Role::parse(raw)
        .ok_or_else(|| StoreError::backend(format!("stored user has an unknown role {raw:?}")))
}

fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(StoreError::backend)
}

fn from_item<'a, T: Deserialize<'a>>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(StoreError::backend)
}

/// Why a TransactWriteItems was cancelled, from its per-item cancellation reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cancelled {
    /// Item `index` of the transaction failed its condition expression.
    ConditionFailed { index: usize },
    /// Another transaction or write touched one of the items at the same moment: nothing
    /// was decided, so trying again is right.
    Conflict,
}

fn cancellation(
    err: &SdkError<TransactWriteItemsError, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> Option<Cancelled> {
    let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
        err.as_service_error()
    else {
        return None;
    };
    let reasons = cancelled.cancellation_reasons();
    // A failed condition is a decision (the username is taken, the version moved on); it
    // wins over a conflict on another item of the same transaction.
    if let Some(index) = reasons
        .iter()
        .position(|r| r.code() == Some("ConditionalCheckFailed"))
    {
        return Some(Cancelled::ConditionFailed { index });
    }
    if reasons
        .iter()
        .any(|r| r.code() == Some("TransactionConflict"))
    {
        return Some(Cancelled::Conflict);
    }
    None
}

/// Sleeps before retry number `attempt` (0-based): exponential from 10 ms, capped at
/// 160 ms, with full jitter so that writers that collided once do not collide again.
async fn backoff(attempt: u32) {
    let cap_ms = 10u64 << attempt.min(4);
    let mut random = [0u8; 2];
    crate::secret::fill_random(&mut random);
    let jitter_ms = u64::from(u16::from_le_bytes(random)) % (cap_ms + 1);
    tokio::time::sleep(Duration::from_millis(jitter_ms.max(1))).await;
}

impl DynamoUserStore {
    /// One strongly consistent GetItem.
    async fn get_item(&self, pk: String) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::backend)?;
        Ok(output.item)
    }

    async fn get_profile(&self, id: &str) -> Result<Option<ProfileItem>, StoreError> {
        self.get_item(profile_pk(id))
            .await?
            .map(from_item)
            .transpose()
    }

    async fn get_credential(&self, username: &str) -> Result<Option<CredentialItem>, StoreError> {
        self.get_item(credential_pk(username))
            .await?
            .map(from_item)
            .transpose()
    }

    /// An update of `disabled` on one item, applied only if the item still has the version
    /// that was read (optimistic locking: a concurrent change makes the transaction fail
    /// instead of being overwritten by a decision taken on stale data).
    fn set_disabled_update(
        &self,
        pk: String,
        disabled: bool,
        expected_version: u64,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk)))
            .update_expression("SET #disabled = :disabled, #version = #version + :one")
            .condition_expression("attribute_exists(#pk) AND #version = :expected")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#disabled", "disabled")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":disabled", AttributeValue::Bool(disabled))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(
                ":expected",
                AttributeValue::N(expected_version.to_string()),
            )
            .build()
            .map_err(StoreError::backend)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// A put that only creates: it fails if an item with this key exists.
    fn put_new(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
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

#[async_trait::async_trait]
impl UserStore for DynamoUserStore {
    async fn update_user(&self, _id: &str, _changes: super::UserChanges) -> Result<User, StoreError> {
        todo!("helper-3 implements")
    }
    async fn delete_user(&self, _id: &str) -> Result<(), StoreError> {
        todo!("helper-3 implements")
    }
    async fn revoke_all_tokens(&self, _id: &str) -> Result<(), StoreError> {
        todo!("helper-3 implements")
    }
    async fn authorization_state(&self, _id: &str, _jti: &str) -> Result<super::AuthorizationState, StoreError> {
        todo!("helper-3 implements")
    }

    async fn create_user(&self, new_user: NewUser, now: u64) -> Result<User, StoreError> {
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
            let result = self
                .client
                .transact_write_items()
                .transact_items(profile)
                .transact_items(credential)
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(user),
                Err(err) => err,
            };
            match cancellation(&err) {
                // The credential item exists: someone holds this username.
                Some(Cancelled::ConditionFailed { index: 1 }) => {
                    return Err(StoreError::UsernameTaken);
                }
                // The profile item exists: a 128-bit random id collided. Take another one.
                Some(Cancelled::ConditionFailed { .. }) | Some(Cancelled::Conflict)
                    if attempt + 1 < MAX_WRITE_ATTEMPTS =>
                {
                    backoff(attempt).await
                }
                _ => return Err(StoreError::backend(err)),
            }
        }
        Err(StoreError::backend(
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
                .map_err(StoreError::backend)?;
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
        let next = if users.len() > limit {
            users.truncate(limit);
            users.last().map(PageKey::after)
        } else {
            None
        };
        Ok(UserPage { users, next })
    }

    async fn set_disabled(&self, id: &str, disabled: bool) -> Result<User, StoreError> {
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            let profile = self.get_profile(id).await?.ok_or(StoreError::NotFound)?;
            // The credential item has its own version (a password change bumps only it),
            // so both versions are read and both are checked.
            let credential = self
                .get_credential(&profile.username)
                .await?
                .filter(|credential| credential.user_id == profile.id)
                .ok_or_else(|| StoreError::backend("user profile without its credential item"))?;
            let result = self
                .client
                .transact_write_items()
                .transact_items(self.set_disabled_update(
                    profile.pk.clone(),
                    disabled,
                    profile.version,
                )?)
                .transact_items(self.set_disabled_update(
                    credential.pk.clone(),
                    disabled,
                    credential.version,
                )?)
                .send()
                .await;
            match result {
                Ok(_) => {
                    // The write was conditioned on the versions read, so the stored user is
                    // exactly the one read with the new `disabled`.
                    let mut user = profile.into_user()?;
                    user.disabled = disabled;
                    return Ok(user);
                }
                Err(err) => match cancellation(&err) {
                    // Changed (or deleted) since it was read: read again and decide again.
                    Some(_) if attempt + 1 < MAX_WRITE_ATTEMPTS => backoff(attempt).await,
                    _ => return Err(StoreError::backend(err)),
                },
            }
        }
        Err(StoreError::backend(
            "set_disabled: too many conflicting writes",
        ))
    }

    async fn set_password_hash(
        &self,
        id: &str,
        password_hash: StoredHash,
    ) -> Result<(), StoreError> {
        let profile = self.get_profile(id).await?.ok_or(StoreError::NotFound)?;
        // Only the credential item holds the hash. The condition makes sure it still exists
        // and still belongs to this user: an update must never create an item, nor set the
        // hash of whoever holds the username if it ever changed hands.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(credential_pk(&profile.username))))
            .update_expression("SET #hash = :hash, #version = #version + :one")
            .condition_expression("attribute_exists(#pk) AND #user_id = :user_id")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#hash", "password_hash")
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#user_id", "user_id")
            .expression_attribute_values(
                ":hash",
                AttributeValue::S(password_hash.as_phc().to_string()),
            )
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":user_id", AttributeValue::S(profile.id))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Err(StoreError::NotFound)
            }
            Err(err) => Err(StoreError::backend(err)),
        }
    }
}

/// Creates the users table as `template.yaml` declares it (on-demand billing, `pk` as the
/// only key, the `by-kind` index with its INCLUDE projection, TTL on `expires_at`) and
/// waits until it and its index are ACTIVE. For DynamoDB Local: tests, the local gateway and
/// the admin command; on AWS the table comes from the SAM template.
///
/// A table that already exists is left as it is (its schema is not compared) and only
/// waited for, so a local setup can call this on every start. Point-in-time recovery and
/// server-side encryption are not set: they do not change behaviour and DynamoDB Local
/// ignores them.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let string_attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(StoreError::backend)
    };
    let key_element = |name: &str, key_type: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .map_err(StoreError::backend)
    };
    let projection = BY_KIND_PROJECTION
        .iter()
        .fold(
            Projection::builder().projection_type(ProjectionType::Include),
            |projection, attribute| projection.non_key_attributes(*attribute),
        )
        .build();
    let by_kind = GlobalSecondaryIndex::builder()
        .index_name(BY_KIND_INDEX)
        .key_schema(key_element("kind", KeyType::Hash)?)
        .key_schema(key_element("username", KeyType::Range)?)
        .projection(projection)
        .build()
        .map_err(StoreError::backend)?;
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute("pk")?)
        .attribute_definitions(string_attribute("kind")?)
        .attribute_definitions(string_attribute("username")?)
        .key_schema(key_element("pk", KeyType::Hash)?)
        .global_secondary_indexes(by_kind)
        .send()
        .await;
    let is_new = match created {
        Ok(_) => true,
        Err(err)
            if matches!(
                err.as_service_error(),
                Some(CreateTableError::ResourceInUseException(_))
            ) =>
        {
            false
        }
        Err(err) => return Err(StoreError::backend(err)),
    };
    wait_until_active(client, table).await?;
    if is_new {
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(TTL_ATTRIBUTE)
                    .enabled(true)
                    .build()
                    .map_err(StoreError::backend)?,
            )
            .send()
            .await
            .map_err(StoreError::backend)?;
    }
    Ok(())
}

/// Polls DescribeTable until the table and all its indexes are ACTIVE. The SDK's
/// `wait_until_table_exists` waiter polls every 20 s at least and ignores index status;
/// DynamoDB Local is ready within milliseconds, AWS within a minute or two.
async fn wait_until_active(client: &Client, table: &str) -> Result<(), StoreError> {
    const MAX_WAIT: Duration = Duration::from_secs(300);
    let started = std::time::Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        let description = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(StoreError::backend)?
            .table
            .ok_or_else(|| StoreError::backend("DescribeTable answered without a table"))?;
        let table_active = description.table_status() == Some(&TableStatus::Active);
        let indexes_active = description
            .global_secondary_indexes()
            .iter()
            .all(|index| index.index_status() == Some(&IndexStatus::Active));
        if table_active && indexes_active {
            return Ok(());
        }
        if started.elapsed() > MAX_WAIT {
            return Err(StoreError::backend(format!(
                "table {table} did not become ACTIVE within {MAX_WAIT:?}"
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// A client for DynamoDB Local at `endpoint` (e.g. `http://127.0.0.1:8000`): region
/// us-east-1 and fixed dummy credentials. DynamoDB Local does not check credentials, but
/// with `-sharedDb` off it keys tables by access key and region, so fixed values make every
/// tool see the same tables. Never use this against AWS.
pub fn local_client(endpoint: &str) -> Client {
    let config = aws_sdk_dynamodb::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "static"))
        .endpoint_url(endpoint)
        .build();
    Client::from_conf(config)
}

#[async_trait::async_trait]
impl super::SessionStore for DynamoUserStore {
    async fn create_refresh_token(&self, _token: super::NewRefreshToken) -> Result<(), StoreError> {
        todo!("helper-3 implements")
    }
    async fn find_refresh_token(&self, _hash: &str) -> Result<Option<super::RefreshTokenRecord>, StoreError> {
        todo!("helper-3 implements")
    }
    async fn rotate_refresh_token(&self, _old_hash: &str, _successor: super::NewRefreshToken, _now: u64) -> Result<super::Rotation, StoreError> {
        todo!("helper-3 implements")
    }
    async fn revoke_family(&self, _family_id: &str, _expires_at: u64) -> Result<(), StoreError> {
        todo!("helper-3 implements")
    }
    async fn revoke_access_token(&self, _jti: &str, _expires_at: u64) -> Result<(), StoreError> {
        todo!("helper-3 implements")
    }
    async fn login_failures(&self, _username: &str) -> Result<super::LoginFailures, StoreError> {
        todo!("helper-3 implements")
    }
    async fn record_login_failure(&self, _username: &str, _now: u64, _window_secs: u64) -> Result<super::LoginFailures, StoreError> {
        todo!("helper-3 implements")
    }
    async fn clear_login_failures(&self, _username: &str) -> Result<(), StoreError> {
        todo!("helper-3 implements")
    }
}
