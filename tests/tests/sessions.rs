//! The token lifecycle and account safety, at the use-case level with time under the test's
//! control, on both stores: refresh rotation, reuse detection, expiry, logout, log out
//! everywhere, disabling, role changes, deletion, lockout, and the authorizer's revocation
//! checks (SECURITY.md rows 20, 28, 32-36).

use authorizer::{AuthorizerError, authorize};
use integration_tests::{TestApp, authorizer_event};
use jwt_auth_core::ApiError;
use jwt_auth_core::crypto::password::PasswordHasher;
use jwt_auth_core::sessions::lockout::{LOCK_THRESHOLD, lock_secs};
use jwt_auth_core::sessions::login::{
    LoginRequest, REFRESH_REUSE_GRACE_SECS, RefreshRequest, TokenResponse,
};
use jwt_auth_core::store::Actor;
use jwt_auth_core::store::{PasswordWrite, UserChanges};
use jwt_auth_core::users::user::{Role, User};
use jwt_auth_core::web::request::Caller;
use secrecy::SecretString;
use std::sync::Arc;

const PASSWORD: &str = "a-long-test-password";
/// Tests run at a fixed "now"; tokens are verified at the same time.
const T0: u64 = 1_900_000_000;
/// Where the logins come from, unless a test says otherwise.
const SOURCE_IP: &str = "198.51.100.20";

async fn login_at(
    app: &TestApp,
    username: &str,
    password: &str,
    now: u64,
) -> Result<TokenResponse, ApiError> {
    let request = LoginRequest {
        username: username.into(),
        password: SecretString::from(password.to_string()),
        device_token: None,
    };
    app.login
        .login(request, SOURCE_IP, now)
        .await
        .map(|answer| answer.tokens().expect("no second factor: tokens"))
}

async fn refresh_at(
    app: &TestApp,
    refresh_token: &str,
    now: u64,
) -> Result<TokenResponse, ApiError> {
    let request = RefreshRequest {
        refresh_token: SecretString::from(refresh_token.to_string()),
    };
    app.login.refresh(request, now).await
}

/// What the authorizer says of this access token at `now` (no gateway cache involved).
async fn authorizer_at(app: &TestApp, access_token: &str, now: u64) -> Result<(), AuthorizerError> {
    let mut event = authorizer_event("authorizer-valid.json");
    event.authorization_token = Some(format!("Bearer {access_token}"));
    authorize(
        &event,
        &app.verifier,
        &app.permissions,
        app.store.as_ref(),
        now,
    )
    .await
    .map(|_| ())
}

/// The caller as the backend sees it behind the authorizer.
fn caller(app: &TestApp, access_token: &str, now: u64) -> Caller {
    app.caller(access_token, now)
}

async fn alice(app: &TestApp) -> User {
    app.create_user("alice", Role::Customer, PASSWORD).await
}

fn is_invalid_refresh(result: Result<TokenResponse, ApiError>) -> bool {
    matches!(result, Err(ApiError::InvalidRefreshToken))
}

async fn refresh_rotates_the_token_and_retires_the_old_one(app: TestApp) {
    alice(&app).await;
    let first = login_at(&app, "alice", PASSWORD, T0).await.unwrap();
    assert_eq!(first.refresh_token.len(), 43, "256 random bits, base64url");
    let second = refresh_at(&app, &first.refresh_token, T0 + 60)
        .await
        .unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_ne!(second.access_token, first.access_token);
    assert!(
        authorizer_at(&app, &second.access_token, T0 + 60)
            .await
            .is_ok()
    );
    let third = refresh_at(&app, &second.refresh_token, T0 + 120)
        .await
        .unwrap();
    let (a, b) = (
        caller(&app, &first.access_token, T0),
        caller(&app, &third.access_token, T0 + 120),
    );
    assert_eq!(a.sid, b.sid, "rotation keeps the session");
}

async fn reusing_a_retired_refresh_token_revokes_the_whole_family(app: TestApp) {
    alice(&app).await;
    let stolen = login_at(&app, "alice", PASSWORD, T0).await.unwrap();
    let legitimate = refresh_at(&app, &stolen.refresh_token, T0 + 60)
        .await
        .unwrap();
    // The thief replays the old token well after the grace window.
    let replay_at = T0 + 60 + REFRESH_REUSE_GRACE_SECS + 1;
    assert!(is_invalid_refresh(
        refresh_at(&app, &stolen.refresh_token, replay_at).await
    ));
    // Now the legitimate successor is dead too: the user must log in again.
    assert!(is_invalid_refresh(
        refresh_at(&app, &legitimate.refresh_token, replay_at + 1).await
    ));
    // A new login starts a new family that works.
    let fresh = login_at(&app, "alice", PASSWORD, replay_at + 2)
        .await
        .unwrap();
    assert!(
        refresh_at(&app, &fresh.refresh_token, replay_at + 3)
            .await
            .is_ok()
    );
}

async fn a_retry_within_the_grace_window_is_refused_without_revoking(app: TestApp) {
    alice(&app).await;
    let first = login_at(&app, "alice", PASSWORD, T0).await.unwrap();
    let second = refresh_at(&app, &first.refresh_token, T0).await.unwrap();
    assert!(is_invalid_refresh(
        refresh_at(&app, &first.refresh_token, T0 + REFRESH_REUSE_GRACE_SECS).await
    ));
    assert!(
        refresh_at(
            &app,
            &second.refresh_token,
            T0 + REFRESH_REUSE_GRACE_SECS + 1
        )
        .await
        .is_ok()
    );
}

async fn an_expired_refresh_token_is_refused(app: TestApp) {
    alice(&app).await;
    let first = login_at(&app, "alice", PASSWORD, T0).await.unwrap();
    let expiry = T0 + first.refresh_expires_in;
    assert!(is_invalid_refresh(
        refresh_at(&app, &first.refresh_token, expiry).await
    ));
    assert!(is_invalid_refresh(
        refresh_at(&app, "not-a-token-we-issued", T0).await
    ));
    assert!(is_invalid_refresh(refresh_at(&app, "", T0).await));
    assert!(is_invalid_refresh(
        refresh_at(&app, "with spaces and *", T0).await
    ));
}

async fn parallel_refreshes_of_one_token_let_exactly_one_succeed(app: TestApp) {
    alice(&app).await;
    let first = login_at(&app, "alice", PASSWORD, T0).await.unwrap();
    let app = Arc::new(app);
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let app = Arc::clone(&app);
            let token = first.refresh_token.clone();
            tokio::spawn(async move { refresh_at(&app, &token, T0 + 1).await.is_ok() })
        })
        .collect();
    let mut succeeded = 0;
    for attempt in attempts {
        succeeded += usize::from(attempt.await.unwrap());
    }
    assert_eq!(succeeded, 1);
}

async fn logout_revokes_the_access_token_and_the_session(app: TestApp) {
    alice(&app).await;
    let session = login_at(&app, "alice", PASSWORD, T0).await.unwrap();
    let other = login_at(&app, "alice", PASSWORD, T0).await.unwrap();
    assert!(
        authorizer_at(&app, &session.access_token, T0 + 1)
            .await
            .is_ok()
    );
    app.login
        .logout(&caller(&app, &session.access_token, T0 + 1), T0 + 1)
        .await
        .unwrap();
    assert_eq!(
        authorizer_at(&app, &session.access_token, T0 + 2).await,
        Err(AuthorizerError::Unauthorized)
    );
    assert!(is_invalid_refresh(
        refresh_at(&app, &session.refresh_token, T0 + 2).await
    ));
    // Another session of the same user is untouched.
    assert!(
        authorizer_at(&app, &other.access_token, T0 + 2)
            .await
            .is_ok()
    );
    assert!(refresh_at(&app, &other.refresh_token, T0 + 2).await.is_ok());
}

async fn logout_everywhere_revokes_every_earlier_token(app: TestApp) {
    alice(&app).await;
    let one = login_at(&app, "alice", PASSWORD, T0).await.unwrap();
    let two = login_at(&app, "alice", PASSWORD, T0).await.unwrap();
    app.login
        .logout_everywhere(&caller(&app, &one.access_token, T0 + 1), T0 + 1)
        .await
        .unwrap();
    for session in [&one, &two] {
        assert_eq!(
            authorizer_at(&app, &session.access_token, T0 + 2).await,
            Err(AuthorizerError::Unauthorized)
        );
        assert!(is_invalid_refresh(
            refresh_at(&app, &session.refresh_token, T0 + 2).await
        ));
    }
    // Logging in again, even in the same second, works.
    let again = login_at(&app, "alice", PASSWORD, T0 + 1).await.unwrap();
    assert!(
        authorizer_at(&app, &again.access_token, T0 + 2)
            .await
            .is_ok()
    );
    assert!(refresh_at(&app, &again.refresh_token, T0 + 2).await.is_ok());
}

async fn disabling_a_user_revokes_its_tokens_and_blocks_login(app: TestApp) {
    let user = alice(&app).await;
    let session = login_at(&app, "alice", PASSWORD, T0).await.unwrap();
    app.store
        .set_disabled(&user.id, true, Actor::Operator)
        .await
        .unwrap();
    assert_eq!(
        authorizer_at(&app, &session.access_token, T0 + 1).await,
        Err(AuthorizerError::Unauthorized)
    );
    assert!(is_invalid_refresh(
        refresh_at(&app, &session.refresh_token, T0 + 1).await
    ));
    assert!(matches!(
        login_at(&app, "alice", PASSWORD, T0 + 1).await,
        Err(ApiError::InvalidCredentials)
    ));
    app.store
        .set_disabled(&user.id, false, Actor::Operator)
        .await
        .unwrap();
    assert!(login_at(&app, "alice", PASSWORD, T0 + 2).await.is_ok());
    assert_eq!(
        authorizer_at(&app, &session.access_token, T0 + 2).await,
        Err(AuthorizerError::Unauthorized),
        "re-enabling does not bring old tokens back"
    );
}

async fn a_role_change_revokes_tokens_carrying_the_old_role(app: TestApp) {
    let user = alice(&app).await;
    let session = login_at(&app, "alice", PASSWORD, T0).await.unwrap();
    let changes = UserChanges {
        role: Some(Role::Admin),
        ..UserChanges::default()
    };
    app.store
        .update_user(&user.id, changes, Actor::Operator)
        .await
        .unwrap();
    assert_eq!(
        authorizer_at(&app, &session.access_token, T0 + 1).await,
        Err(AuthorizerError::Unauthorized)
    );
    let promoted = login_at(&app, "alice", PASSWORD, T0 + 1).await.unwrap();
    assert_eq!(promoted.user.role, Role::Admin);
    assert!(
        authorizer_at(&app, &promoted.access_token, T0 + 1)
            .await
            .is_ok()
    );
    // A name change is not a security change: tokens survive it.
    let rename = UserChanges {
        name: Some("Alice A.".into()),
        ..UserChanges::default()
    };
    app.store
        .update_user(&user.id, rename, Actor::Operator)
        .await
        .unwrap();
    assert!(
        authorizer_at(&app, &promoted.access_token, T0 + 1)
            .await
            .is_ok()
    );
}

async fn a_deleted_user_is_refused_by_the_authorizer(app: TestApp) {
    let user = alice(&app).await;
    let session = login_at(&app, "alice", PASSWORD, T0).await.unwrap();
    app.store
        .delete_user(&user.id, Actor::Operator)
        .await
        .unwrap();
    assert_eq!(
        authorizer_at(&app, &session.access_token, T0 + 1).await,
        Err(AuthorizerError::Unauthorized)
    );
    assert!(is_invalid_refresh(
        refresh_at(&app, &session.refresh_token, T0 + 1).await
    ));
}

async fn failed_logins_lock_the_account_with_back_off_then_the_lock_ends(app: TestApp) {
    alice(&app).await;
    for attempt in 0..LOCK_THRESHOLD {
        let result = login_at(&app, "alice", "wrong-password", T0 + attempt).await;
        assert!(
            matches!(result, Err(ApiError::InvalidCredentials)),
            "attempt {attempt}"
        );
    }
    // Past the threshold: locked, even for the right password, with the time to wait.
    let locked_at = T0 + LOCK_THRESHOLD;
    let locked = login_at(&app, "alice", PASSWORD, locked_at).await;
    let Err(ApiError::TooManyAttempts { retry_after_secs }) = locked else {
        panic!("expected a lock, got {:?}", locked.map(|_| ()));
    };
    assert_eq!(retry_after_secs, lock_secs(1));
    // Attempts during the lock are refused unchecked and do not extend it.
    let until = locked_at + lock_secs(1);
    for at in [locked_at + 1, until - 1] {
        let refused = login_at(&app, "alice", "wrong-password", at).await;
        assert!(
            matches!(refused, Err(ApiError::TooManyAttempts { retry_after_secs }) if retry_after_secs == until - at)
        );
    }
    // The lock ends by itself, and a success clears the count.
    assert!(login_at(&app, "alice", PASSWORD, until).await.is_ok());
    assert_eq!(
        app.store.login_failures("alice").await.unwrap(),
        Default::default()
    );
}

async fn the_next_lock_after_more_failures_is_longer(app: TestApp) {
    alice(&app).await;
    for attempt in 0..=LOCK_THRESHOLD {
        let _ = login_at(&app, "alice", "wrong-password", T0 + attempt).await;
    }
    // One attempt is checked when the first lock ends; it fails and starts a longer lock.
    let first_lock_end = T0 + LOCK_THRESHOLD + lock_secs(1);
    let probe = login_at(&app, "alice", "wrong-password", first_lock_end).await;
    assert!(matches!(probe, Err(ApiError::InvalidCredentials)));
    let Err(ApiError::TooManyAttempts { retry_after_secs }) =
        login_at(&app, "alice", PASSWORD, first_lock_end).await
    else {
        panic!("expected a longer lock");
    };
    assert_eq!(retry_after_secs, lock_secs(2));
}

async fn an_unknown_username_is_locked_exactly_like_a_known_one(app: TestApp) {
    alice(&app).await;
    for name in ["alice", "nobody"] {
        for attempt in 0..LOCK_THRESHOLD {
            assert!(matches!(
                login_at(&app, name, "wrong-password", T0 + attempt).await,
                Err(ApiError::InvalidCredentials)
            ));
        }
    }
    let alice_locked = login_at(&app, "alice", PASSWORD, T0 + LOCK_THRESHOLD).await;
    let nobody_locked = login_at(&app, "nobody", PASSWORD, T0 + LOCK_THRESHOLD).await;
    let (Err(alice_error), Err(nobody_error)) = (alice_locked, nobody_locked) else {
        panic!("both are locked");
    };
    let (a, b) = (alice_error.into_response(), nobody_error.into_response());
    assert_eq!(a.status(), 429);
    assert_eq!(
        (a.status(), a.headers(), a.body()),
        (b.status(), b.headers(), b.body())
    );
}

async fn parallel_wrong_passwords_count_exactly(app: TestApp) {
    alice(&app).await;
    let app = Arc::new(app);
    let parallel = LOCK_THRESHOLD - 1;
    let attempts: Vec<_> = (0..parallel)
        .map(|_| {
            let app = Arc::clone(&app);
            tokio::spawn(
                async move { login_at(&app, "alice", "wrong-password", T0).await.is_err() },
            )
        })
        .collect();
    for attempt in attempts {
        assert!(attempt.await.unwrap());
    }
    assert_eq!(
        app.store.login_failures("alice").await.unwrap().count,
        parallel
    );
}

async fn a_parallel_burst_gets_no_more_password_checks_than_the_threshold(app: TestApp) {
    alice(&app).await;
    let app = Arc::new(app);
    let burst = 4 * LOCK_THRESHOLD;
    let attempts: Vec<_> = (0..burst)
        .map(|_| {
            let app = Arc::clone(&app);
            tokio::spawn(async move { login_at(&app, "alice", "wrong-password", T0).await })
        })
        .collect();
    let (mut checked, mut throttled) = (0, 0);
    for attempt in attempts {
        match attempt.await.unwrap() {
            Err(ApiError::InvalidCredentials) => checked += 1,
            Err(ApiError::TooManyAttempts { .. }) => throttled += 1,
            other => panic!("unexpected {:?}", other.map(|_| ())),
        }
    }
    // Every attempt is counted before any password is checked.
    assert_eq!(
        (checked, throttled),
        (LOCK_THRESHOLD, burst - LOCK_THRESHOLD)
    );
    assert_eq!(
        app.store.login_failures("alice").await.unwrap().count,
        burst
    );
}

async fn unknown_wrong_and_disabled_logins_do_the_same_work(app: TestApp) {
    alice(&app).await;
    let dora = app.create_user("dora", Role::Customer, PASSWORD).await;
    app.store
        .set_disabled(&dora.id, true, Actor::Operator)
        .await
        .unwrap();
    // A user with a second factor on: a wrong password must look like any other.
    let erin = app.create_user("erin", Role::Customer, PASSWORD).await;
    app.store
        .start_enrolment(&erin.id, "sealed", T0 + 900, T0, Actor::Operator)
        .await
        .unwrap();
    app.store
        .activate_factor(&erin.id, "sealed", 1, &[], T0, Actor::Operator)
        .await
        .unwrap();
    // Counts the second-factor reads: every attempt makes one, whoever it names.
    let counted = integration_tests::held_store::HeldStore::new(Arc::clone(&app.store));
    // A hasher of its own, so its counter sees only these logins.
    let hasher = Arc::new(PasswordHasher::new());
    let login = jwt_auth_core::sessions::login::LoginService {
        store: counted.clone(),
        hasher: Arc::clone(&hasher),
        issuer: jwt_auth_core::crypto::token::TokenIssuer::new(
            Arc::new(jwt_auth_core::crypto::token::TokenKeys::hs256(
                &jwt_auth_core::crypto::secret::SigningSecret::generate(),
            )),
            Default::default(),
        ),
        refresh_ttl_secs: 3600,
        session_max_secs: jwt_auth_core::startup::config::DEFAULT_SESSION_MAX_SECS,
        clock: jwt_auth_core::startup::clock::Clock::manual(T0),
        devices: jwt_auth_core::sessions::device::DeviceTokens::new(
            &jwt_auth_core::crypto::secret::SigningSecret::generate(),
        ),
        second_factor: jwt_auth_core::sessions::login::SecondFactorKeys::new(
            &jwt_auth_core::crypto::secret::SigningSecret::generate(),
        ),
        source_failure_limit: jwt_auth_core::sessions::lockout::DEFAULT_SOURCE_FAILURE_LIMIT,
        public_keys: jwt_auth_core::crypto::keys::live::LiveKeys::fixed(std::sync::Arc::new(
            jwt_auth_core::crypto::keys::KeyRing::from_published(&Default::default())
                .expect("an empty set"),
        )),
        cors: jwt_auth_core::web::cors::Cors::off(),
        second_factor_rule: jwt_auth_core::access::second_factor::SecondFactorRule::none(),
    };
    let mut answers = Vec::new();
    for (username, password) in [
        ("nobody", PASSWORD),
        ("alice", "wrong-password"),
        ("dora", PASSWORD),
        ("erin", "wrong-password"),
    ] {
        let before = hasher.computations();
        let reads_before = counted.factor_reads();
        let request = LoginRequest {
            username: username.into(),
            password: SecretString::from(password.to_string()),
            device_token: None,
        };
        let error = login.login(request, SOURCE_IP, T0).await.unwrap_err();
        assert_eq!(
            hasher.computations() - before,
            1,
            "{username}: exactly one argon2id verify"
        );
        assert_eq!(
            counted.factor_reads() - reads_before,
            1,
            "{username}: exactly one second-factor read"
        );
        let response = error.into_response();
        answers.push((
            response.status(),
            response.headers().clone(),
            format!("{:?}", response.body()),
        ));
        assert_eq!(
            app.store.login_failures(username).await.unwrap().count,
            1,
            "{username}: counted"
        );
    }
    assert!(
        answers.windows(2).all(|pair| pair[0] == pair[1]),
        "identical answers: {answers:?}"
    );
}

async fn a_hash_with_weaker_parameters_is_upgraded_at_login(app: TestApp) {
    let user = alice(&app).await;
    // As an older deployment with cheaper argon2 parameters would have stored it.
    let params = argon2::Params::new(8 * 1024, 1, 1, Some(32)).unwrap();
    let weak = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let phc = argon2::PasswordHasher::hash_password(&weak, PASSWORD.as_bytes())
        .unwrap()
        .to_string();
    assert!(phc.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"));
    let stored = jwt_auth_core::crypto::password::StoredHash::from_phc(phc);
    app.store
        .set_password_hash(&user.id, stored, PasswordWrite::Reset, Actor::Operator)
        .await
        .unwrap();
    login_at(&app, "alice", PASSWORD, T0).await.unwrap();
    let upgraded = app
        .store
        .find_login("alice")
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    assert!(
        upgraded
            .as_phc()
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
    );
    assert!(
        login_at(&app, "alice", PASSWORD, T0 + 1).await.is_ok(),
        "the new hash verifies"
    );
}

integration_tests::on_both_stores!(
    refresh_rotates_the_token_and_retires_the_old_one,
    reusing_a_retired_refresh_token_revokes_the_whole_family,
    a_retry_within_the_grace_window_is_refused_without_revoking,
    an_expired_refresh_token_is_refused,
    parallel_refreshes_of_one_token_let_exactly_one_succeed,
    logout_revokes_the_access_token_and_the_session,
    logout_everywhere_revokes_every_earlier_token,
    disabling_a_user_revokes_its_tokens_and_blocks_login,
    a_role_change_revokes_tokens_carrying_the_old_role,
    a_deleted_user_is_refused_by_the_authorizer,
    failed_logins_lock_the_account_with_back_off_then_the_lock_ends,
    the_next_lock_after_more_failures_is_longer,
    an_unknown_username_is_locked_exactly_like_a_known_one,
    parallel_wrong_passwords_count_exactly,
    a_parallel_burst_gets_no_more_password_checks_than_the_threshold,
    unknown_wrong_and_disabled_logins_do_the_same_work,
    a_hash_with_weaker_parameters_is_upgraded_at_login,
);
