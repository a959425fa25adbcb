//! A store that can hold one write at the door: the request has passed its re-check and
//! computed what to write, and the write waits until the test releases it. Between the two,
//! a test revokes the caller, which is the race a request in flight meets in production.

use jwt_auth_core::crypto::keys::PublishedKeys;
use jwt_auth_core::crypto::password::StoredHash;
use jwt_auth_core::crypto::recovery_codes::RecoveryCodeHash;
use jwt_auth_core::store::second_factor::{SecondFactor, SecondFactorStore};
use jwt_auth_core::store::{
    Actor, AuthorizationState, LoginFailureStore, LoginFailures, LoginRecord, NewRefreshToken,
    NewUser, PageKey, PasswordWrite, PublicKeyStore, RefreshTokenRecord, Rotation, SessionStore,
    StandingCaller, Store, StoreError, UserChanges, UserPage, UserStore,
};
use jwt_auth_core::users::user::User;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::Notify;

/// Delegates everything to `inner`; the next write after [`HeldStore::hold_next_write`]
/// waits until [`HeldStore::release`].
pub struct HeldStore {
    inner: Arc<dyn Store>,
    armed: AtomicBool,
    reached: Notify,
    released: Notify,
    /// Reads of second factors so far (tests of the work a login does).
    factor_reads: AtomicUsize,
}

impl HeldStore {
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            armed: AtomicBool::new(false),
            reached: Notify::new(),
            released: Notify::new(),
            factor_reads: AtomicUsize::new(0),
        })
    }

    /// The store behind the door, for the test's own writes while one is held.
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    /// How many times a second factor was read through this store.
    pub fn factor_reads(&self) -> usize {
        self.factor_reads.load(Ordering::SeqCst)
    }

    pub fn hold_next_write(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Returns once a write is waiting at the door.
    pub async fn held(&self) {
        self.reached.notified().await;
    }

    pub fn release(&self) {
        self.released.notify_one();
    }

    async fn door(&self) {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.reached.notify_one();
            self.released.notified().await;
        }
    }
}

#[async_trait::async_trait]
impl UserStore for HeldStore {
    async fn create_user(
        &self,
        new_user: NewUser,
        now: u64,
        actor: Actor<'_>,
    ) -> Result<User, StoreError> {
        self.door().await;
        self.inner.create_user(new_user, now, actor).await
    }
    async fn get_user(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.inner.get_user(id).await
    }
    async fn find_login(&self, username: &str) -> Result<Option<LoginRecord>, StoreError> {
        self.inner.find_login(username).await
    }
    async fn list_users(
        &self,
        limit: usize,
        after: Option<&PageKey>,
    ) -> Result<UserPage, StoreError> {
        self.inner.list_users(limit, after).await
    }
    async fn update_user(
        &self,
        id: &str,
        changes: UserChanges,
        actor: Actor<'_>,
    ) -> Result<User, StoreError> {
        self.door().await;
        self.inner.update_user(id, changes, actor).await
    }
    async fn delete_user(&self, id: &str, actor: Actor<'_>) -> Result<(), StoreError> {
        self.door().await;
        self.inner.delete_user(id, actor).await
    }
    async fn revoke_all_tokens(&self, id: &str, actor: Actor<'_>) -> Result<(), StoreError> {
        self.door().await;
        self.inner.revoke_all_tokens(id, actor).await
    }
    async fn authorization_state(
        &self,
        id: &str,
        jti: &str,
        sid: &str,
    ) -> Result<AuthorizationState, StoreError> {
        self.inner.authorization_state(id, jti, sid).await
    }
    async fn set_password_hash(
        &self,
        id: &str,
        password_hash: StoredHash,
        write: PasswordWrite<'_>,
        actor: Actor<'_>,
    ) -> Result<(User, u64), StoreError> {
        self.door().await;
        self.inner
            .set_password_hash(id, password_hash, write, actor)
            .await
    }
}

#[async_trait::async_trait]
impl SessionStore for HeldStore {
    async fn create_refresh_token(&self, token: NewRefreshToken) -> Result<(), StoreError> {
        self.inner.create_refresh_token(token).await
    }
    async fn find_refresh_token(
        &self,
        hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, StoreError> {
        self.inner.find_refresh_token(hash).await
    }
    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        successor: NewRefreshToken,
        now: u64,
    ) -> Result<Rotation, StoreError> {
        self.inner
            .rotate_refresh_token(old_hash, successor, now)
            .await
    }
    async fn revoke_family(&self, family_id: &str, expires_at: u64) -> Result<(), StoreError> {
        self.inner.revoke_family(family_id, expires_at).await
    }
    async fn revoke_access_token(&self, jti: &str, expires_at: u64) -> Result<(), StoreError> {
        self.inner.revoke_access_token(jti, expires_at).await
    }
    async fn end_session(
        &self,
        caller: StandingCaller<'_>,
        jti_expires_at: u64,
        session_expires_at: u64,
    ) -> Result<(), StoreError> {
        self.door().await;
        self.inner
            .end_session(caller, jti_expires_at, session_expires_at)
            .await
    }
    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: u64,
        until: u64,
    ) -> Result<bool, StoreError> {
        self.inner.take_lease(name, holder, now, until).await
    }
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.inner.release_lease(name, holder).await
    }
}

#[async_trait::async_trait]
impl LoginFailureStore for HeldStore {
    async fn login_failures(&self, username: &str) -> Result<LoginFailures, StoreError> {
        self.inner.login_failures(username).await
    }
    async fn count_login_attempt(
        &self,
        username: &str,
        now: u64,
        window_secs: u64,
    ) -> Result<LoginFailures, StoreError> {
        self.inner
            .count_login_attempt(username, now, window_secs)
            .await
    }
    async fn lock_login(
        &self,
        username: &str,
        seen_locks: u64,
        now: u64,
        locked_until: u64,
    ) -> Result<bool, StoreError> {
        self.inner
            .lock_login(username, seen_locks, now, locked_until)
            .await
    }
    async fn clear_login_failures(&self, username: &str) -> Result<(), StoreError> {
        self.inner.clear_login_failures(username).await
    }
    async fn uncount_login_attempt(&self, counter: &str) -> Result<(), StoreError> {
        self.inner.uncount_login_attempt(counter).await
    }
    async fn record_refused_login(&self, counter: &str, now: u64) -> Result<(), StoreError> {
        self.inner.record_refused_login(counter, now).await
    }
}

#[async_trait::async_trait]
impl PublicKeyStore for HeldStore {
    async fn published_keys(&self) -> Result<Option<PublishedKeys>, StoreError> {
        self.inner.published_keys().await
    }
    async fn publish_keys(&self, keys: &PublishedKeys, now: u64) -> Result<(), StoreError> {
        self.inner.publish_keys(keys, now).await
    }
}

#[async_trait::async_trait]
impl SecondFactorStore for HeldStore {
    async fn second_factor(
        &self,
        user_id: &str,
        now: u64,
    ) -> Result<Option<SecondFactor>, StoreError> {
        self.factor_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.second_factor(user_id, now).await
    }
    async fn start_enrolment(
        &self,
        user_id: &str,
        sealed_secret: &str,
        expires_at: u64,
        now: u64,
        actor: Actor<'_>,
    ) -> Result<bool, StoreError> {
        self.door().await;
        self.inner
            .start_enrolment(user_id, sealed_secret, expires_at, now, actor)
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
        self.door().await;
        self.inner
            .activate_factor(user_id, sealed_secret, step, recovery_codes, now, actor)
            .await
    }
    async fn spend_step(
        &self,
        user_id: &str,
        sealed_secret: &str,
        step: u64,
    ) -> Result<bool, StoreError> {
        self.inner.spend_step(user_id, sealed_secret, step).await
    }
    async fn remove_factor(&self, user_id: &str, actor: Actor<'_>) -> Result<(), StoreError> {
        self.door().await;
        self.inner.remove_factor(user_id, actor).await
    }
    async fn spend_sign_in(
        &self,
        user_id: &str,
        proof: jwt_auth_core::store::second_factor::SignInProof<'_>,
        challenge_id: &str,
        challenge_expires_at: u64,
    ) -> Result<jwt_auth_core::store::second_factor::SignInSpend, StoreError> {
        self.inner
            .spend_sign_in(user_id, proof, challenge_id, challenge_expires_at)
            .await
    }
}
