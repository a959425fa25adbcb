//! An in-memory store (every trait of [`super::Store`]) for local runs and unit tests. It keeps
//! the same contract as the DynamoDB store (same ordering, same uniqueness, same errors,
//! same atomicity) and passes the same test suite.

use super::{
    Actor, AuthorizationState, LoginFailureStore, LoginFailures, LoginRecord, NewRefreshToken,
    NewUser, PageKey, PasswordWrite, RefreshTokenRecord, Rotation, SessionStore, StandingCaller,
    StoreError, UserAuthState, UserChanges, UserPage, UserStore,
};
use crate::crypto::password::StoredHash;
use crate::store::PublicKeyStore;
use crate::users::user::{User, new_user_id};
use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

mod factors;
mod failures;
mod keys;
mod sessions;
mod users;

#[derive(Default)]
pub struct MemoryUserStore {
    state: RwLock<State>,
}

#[derive(Default)]
struct State {
    by_id: HashMap<String, LoginRecord>,
    /// username -> id, ordered like the DynamoDB `by-kind` index.
    by_username: BTreeMap<String, String>,
    /// refresh-token hash -> (token, retired_at)
    refresh_tokens: HashMap<String, (NewRefreshToken, Option<u64>)>,
    /// family id -> expires_at
    revoked_families: HashMap<String, u64>,
    /// jti -> expires_at
    revoked_jtis: HashMap<String, u64>,
    login_failures: HashMap<String, LoginFailures>,
    /// lease name -> (holder, held until)
    leases: HashMap<String, (String, u64)>,
    published_keys: Option<crate::crypto::keys::published::PublishedKeys>,
    /// user id -> its TOTP factor
    second_factors: HashMap<String, crate::store::second_factor::SecondFactor>,
    /// sign-in challenge id -> kept until
    challenges: HashMap<String, u64>,
}

impl State {
    /// Checks `actor` under the same write lock as the write it guards, so nothing can
    /// revoke the caller between this check and the write.
    fn check(&self, actor: Actor<'_>) -> Result<(), StoreError> {
        match actor {
            Actor::Operator => Ok(()),
            Actor::Caller(caller) if self.stands(&caller) => Ok(()),
            Actor::Caller(_) => Err(StoreError::CallerRevoked),
        }
    }

    fn stands(&self, caller: &StandingCaller<'_>) -> bool {
        self.by_id
            .get(caller.id)
            .is_some_and(|record| caller.is_stood_for_by(&record.user, record.token_version))
            && !self.revoked_jtis.contains_key(caller.jti)
            && !self.revoked_families.contains_key(caller.sid)
    }
}

impl MemoryUserStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere mid-update; every update here is a
        // few inserts with no await in between, so the data is still consistent.
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
