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
//! updates to the copied fields (`name`, `role`, `disabled`, `token_version`) change both
//! items atomically, with optimistic locking on each item's `version`.
//!
//! The [`SessionStore`] lives in the same table, in items that have no `kind` (so the index
//! never sees them) and expire through the table's TTL attribute [`TTL_ATTRIBUTE`]:
//!
//! - `REVOKED#<jti>`: an access token on the deny-list, until its `exp` plus the leeway.
//! - `REFRESH#<sha-256 hex>`: a refresh token (only its hash), with `retired_at` once
//!   rotated; `FAMILY#<family id>`: `revoked = true` once its family (session) is revoked.
//! - `FAILURES#<username>`: the failed-login counter, changed only by atomic updates.
//! - `LEASE#<name>`: a short lease ([`SessionStore::take_lease`]), until its `expires_at`.
//! - `KEYS#public`: the public token keys (JWK Set and retirement times) that rotation
//!   publishes for the authorizer, which reads no private key.
//!
//! The table layout is the `UsersTable` of `template.yaml`; [`create_table`] builds the same
//! table for DynamoDB Local.

use super::{
    Actor, AuthorizationState, LoginFailures, LoginRecord, NewRefreshToken, NewUser, PageKey,
    PasswordWrite, PublicKeyStore, RefreshTokenRecord, Rotation, SessionStore, StandingCaller,
    StoreError, UserAuthState, UserChanges, UserPage, UserStore,
};
use crate::password::StoredHash;
use crate::user::{Role, User, new_user_id};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex,
    IndexStatus, KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, Put,
    ReturnValue, ScalarAttributeType, TableStatus, TimeToLiveSpecification, TransactWriteItem,
    Update,
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
const REVOKED_PREFIX: &str = "REVOKED#";
const REFRESH_PREFIX: &str = "REFRESH#";
const FAMILY_PREFIX: &str = "FAMILY#";
const FAILURES_PREFIX: &str = "FAILURES#";
const PUBLIC_KEYS_PK: &str = "KEYS#public";
const LEASE_PREFIX: &str = "LEASE#";

/// Every kind of item in the table, by the prefix of its key (`KEYS#public` is one item):
/// what the functions' IAM policies allow by `dynamodb:LeadingKeys` (checked by a test
/// over `template.yaml`).
pub const ITEM_KEY_PREFIXES: [&str; 7] = [
    PROFILE_PREFIX,
    CREDENTIAL_PREFIX,
    REVOKED_PREFIX,
    REFRESH_PREFIX,
    FAMILY_PREFIX,
    FAILURES_PREFIX,
    LEASE_PREFIX,
];
/// The key of the public token keys.
pub const PUBLIC_KEYS_KEY: &str = PUBLIC_KEYS_PK;

/// The items [`UserStore::authorization_state`] reads, by key prefix: the user's profile,
/// the deny-list entry of a `jti` and the session (family). The authorizer's IAM policy
/// allows its BatchGetItem on exactly these (`dynamodb:LeadingKeys`, checked by a test).
pub const AUTHORIZATION_STATE_KEY_PREFIXES: [&str; 3] =
    [PROFILE_PREFIX, REVOKED_PREFIX, FAMILY_PREFIX];
/// The attributes it reads of them (`dynamodb:Attributes` in the same policy).
pub const AUTHORIZATION_STATE_ATTRIBUTES: [&str; 5] =
    ["pk", "role", "disabled", "token_version", "revoked"];
/// [`AUTHORIZATION_STATE_ATTRIBUTES`] as a projection expression (`#name` each), written out
/// because it is on every authorization.
const AUTHORIZATION_STATE_PROJECTION: &str = "#pk, #role, #disabled, #token_version, #revoked";
/// The prefix of the credential items, which hold the password hashes.
pub const CREDENTIAL_KEY_PREFIX: &str = CREDENTIAL_PREFIX;

/// Attempts for a write that lost a race (a transaction conflict or a changed version).
/// Each attempt re-reads, so only a hot item exhausts them; 8 attempts with the backoff
/// below wait at most about 0.6 s in all.
const MAX_WRITE_ATTEMPTS: u32 = 8;

/// Round trips for a BatchGetItem whose keys DynamoDB left unprocessed (throttling); each
/// retry asks only for the remainder.
const MAX_READ_ATTEMPTS: u32 = 8;

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
            },
            self.retired_at,
        ))
    }
}

/// A refresh-token family (one login's session): `pk = FAMILY#<family id>`, written only
/// when the family is revoked.
#[derive(Deserialize)]
struct FamilyItem {
    #[serde(default)]
    revoked: bool,
}

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
}

impl From<FailuresItem> for LoginFailures {
    fn from(item: FailuresItem) -> Self {
        Self {
            count: item.count,
            last_failure_at: item.last_failure_at,
            locked_until: item.locked_until,
            locks: item.locks,
            last_refused_at: item.last_refused_at,
        }
    }
}

fn profile_pk(id: &str) -> String {
    format!("{PROFILE_PREFIX}{id}")
}

fn credential_pk(username: &str) -> String {
    format!("{CREDENTIAL_PREFIX}{username}")
}

fn revoked_pk(jti: &str) -> String {
    format!("{REVOKED_PREFIX}{jti}")
}

fn refresh_pk(hash: &str) -> String {
    format!("{REFRESH_PREFIX}{hash}")
}

fn family_pk(family_id: &str) -> String {
    format!("{FAMILY_PREFIX}{family_id}")
}

fn failures_pk(username: &str) -> String {
    format!("{FAILURES_PREFIX}{username}")
}

fn number(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
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

/// An SDK call's failure, told apart: throttling, DynamoDB's own 5xx, timeouts and
/// connections that fail are [`StoreError::Unavailable`] (503, retry later); the rest (a
/// validation error, a missing table, a bug) is [`StoreError::Backend`] (500).
fn sdk_error<E>(err: SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let unavailable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            service.raw().status().is_server_error()
                || matches!(
                    err.code(),
                    Some(
                        "ProvisionedThroughputExceededException"
                            | "ThrottlingException"
                            | "RequestLimitExceeded"
                            | "LimitExceededException"
                    )
                )
                // A transaction cancelled because one of its items was throttled: its
                // reasons are only in the message (the typed reasons need the typed error).
                || (err.code() == Some("TransactionCanceledException")
                    && err.message().is_some_and(|m| m.contains("Throttl")))
        }
        _ => false,
    };
    if unavailable {
        StoreError::Unavailable(Box::new(err))
    } else {
        StoreError::Backend(Box::new(err))
    }
}

/// Why a TransactWriteItems was cancelled, from its per-item cancellation reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cancelled {
    /// Items of the transaction failed their condition expressions: `index` is the first
    /// of them, `last` the last (a caller check, last in its transaction, is seen even
    /// when an earlier item failed too).
    ConditionFailed { index: usize, last: usize },
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
    let failed = |r: &&aws_sdk_dynamodb::types::CancellationReason| {
        r.code() == Some("ConditionalCheckFailed")
    };
    if let (Some(index), Some(last)) = (
        reasons.iter().position(|r| failed(&r)),
        reasons.iter().rposition(|r| failed(&r)),
    ) {
        return Some(Cancelled::ConditionFailed { index, last });
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

/// What [`DynamoUserStore::change_user`] writes.
struct UserWrite<'a> {
    changes: &'a UserChanges,
    /// Bump the token version whatever changes ("log out everywhere").
    revoke_all: bool,
    /// A new password hash, and how it replaces the stored one.
    password: Option<(&'a StoredHash, PasswordWrite<'a>)>,
    /// Who it is for: a caller's write also checks that the caller still stands.
    actor: Actor<'a>,
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
            .map_err(sdk_error)?;
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

    /// Both items of the user with this id: its profile (`None` if there is no such user)
    /// and the credential item of its username, if that still belongs to it.
    async fn get_user_items(
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
    fn user_update(
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
    fn delete_existing(
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
    async fn change_user(
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
    fn caller_checks(
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
        let next = if users.len() > limit {
            users.truncate(limit);
            users.last().map(PageKey::after)
        } else {
            None
        };
        Ok(UserPage { users, next })
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
        Err(err) => return Err(sdk_error(err)),
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
            .map_err(sdk_error)?;
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
            .map_err(sdk_error)?
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
        // DynamoDB Local on a busy test machine (a JVM, GC pauses) is slower than DynamoDB.
        .timeout_config(timeouts(Duration::from_secs(3), Duration::from_secs(6)))
        .build();
    Client::from_conf(config)
}

/// The DynamoDB client on AWS: the SDK's configuration with our timeouts.
pub fn aws_client(sdk_config: &aws_types::SdkConfig) -> Client {
    let config = aws_sdk_dynamodb::config::Builder::from(sdk_config)
        .timeout_config(timeouts(Duration::from_secs(1), Duration::from_secs(3)))
        .build();
    Client::from_conf(config)
}

/// Bounds on one DynamoDB call: the SDK sets none by default, so a DynamoDB that accepts a
/// connection and never answers would hold a request until the Lambda timeout (a 502 from
/// API Gateway). With these, each attempt and the call as a whole (retries included) give
/// up in time for the request to be answered 503 with `Retry-After`.
fn timeouts(
    attempt: Duration,
    operation: Duration,
) -> aws_sdk_dynamodb::config::timeout::TimeoutConfig {
    aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
        .connect_timeout(attempt)
        .operation_attempt_timeout(attempt)
        .operation_timeout(operation)
        .build()
}

/// Whether a single-item write failed its condition expression.
fn update_condition_failed(
    err: &SdkError<UpdateItemError, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> bool {
    matches!(
        err.as_service_error(),
        Some(UpdateItemError::ConditionalCheckFailedException(_))
    )
}

fn put_condition_failed(
    err: &SdkError<PutItemError, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> bool {
    matches!(
        err.as_service_error(),
        Some(PutItemError::ConditionalCheckFailedException(_))
    )
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
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(err) => match cancellation(&err) {
                    Some(Cancelled::ConditionFailed { .. }) => {
                        return Err(StoreError::CallerRevoked);
                    }
                    Some(Cancelled::Conflict) if attempt + 1 < MAX_WRITE_ATTEMPTS => {
                        backoff(attempt).await
                    }
                    Some(Cancelled::Conflict) => return Err(StoreError::unavailable(err)),
                    None => return Err(sdk_error(err)),
                },
            }
        }
        Err(StoreError::unavailable(
            "end_session: too many conflicting writes",
        ))
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
            .update_expression("SET #last_refused_at = :now")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#last_refused_at", "last_refused_at")
            .expression_attribute_values(":now", number(now))
            .send()
            .await;
        match result {
            // Cleared by a parallel success, or expired: not brought back without its TTL.
            Err(err) if update_condition_failed(&err) => Ok(()),
            other => other.map(|_| ()).map_err(sdk_error),
        }
    }
}

#[async_trait::async_trait]
impl PublicKeyStore for DynamoUserStore {
    async fn published_keys(&self) -> Result<Option<crate::keys::PublishedKeys>, StoreError> {
        let Some(item) = self.get_item(PUBLIC_KEYS_PK.into()).await? else {
            return Ok(None);
        };
        match item.get("public_keys") {
            Some(AttributeValue::S(json)) => serde_json::from_str(json)
                .map(Some)
                .map_err(|err| StoreError::backend(format!("published keys: {err}"))),
            _ => Err(StoreError::backend(
                "published keys item without public_keys",
            )),
        }
    }

    async fn publish_keys(
        &self,
        keys: &crate::keys::PublishedKeys,
        now: u64,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(keys)
            .map_err(|err| StoreError::backend(format!("published keys: {err}")))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(PUBLIC_KEYS_PK.into()))
            .item("public_keys", AttributeValue::S(json))
            .item("published_at", number(now))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorization_projection_names_exactly_the_attributes_iam_allows() {
        let named: Vec<String> = AUTHORIZATION_STATE_ATTRIBUTES
            .iter()
            .map(|name| format!("#{name}"))
            .collect();
        assert_eq!(AUTHORIZATION_STATE_PROJECTION, named.join(", "));
    }
}
