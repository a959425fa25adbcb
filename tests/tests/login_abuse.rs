//! Login abuse that locks no one out for good (SECURITY.md rows 54-55), at the use-case
//! level on both stores with time under the test's control: an attacker holding a username
//! locked never locks out the user's known device (device tokens), a device that fails its
//! own threshold is locked by itself, invalid device tokens count as none, and one source
//! spraying many usernames is stopped at its limit.

use integration_tests::TestApp;
use jwt_auth_core::ApiError;
use jwt_auth_core::crypto::password::PasswordHasher;
use jwt_auth_core::crypto::secret::SigningSecret;
use jwt_auth_core::sessions::device::{DeviceOwner, DeviceTokens};
use jwt_auth_core::sessions::lockout::{LOCK_THRESHOLD, SOURCE_WINDOW_SECS, source_window_left};
use jwt_auth_core::sessions::login::{LoginRequest, TokenResponse};
use jwt_auth_core::store::Actor;
use jwt_auth_core::store::PasswordWrite;
use jwt_auth_core::users::user::Role;
use secrecy::SecretString;
use std::sync::Arc;

const PASSWORD: &str = "a-long-test-password";
/// The start of a per-source window, so a test's attempts stay in one window.
const T0: u64 = 1_900_000_000 - 1_900_000_000 % SOURCE_WINDOW_SECS;
const USER_IP: &str = "198.51.100.20";
const ATTACKER_IP: &str = "203.0.113.66";

async fn login(
    app: &TestApp,
    username: &str,
    password: &str,
    device_token: Option<&str>,
    source_ip: &str,
    now: u64,
) -> Result<TokenResponse, ApiError> {
    let request = LoginRequest {
        username: username.into(),
        password: SecretString::from(password.to_string()),
        device_token: device_token.map(|token| SecretString::from(token.to_string())),
    };
    app.login
        .login(request, source_ip, now)
        .await
        .map(|answer| answer.tokens().expect("no second factor: tokens"))
}

fn device_token_of(response: &TokenResponse) -> String {
    response.device_token.clone().expect("a device token")
}

fn is_locked(result: &Result<TokenResponse, ApiError>) -> bool {
    matches!(result, Err(ApiError::TooManyAttempts { .. }))
}

/// An attacker hammers alice's username for an hour from clients without her device token.
/// Untrusted clients (the attacker's, and a new browser of alice's) are held back; alice's
/// known device logs in at every point of the attack.
async fn an_attacker_hammering_a_username_never_locks_out_a_known_device(app: TestApp) {
    app.create_user("alice", Role::Customer, PASSWORD).await;
    let first = login(&app, "alice", PASSWORD, None, USER_IP, T0)
        .await
        .unwrap();
    let mut device = device_token_of(&first);

    let mut attacker_locked_out = false;
    for minute in 1..=60 {
        let now = T0 + minute * 60;
        let guess = login(&app, "alice", "an attacker's guess", None, ATTACKER_IP, now).await;
        attacker_locked_out |= is_locked(&guess);
        assert!(guess.is_err(), "minute {minute}");
        if minute > LOCK_THRESHOLD + 1 {
            assert!(
                is_locked(&login(&app, "alice", PASSWORD, None, USER_IP, now).await),
                "minute {minute}: a client without the device token shares the username's lock"
            );
        }
        let known = login(&app, "alice", PASSWORD, Some(&device), USER_IP, now)
            .await
            .unwrap_or_else(|err| panic!("minute {minute}: the known device was refused: {err:?}"));
        device = device_token_of(&known);
    }
    assert!(attacker_locked_out, "the attacker was throttled");
    // The known device's successes never reset the username's count for the attacker.
    assert!(app.store.login_failures("alice").await.unwrap().count > LOCK_THRESHOLD);
}

/// A known device that fails its own threshold is locked by itself: the username and the
/// user's other devices are not.
async fn a_device_that_fails_its_own_threshold_is_locked_by_itself(app: TestApp) {
    app.create_user("alice", Role::Customer, PASSWORD).await;
    let laptop = device_token_of(
        &login(&app, "alice", PASSWORD, None, USER_IP, T0)
            .await
            .unwrap(),
    );
    let phone = device_token_of(
        &login(&app, "alice", PASSWORD, None, USER_IP, T0)
            .await
            .unwrap(),
    );

    for attempt in 0..LOCK_THRESHOLD {
        let wrong = login(&app, "alice", "typo", Some(&laptop), USER_IP, T0 + attempt).await;
        assert!(matches!(wrong, Err(ApiError::InvalidCredentials)));
    }
    let at = T0 + LOCK_THRESHOLD;
    assert!(is_locked(
        &login(&app, "alice", PASSWORD, Some(&laptop), USER_IP, at).await
    ));
    assert!(
        login(&app, "alice", PASSWORD, Some(&phone), USER_IP, at)
            .await
            .is_ok()
    );
    assert!(
        login(&app, "alice", PASSWORD, None, USER_IP, at)
            .await
            .is_ok()
    );
}

/// A forged, expired, other user's or other deployment's device token is no device token:
/// while the username is locked each gets exactly the answer a client without one gets.
async fn invalid_device_tokens_are_treated_as_absent(app: TestApp) {
    app.create_user("alice", Role::Customer, PASSWORD).await;
    app.create_user("bob", Role::Customer, PASSWORD).await;
    let valid = device_token_of(
        &login(&app, "alice", PASSWORD, None, USER_IP, T0)
            .await
            .unwrap(),
    );
    let bobs = device_token_of(
        &login(&app, "bob", PASSWORD, None, USER_IP, T0)
            .await
            .unwrap(),
    );
    let record = app.store.find_login("alice").await.unwrap().unwrap();
    let alice = DeviceOwner::of(&record);
    let other_deployment = DeviceTokens::new(&SigningSecret::generate()).issue(&alice, None, T0);
    let expired = DeviceTokens::new(
        &SigningSecret::new(integration_tests::EVENTS_SIGNING_SECRET.to_vec()).unwrap(),
    )
    .issue(
        &alice,
        None,
        T0 - jwt_auth_core::sessions::device::DEVICE_TOKEN_TTL_SECS,
    );
    let (payload, _) = valid.split_once('.').unwrap();
    let forged = format!("{payload}.AAAA");

    for attempt in 0..=LOCK_THRESHOLD {
        let _ = login(&app, "alice", "guess", None, ATTACKER_IP, T0 + attempt).await;
    }
    let at = T0 + LOCK_THRESHOLD + 1;
    let answer = |result: Result<TokenResponse, ApiError>| {
        let response = result.expect_err("refused").into_response();
        (
            response.status(),
            response.headers().clone(),
            format!("{:?}", response.body()),
        )
    };
    let without = answer(login(&app, "alice", PASSWORD, None, USER_IP, at).await);
    assert_eq!(without.0, 429);
    for (name, token) in [
        ("bob's", bobs),
        ("another deployment's", other_deployment),
        ("expired", expired),
        ("forged", forged),
        ("garbage", "not a device token".to_string()),
    ] {
        let with = answer(login(&app, "alice", PASSWORD, Some(&token), USER_IP, at).await);
        assert_eq!(with, without, "{name}");
    }
    assert!(
        login(&app, "alice", PASSWORD, Some(&valid), USER_IP, at)
            .await
            .is_ok()
    );
}

/// One source spraying wrong passwords across usernames is refused at its limit, without
/// further password checks, until its window ends; another source's success resets
/// nothing, and the source's own successes do not use up its limit.
async fn password_spraying_from_one_source_is_refused_at_its_limit(mut app: TestApp) {
    const LIMIT: u64 = 5;
    app.login.source_failure_limit = LIMIT;
    // A hasher of its own, so its counter sees only this test's password checks.
    app.login.hasher = Arc::new(PasswordHasher::new());
    app.create_user("alice", Role::Customer, PASSWORD).await;
    let sprayed: Vec<String> = (0..LIMIT).map(|i| format!("user{i}")).collect();

    // A success from the spraying source is taken off its count again.
    assert!(
        login(&app, "alice", PASSWORD, None, ATTACKER_IP, T0)
            .await
            .is_ok()
    );
    for (i, username) in sprayed.iter().enumerate() {
        let result = login(
            &app,
            username,
            "Spring2026!",
            None,
            ATTACKER_IP,
            T0 + i as u64,
        )
        .await;
        assert!(
            matches!(result, Err(ApiError::InvalidCredentials)),
            "{username}"
        );
    }
    // Another source's success resets nothing.
    assert!(
        login(&app, "alice", PASSWORD, None, USER_IP, T0 + 10)
            .await
            .is_ok()
    );

    let checks_before = app.login.hasher.computations();
    let at = T0 + 20;
    let refused = login(&app, "alice", PASSWORD, None, ATTACKER_IP, at).await;
    let Err(ApiError::TooManyAttempts { retry_after_secs }) = refused else {
        panic!(
            "expected the source to be refused, got {:?}",
            refused.map(|_| ())
        );
    };
    assert_eq!(retry_after_secs, source_window_left(at));
    assert_eq!(
        app.login.hasher.computations(),
        checks_before,
        "refused without a password check"
    );
    assert_eq!(
        app.store.login_failures("alice").await.unwrap().count,
        0,
        "a refused source touches no username's counter"
    );
    // Other sources are not affected; the sprayer is, until its window ends.
    assert!(
        login(&app, "alice", PASSWORD, None, USER_IP, at)
            .await
            .is_ok()
    );
    let next_window = T0 + SOURCE_WINDOW_SECS;
    assert!(
        login(&app, "alice", PASSWORD, None, ATTACKER_IP, next_window)
            .await
            .is_ok()
    );
}

/// An attacker behind the same address as the user (a carrier NAT, an office) sprays and
/// hammers past every limit; the user's known device still logs in from that address.
async fn a_known_device_behind_the_attackers_address_still_logs_in(mut app: TestApp) {
    app.login.source_failure_limit = 5;
    app.create_user("alice", Role::Customer, PASSWORD).await;
    let device = device_token_of(
        &login(&app, "alice", PASSWORD, None, USER_IP, T0)
            .await
            .unwrap(),
    );
    for i in 0..10 {
        let _ = login(&app, "alice", "guess", None, USER_IP, T0 + i).await;
        let _ = login(&app, &format!("user{i}"), "guess", None, USER_IP, T0 + i).await;
    }
    let at = T0 + 20;
    assert!(
        is_locked(&login(&app, "alice", PASSWORD, None, USER_IP, at).await),
        "untrusted clients from the address are refused"
    );
    assert!(
        login(&app, "alice", PASSWORD, Some(&device), USER_IP, at)
            .await
            .is_ok(),
        "the known device is not"
    );
}

/// A password reset or "log out everywhere" ends the user's device tokens: someone who once
/// knew the password cannot keep device counters for guessing the new one.
async fn a_reset_or_log_out_everywhere_ends_the_users_device_tokens(app: TestApp) {
    let user = app.create_user("alice", Role::Customer, PASSWORD).await;
    let lock_username = |start: u64| {
        let app = &app;
        async move {
            for attempt in 0..=LOCK_THRESHOLD {
                let _ = login(app, "alice", "guess", None, ATTACKER_IP, start + attempt).await;
            }
        }
    };
    let before_reset = device_token_of(
        &login(&app, "alice", PASSWORD, None, USER_IP, T0)
            .await
            .unwrap(),
    );
    let hash = integration_tests::hasher()
        .hash(&SecretString::from(PASSWORD.to_string()))
        .unwrap();
    app.store
        .set_password_hash(&user.id, hash, PasswordWrite::Reset, Actor::Operator)
        .await
        .unwrap();
    let after_reset = device_token_of(
        &login(&app, "alice", PASSWORD, None, USER_IP, T0 + 1)
            .await
            .unwrap(),
    );
    app.store
        .revoke_all_tokens(&user.id, Actor::Operator)
        .await
        .unwrap();

    lock_username(T0 + 2).await;
    let at = T0 + 2 + LOCK_THRESHOLD + 1;
    for (name, token) in [
        ("before the reset", before_reset),
        ("before log out everywhere", after_reset),
    ] {
        assert!(
            is_locked(&login(&app, "alice", PASSWORD, Some(&token), USER_IP, at).await),
            "a device token from {name} counts as none"
        );
    }
}

integration_tests::on_both_stores!(
    an_attacker_hammering_a_username_never_locks_out_a_known_device,
    a_device_that_fails_its_own_threshold_is_locked_by_itself,
    invalid_device_tokens_are_treated_as_absent,
    password_spraying_from_one_source_is_refused_at_its_limit,
    a_known_device_behind_the_attackers_address_still_logs_in,
    a_reset_or_log_out_everywhere_ends_the_users_device_tokens,
);
