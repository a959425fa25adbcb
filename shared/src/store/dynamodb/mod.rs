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
//! The [`SessionStore`], the [`LoginFailureStore`] and the [`PublicKeyStore`] live in the
//! same table, in items that have no `kind` (so the index
//! never sees them) and expire through the table's TTL attribute [`TTL_ATTRIBUTE`]:
//!
//! - `REVOKED#<jti>`: an access token on the deny-list, until its `exp` plus the leeway.
//! - `REFRESH#<sha-256 hex>`: a refresh token (only its hash), with `retired_at` once
//!   rotated; `FAMILY#<family id>`: `revoked = true` once its family (session) is revoked.
//! - `FAILURES#<counter>`: a failed-login counter ([`LoginFailureStore`]: per username,
//!   known device, source address or password change), changed only by atomic updates.
//! - `LEASE#<name>`: a short lease ([`SessionStore::take_lease`]), until its `expires_at`.
//! - `FACTOR#<user id>`: the user's second factor (sealed TOTP secret, last step spent,
//!   recovery-code hashes); `CHALLENGE#<id>`: a sign-in challenge already used
//!   ([`crate::store::second_factor`]).
//! - `KEYS#public`: the public token keys (JWK Set and retirement times) that rotation
//!   publishes for the authorizer, which reads no private key.
//!
//! The table layout is the `UsersTable` of `template.yaml`; [`create_table`] builds the same
//! table for DynamoDB Local.

use super::{
    Actor, AuthorizationState, LoginFailureStore, LoginFailures, LoginRecord, NewRefreshToken,
    NewUser, PageKey, PasswordWrite, PublicKeyStore, RefreshTokenRecord, Rotation, SessionStore,
    StandingCaller, StoreError, UserAuthState, UserChanges, UserPage, UserStore,
};
use crate::crypto::password::StoredHash;
use crate::users::user::{Role, User, new_user_id};
use aws_sdk_dynamodb::Client;
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

mod factors;
mod failures;
mod keys;
mod sessions;
mod table;
mod users;

pub use table::create_table;

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
const FACTOR_PREFIX: &str = "FACTOR#";
const CHALLENGE_PREFIX: &str = "CHALLENGE#";

/// Every kind of item in the table, by the prefix of its key (`KEYS#public` is one item):
/// what the functions' IAM policies allow by `dynamodb:LeadingKeys` (checked by a test
/// over `template.yaml`).
pub const ITEM_KEY_PREFIXES: [&str; 9] = [
    PROFILE_PREFIX,
    CREDENTIAL_PREFIX,
    REVOKED_PREFIX,
    REFRESH_PREFIX,
    FAMILY_PREFIX,
    FAILURES_PREFIX,
    LEASE_PREFIX,
    FACTOR_PREFIX,
    CHALLENGE_PREFIX,
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

/// A refresh-token family (one login's session): `pk = FAMILY#<family id>`, written only
/// when the family is revoked. Read by sessions and by the authorization state of users.
#[derive(Deserialize)]
struct FamilyItem {
    #[serde(default)]
    revoked: bool,
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

/// Which items of a transaction failed their conditions: the first and the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ConditionsFailed {
    index: usize,
    last: usize,
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
    crate::crypto::secret::fill_random(&mut random);
    let jitter_ms = u64::from(u16::from_le_bytes(random)) % (cap_ms + 1);
    tokio::time::sleep(Duration::from_millis(jitter_ms.max(1))).await;
}

impl DynamoUserStore {
    /// One TransactWriteItems, tried again (with back-off) while another write touches one
    /// of its items at the same moment: `Ok(None)` once it landed, `Ok(Some(cancelled))`
    /// when conditions of its items failed (nothing was written).
    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Option<ConditionsFailed>, StoreError> {
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(None),
                Err(err) => match cancellation(&err) {
                    Some(Cancelled::ConditionFailed { index, last }) => {
                        return Ok(Some(ConditionsFailed { index, last }));
                    }
                    Some(Cancelled::Conflict) if attempt + 1 < MAX_WRITE_ATTEMPTS => {
                        backoff(attempt).await
                    }
                    Some(Cancelled::Conflict) => return Err(StoreError::unavailable(err)),
                    None => return Err(sdk_error(err)),
                },
            }
        }
        Err(StoreError::backend("unreachable: the last attempt returns"))
    }

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
