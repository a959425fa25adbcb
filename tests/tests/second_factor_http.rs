//! The second factor over HTTP through the local gateway, with the authorizer's policy cache
//! on (300 s), on both stores, the functions' clock under the test's control: enrolment and
//! its confirmation, the two-step sign-in with a code and with a recovery code (each used
//! once), replayed codes and reused challenges refused, clock skew accepted and refused at
//! its edges, code guessing locked on its own counter, turning it off with the password and
//! a code, and a first step whose answer to a wrong password is the same with or without
//! TOTP; and an admin without TOTP, where admins must use it, held to enrolment. Codes are
//! computed here from the secret the enrolment answered.

use integration_tests::running_api::{PASSWORD, RunningApi, start_at};
use integration_tests::workspace_root;
use jwt_auth_core::crypto::totp::{STEP_SECS, TotpSecret, step_of};
use jwt_auth_core::sessions::lockout::LOCK_THRESHOLD;
use jwt_auth_core::startup::clock::Clock;
use jwt_auth_core::users::user::Role;
use local_gateway::app::StoreChoice;
use serde_json::{Value, json};

/// The functions' "now" when each test starts: the first second of a time step.
const T0: u64 = 1_900_000_020;

async fn api_on(store: StoreChoice) -> RunningApi {
    start_at(
        store,
        workspace_root().join("template.yaml"),
        &[("AuthorizerCacheTtlSeconds", "300")],
        Clock::manual(T0),
    )
    .await
}

fn text(value: &Value, key: &str) -> String {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {value}"))
        .to_string()
}

/// A signed-in user who has turned TOTP on: its secret and recovery codes.
struct Enrolled {
    secret: TotpSecret,
    recovery_codes: Vec<String>,
}

async fn enrol(api: &RunningApi, username: &str) -> Enrolled {
    let token = api.login(username).await;
    // A stolen access token alone cannot start one: the password is asked for.
    let refused = api
        .call(
            "POST",
            "/mfa/totp",
            Some(&token),
            Some(json!({"password": "not-the-password"})),
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let started = api
        .call(
            "POST",
            "/mfa/totp",
            Some(&token),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(started.status, 200, "{}", started.body);
    let base32 = text(&started.body, "secret");
    let uri = text(&started.body, "otpauth_uri");
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={base32}")), "{uri}");
    assert!(uri.contains(&format!(":{username}?")), "{uri}");
    assert!(text(&started.body, "qr_code_svg").contains("<svg"));
    let secret = integration_tests::totp_secret_of(&base32);
    let now = api.clock.now();
    // A wrong code does not turn it on.
    let wrong = api
        .call(
            "POST",
            "/mfa/totp/confirm",
            Some(&token),
            Some(json!({"code": wrong_code(&secret, now)})),
        )
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let confirmed = api
        .call(
            "POST",
            "/mfa/totp/confirm",
            Some(&token),
            Some(json!({"code": secret.code_at(step_of(now))})),
        )
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    let recovery_codes: Vec<String> = confirmed.body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|code| code.as_str().unwrap().to_string())
        .collect();
    assert_eq!(recovery_codes.len(), 10);
    // Every session begun with the password alone has ended, the confirming one included.
    let again = api.call("POST", "/logout", Some(&token), None).await;
    assert_eq!(
        again.status, 401,
        "the session that confirmed: {}",
        again.body
    );
    Enrolled {
        secret,
        recovery_codes,
    }
}

/// A six-digit code that is none of the accepted steps' codes.
fn wrong_code(secret: &TotpSecret, now: u64) -> String {
    let accepted: Vec<String> = (step_of(now) - 1..=step_of(now) + 1)
        .map(|step| secret.code_at(step))
        .collect();
    (0..)
        .map(|n: u32| format!("{:06}", (n * 7919) % 1_000_000))
        .find(|code| !accepted.contains(code))
        .unwrap()
}

/// The first step for `username`: its challenge (asserting no token came with it).
async fn first_step(api: &RunningApi, username: &str) -> String {
    let answer = api.try_login(username, PASSWORD).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["mfa_required"], true, "{}", answer.body);
    assert!(answer.body.get("access_token").is_none(), "{}", answer.body);
    assert!(
        answer.body.get("refresh_token").is_none(),
        "{}",
        answer.body
    );
    text(&answer.body, "challenge")
}

async fn second_step(api: &RunningApi, proof: Value) -> (u16, Value) {
    let answer = api.call("POST", "/login/mfa", None, Some(proof)).await;
    (answer.status, answer.body)
}

/// Enrol, then sign in with a code; a replayed code, a reused challenge and a used recovery
/// code are refused; a recovery code signs in once; the tokens work on a cached route.
async fn a_user_with_totp_signs_in_in_two_steps_and_nothing_is_accepted_twice(store: StoreChoice) {
    let api = api_on(store).await;
    let alice = api.create_user("alice", Role::Customer).await;
    let enrolled = enrol(&api, "alice").await;
    let own = format!("/users/{}", alice.id);

    // The confirming code's step is spent: the same step cannot sign in.
    let challenge = first_step(&api, "alice").await;
    let now = api.clock.now();
    let (status, body) = second_step(
        &api,
        json!({"challenge": challenge, "code": enrolled.secret.code_at(step_of(now))}),
    )
    .await;
    assert_eq!(status, 401, "the confirming code again: {body}");
    assert_eq!(body["detail"], "the code is wrong or was already used");

    api.clock.advance(STEP_SECS);
    let code = enrolled.secret.code_at(step_of(api.clock.now()));
    let (status, tokens) = second_step(&api, json!({"challenge": challenge, "code": code})).await;
    assert_eq!(status, 200, "{tokens}");
    let access = text(&tokens, "access_token");
    assert!(tokens.get("refresh_token").is_some() && tokens.get("device_token").is_some());
    assert_eq!(tokens["user"]["id"], alice.id.as_str());
    assert_eq!(api.call("GET", &own, Some(&access), None).await.status, 200);
    assert_eq!(
        api.call("GET", &own, Some(&access), None).await.status,
        200,
        "cached"
    );

    // The same code with a new challenge: replayed.
    let challenge_2 = first_step(&api, "alice").await;
    let (status, _) = second_step(&api, json!({"challenge": challenge_2, "code": code})).await;
    assert_eq!(status, 401, "a replayed code");
    // The used challenge with a fresh code: refused, and the fresh code is not spent.
    api.clock.advance(STEP_SECS);
    let fresh = enrolled.secret.code_at(step_of(api.clock.now()));
    let (status, body) = second_step(&api, json!({"challenge": challenge, "code": fresh})).await;
    assert_eq!(status, 401, "a reused challenge: {body}");
    assert_eq!(
        body["detail"], "the sign-in challenge is invalid, used or expired; sign in again",
        "refused for the challenge, not the code"
    );
    // The refused request spent nothing (code and challenge are spent in one write): the
    // same fresh code signs in with a challenge of its own.
    let (status, body) = second_step(&api, json!({"challenge": challenge_2, "code": fresh})).await;
    assert_eq!(status, 200, "the code the used challenge came with: {body}");

    // A recovery code, typed loosely, signs in once.
    let recovery = enrolled.recovery_codes[4].to_uppercase().replace('-', " ");
    let challenge_3 = first_step(&api, "alice").await;
    let (status, body) = second_step(
        &api,
        json!({"challenge": challenge_3, "recovery_code": recovery}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let challenge_4 = first_step(&api, "alice").await;
    let (status, _) = second_step(
        &api,
        json!({"challenge": challenge_4, "recovery_code": enrolled.recovery_codes[4]}),
    )
    .await;
    assert_eq!(status, 401, "a used recovery code");
    let (status, _) = second_step(
        &api,
        json!({"challenge": challenge_4, "recovery_code": enrolled.recovery_codes[5]}),
    )
    .await;
    assert_eq!(status, 200, "another recovery code");

    // Neither both proofs nor none; a forged challenge says nothing more than "sign in again".
    let challenge_5 = first_step(&api, "alice").await;
    for (proof, expected) in [
        (json!({"challenge": challenge_5}), 400),
        (
            json!({"challenge": challenge_5, "code": "123456", "recovery_code": "x"}),
            400,
        ),
        (
            json!({"challenge": "forged.challenge", "code": "123456"}),
            401,
        ),
        (
            json!({"challenge": challenge_5, "code": "1".repeat(65)}),
            400,
        ),
    ] {
        let (status, body) = second_step(&api, proof.clone()).await;
        assert_eq!(status, expected, "{proof}: {body}");
    }
}

/// A code of the step before or after is accepted; two steps away is not.
async fn clock_skew_of_one_step_is_accepted_and_two_are_not(store: StoreChoice) {
    let api = api_on(store).await;
    api.create_user("bob", Role::Customer).await;
    let enrolled = enrol(&api, "bob").await;
    api.clock.advance(10 * STEP_SECS);
    let now = api.clock.now();
    for (offset, accepted) in [(-2i64, false), (2, false), (-1, true), (1, true)] {
        let step = step_of(now).checked_add_signed(offset).unwrap();
        let challenge = first_step(&api, "bob").await;
        let (status, body) = second_step(
            &api,
            json!({"challenge": challenge, "code": enrolled.secret.code_at(step)}),
        )
        .await;
        assert_eq!(status == 200, accepted, "step {offset:+}: {status} {body}");
    }
}

/// Guessing codes locks the user's code counter, the right code included; the password's
/// counter is not touched (the first step still works), and the lock ends by itself.
async fn guessing_codes_is_locked_on_its_own_counter(store: StoreChoice) {
    let api = api_on(store).await;
    api.create_user("carol", Role::Customer).await;
    let enrolled = enrol(&api, "carol").await;
    api.clock.advance(STEP_SECS);
    let challenge = first_step(&api, "carol").await;
    let now = api.clock.now();
    let wrong = wrong_code(&enrolled.secret, now);
    for attempt in 0..LOCK_THRESHOLD {
        let (status, _) = second_step(&api, json!({"challenge": challenge, "code": wrong})).await;
        assert_eq!(status, 401, "guess {attempt}");
    }
    let right = enrolled.secret.code_at(step_of(now));
    let locked = api
        .call(
            "POST",
            "/login/mfa",
            None,
            Some(json!({"challenge": challenge, "code": right})),
        )
        .await;
    assert_eq!(locked.status, 429, "{}", locked.body);
    assert!(locked.headers.contains_key("retry-after"));
    // Every attempt is counted; only the checked ones count towards the cap on codes.
    let counter =
        jwt_auth_core::sessions::challenge::code_counter(&api.stored_user("carol").await.id);
    let so_far = api.store.login_failures(&counter).await.unwrap();
    assert_eq!(
        (so_far.count, so_far.refused),
        (LOCK_THRESHOLD + 1, LOCK_THRESHOLD)
    );
    // The password's own lockout is untouched.
    let _ = first_step(&api, "carol").await;
    let wait: u64 = locked.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    api.clock.advance(wait);
    let challenge = first_step(&api, "carol").await;
    let code = enrolled.secret.code_at(step_of(api.clock.now()));
    let (status, body) = second_step(&api, json!({"challenge": challenge, "code": code})).await;
    assert_eq!(status, 200, "after the lock: {body}");
}

/// A wrong password gets the same answer whether or not the user has TOTP on; only a right
/// one tells the second step is needed.
async fn the_first_step_says_nothing_of_totp_before_the_password_is_right(store: StoreChoice) {
    let api = api_on(store).await;
    api.create_user("dora", Role::Customer).await;
    api.create_user("eve", Role::Customer).await;
    enrol(&api, "dora").await;
    let with_totp = api.try_login("dora", "not-the-password").await;
    let without = api.try_login("eve", "not-the-password").await;
    let unknown = api.try_login("nobody", "not-the-password").await;
    for answer in [&with_totp, &without, &unknown] {
        assert_eq!(answer.status, 401);
        assert_eq!(answer.body, with_totp.body);
        assert_eq!(
            answer.headers.get("www-authenticate"),
            with_totp.headers.get("www-authenticate")
        );
    }
    assert!(
        api.try_login("eve", PASSWORD)
            .await
            .body
            .get("access_token")
            .is_some()
    );
    let _ = first_step(&api, "dora").await;
}

/// Turning TOTP off needs the password and a current code (either wrong: one answer);
/// then the password alone signs in again. A logged-out token cannot enrol, confirm or
/// turn it off, though its Allow is cached.
async fn turning_totp_off_needs_the_password_and_a_code(store: StoreChoice) {
    let api = api_on(store).await;
    api.create_user("fay", Role::Customer).await;
    let enrolled = enrol(&api, "fay").await;
    api.clock.advance(STEP_SECS);
    let challenge = first_step(&api, "fay").await;
    let code = enrolled.secret.code_at(step_of(api.clock.now()));
    let (_, tokens) = second_step(&api, json!({"challenge": challenge, "code": code})).await;
    let token = text(&tokens, "access_token");
    let own = format!("/users/{}", api.stored_user("fay").await.id);
    // Allowed, and so cached by the gateway under this token.
    assert_eq!(api.call("GET", &own, Some(&token), None).await.status, 200);
    api.clock.advance(STEP_SECS);
    let now = api.clock.now();
    let right = enrolled.secret.code_at(step_of(now));
    // A wrong password is the password's refusal (403, as when enrolling), counted on the
    // password's counter: an access token alone never reaches the code counter.
    let counter =
        jwt_auth_core::sessions::challenge::code_counter(&api.stored_user("fay").await.id);
    let answer = api
        .call(
            "POST",
            "/mfa/totp/disable",
            Some(&token),
            Some(json!({"password": "not-the-password", "code": right})),
        )
        .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(answer.body["detail"], "the current password is wrong");
    assert_eq!(api.store.login_failures(&counter).await.unwrap().count, 0);
    let answer = api
        .call(
            "POST",
            "/mfa/totp/disable",
            Some(&token),
            Some(json!({"password": PASSWORD, "code": wrong_code(&enrolled.secret, now)})),
        )
        .await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert_eq!(
        answer.body["detail"],
        "the code is wrong or was already used"
    );
    assert_eq!(api.store.login_failures(&counter).await.unwrap().refused, 1);
    let off = api
        .call(
            "POST",
            "/mfa/totp/disable",
            Some(&token),
            Some(json!({"password": PASSWORD, "code": right})),
        )
        .await;
    assert_eq!(off.status, 204, "{}", off.body);
    // Its tokens said `otp`: they end with the factor, though the gateway cached them.
    assert_eq!(
        api.call("GET", &own, Some(&token), None).await.status,
        401,
        "the session signed in with the factor, once it is off"
    );
    let answer = api.try_login("fay", PASSWORD).await;
    assert!(answer.body.get("access_token").is_some(), "{}", answer.body);

    // Logged out: the cached Allow does not carry the enrolment routes.
    let session = api.login("fay").await;
    assert_eq!(
        api.call(
            "POST",
            "/mfa/totp",
            Some(&session),
            Some(json!({"password": PASSWORD}))
        )
        .await
        .status,
        200
    );
    assert_eq!(
        api.call("POST", "/logout", Some(&session), None)
            .await
            .status,
        204
    );
    for (path, body) in [
        ("/mfa/totp", Some(json!({"password": PASSWORD}))),
        ("/mfa/totp/confirm", Some(json!({"code": "123456"}))),
        (
            "/mfa/totp/disable",
            Some(json!({"password": PASSWORD, "code": "123456"})),
        ),
    ] {
        let answer = api.call("POST", path, Some(&session), body).await;
        assert_eq!(answer.status, 401, "{path}: {}", answer.body);
    }
}

/// An admin removes a user's second factor (a lost phone): every session of the user
/// ends, though its Allow is cached, and the password alone signs in until it enrols again.
/// Only an admin may, and not on itself.
async fn an_admin_reset_removes_the_factor_and_ends_every_session(store: StoreChoice) {
    let api = api_on(store).await;
    let admin = api.create_user("root", Role::Admin).await;
    let gina = api.create_user("gina", Role::Customer).await;
    let enrolled = enrol(&api, "gina").await;
    api.clock.advance(STEP_SECS);
    let challenge = first_step(&api, "gina").await;
    let code = enrolled.secret.code_at(step_of(api.clock.now()));
    let (_, tokens) = second_step(&api, json!({"challenge": challenge, "code": code})).await;
    let gina_token = text(&tokens, "access_token");
    let own = format!("/users/{}", gina.id);
    assert_eq!(
        api.call("GET", &own, Some(&gina_token), None).await.status,
        200
    );
    let reset = format!("/users/{}/mfa", gina.id);
    let by_gina = api
        .call(
            "DELETE",
            &format!("/users/{}/mfa", admin.id),
            Some(&gina_token),
            None,
        )
        .await;
    assert_eq!(
        by_gina.status, 403,
        "a customer resets nobody's: {}",
        by_gina.body
    );
    let root = api.login("root").await;
    let own_reset = api
        .call(
            "DELETE",
            &format!("/users/{}/mfa", admin.id),
            Some(&root),
            None,
        )
        .await;
    assert_eq!(own_reset.status, 409, "{}", own_reset.body);
    // Someone with gina's password had spent her counter's codes: the reset starts it afresh.
    let counter = jwt_auth_core::sessions::challenge::code_counter(&gina.id);
    for _ in 0..=jwt_auth_core::sessions::login::CODE_GUESS_CAP {
        api.store
            .count_login_attempt(
                &counter,
                api.clock.now(),
                jwt_auth_core::sessions::login::CODE_FAILURE_WINDOW_SECS,
            )
            .await
            .unwrap();
    }
    let answer = api.call("DELETE", &reset, Some(&root), None).await;
    assert_eq!(answer.status, 204, "{}", answer.body);
    assert_eq!(api.store.login_failures(&counter).await.unwrap().count, 0);
    assert_eq!(
        api.call("GET", &own, Some(&gina_token), None).await.status,
        401,
        "the session from before the reset, behind its cached Allow"
    );
    let after = api.try_login("gina", PASSWORD).await;
    assert!(after.body.get("access_token").is_some(), "{}", after.body);
    assert_eq!(
        api.call("GET", &format!("/users/{}", gina.id), Some(&root), None)
            .await
            .status,
        200,
        "the user is still there"
    );
}

/// Where admins must use a second factor (`MfaRequiredRoles=admin`, the deployed default):
/// an admin without one signs in with its password, but its token says `amr: ["pwd"]` and
/// reaches only enrolment and logout, behind the gateway's cached answer and after a
/// refresh; once it has enrolled and signed in with a code, everything. A customer is not
/// held. The backends' own refusal is `handlers.rs`'s.
async fn an_admin_without_totp_is_held_to_enrolment_until_it_signs_in_with_a_code(
    store: StoreChoice,
) {
    let api = start_at(
        store,
        workspace_root().join("template.yaml"),
        &[
            ("AuthorizerCacheTtlSeconds", "300"),
            ("MfaRequiredRoles", "admin"),
        ],
        Clock::manual(T0),
    )
    .await;
    let root = api.create_user("root", Role::Admin).await;
    let carl = api.create_user("carl", Role::Customer).await;

    let held = api.login_session("root").await;
    assert_eq!(held["second_factor_enrolment_required"], true, "{held}");
    let token = text(&held, "access_token");
    assert_eq!(integration_tests::claims_of(&token)["amr"], json!(["pwd"]));
    let admin_routes = [
        ("GET", "/users".to_string()),
        ("GET", format!("/users/{}", carl.id)),
        ("GET", format!("/users/{}", root.id)),
        ("DELETE", format!("/users/{}/mfa", carl.id)),
        ("POST", "/password".to_string()),
        ("POST", "/mfa/totp/disable".to_string()),
    ];
    // Twice each: the first call's answer is cached under the token for every route. The
    // gateway refuses (its `message`), from the authorizer's policy: the function's own
    // refusal (a problem `detail`) is `handlers.rs`'s.
    for _ in 0..2 {
        for (method, path) in &admin_routes {
            let answer = api.call(method, path, Some(&token), Some(json!({}))).await;
            assert_eq!(answer.status, 403, "{method} {path}: {}", answer.body);
            assert!(
                answer.body.get("message").is_some() && answer.body.get("detail").is_none(),
                "{method} {path}: the gateway's refusal: {}",
                answer.body
            );
        }
    }
    let created = api
        .call(
            "POST",
            "/users",
            Some(&token),
            Some(json!({"username": "mallory", "password": "a-long-enough-password", "role": "admin"})),
        )
        .await;
    assert_eq!(created.status, 403, "{}", created.body);
    // A refresh keeps how the session began.
    let refreshed = api.refresh(&text(&held, "refresh_token")).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_eq!(refreshed.body["second_factor_enrolment_required"], true);
    let refreshed_token = text(&refreshed.body, "access_token");
    assert_eq!(
        integration_tests::claims_of(&refreshed_token)["amr"],
        json!(["pwd"])
    );
    assert_eq!(
        api.call("GET", "/users", Some(&refreshed_token), None)
            .await
            .status,
        403
    );

    // A customer is not held.
    let customer = api.login_session("carl").await;
    assert!(customer.get("second_factor_enrolment_required").is_none());
    let own = format!("/users/{}", carl.id);
    let customer_token = text(&customer, "access_token");
    assert_eq!(
        api.call("GET", &own, Some(&customer_token), None)
            .await
            .status,
        200
    );

    // The enrolment routes are open to the held token (the confirmation ends it).
    let enrolled = enrol(&api, "root").await;
    assert_eq!(
        api.refresh(&text(&refreshed.body, "refresh_token"))
            .await
            .status,
        401,
        "the held session ended with the confirmation"
    );
    api.clock.advance(STEP_SECS);
    let challenge = first_step(&api, "root").await;
    let code = enrolled.secret.code_at(step_of(api.clock.now()));
    let (status, tokens) = second_step(&api, json!({"challenge": challenge, "code": code})).await;
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens.get("second_factor_enrolment_required").is_none());
    let full = text(&tokens, "access_token");
    assert_eq!(
        integration_tests::claims_of(&full)["amr"],
        json!(["pwd", "otp"])
    );
    for _ in 0..2 {
        let listed = api.call("GET", "/users", Some(&full), None).await;
        assert_eq!(listed.status, 200, "{}", listed.body);
    }
    // Refreshed, the session still carries its second factor.
    let refreshed = api.refresh(&text(&tokens, "refresh_token")).await;
    let after_refresh = text(&refreshed.body, "access_token");
    assert_eq!(
        integration_tests::claims_of(&after_refresh)["amr"],
        json!(["pwd", "otp"])
    );
    assert_eq!(
        api.call(
            "GET",
            &format!("/users/{}", carl.id),
            Some(&after_refresh),
            None
        )
        .await
        .status,
        200
    );
    // A recovery code is a second factor too.
    let challenge = first_step(&api, "root").await;
    let (status, tokens) = second_step(
        &api,
        json!({"challenge": challenge, "recovery_code": enrolled.recovery_codes[0]}),
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(
        api.call("GET", "/users", Some(&text(&tokens, "access_token")), None)
            .await
            .status,
        200
    );
}

/// Past the cap of wrong codes checked on the user's counter (someone with the password
/// guessing one code per lock period, a day of it), no code is checked there any more, a
/// right one included, and a refused attempt moves nothing: a recovery code (not counted
/// there) signs in and starts the counter afresh, the user's known device is not held (a
/// counter of its own), and so does a password change.
async fn past_the_cap_of_wrong_codes_only_a_recovery_code_signs_in(store: StoreChoice) {
    use jwt_auth_core::sessions::login::{CODE_FAILURE_WINDOW_SECS, CODE_GUESS_CAP};
    let api = api_on(store).await;
    let dora = api.create_user("dora", Role::Customer).await;
    let enrolled = enrol(&api, "dora").await;
    api.clock.advance(STEP_SECS);
    // A device dora signed in from before: its device token.
    let challenge = first_step(&api, "dora").await;
    let code = enrolled.secret.code_at(step_of(api.clock.now()));
    let (status, tokens) = second_step(&api, json!({"challenge": challenge, "code": code})).await;
    assert_eq!(status, 200, "{tokens}");
    let device_token = text(&tokens, "device_token");
    let counter = jwt_auth_core::sessions::challenge::code_counter(&dora.id);
    // The guesser's checked codes so far, written down as a code step writes them (here
    // at once, rather than one per lock over a day).
    let cap_it = || async {
        for _ in 0..CODE_GUESS_CAP {
            api.store
                .count_login_attempt(&counter, api.clock.now(), CODE_FAILURE_WINDOW_SECS)
                .await
                .unwrap();
            api.store
                .record_refused_login(&counter, api.clock.now())
                .await
                .unwrap();
        }
    };
    cap_it().await;
    // A day later (any lock long over), even the right code is not checked, and the
    // refusal counts nothing.
    api.clock.advance(86_400);
    let before = api.store.login_failures(&counter).await.unwrap();
    let challenge = first_step(&api, "dora").await;
    let right = enrolled.secret.code_at(step_of(api.clock.now()));
    let capped = api
        .call(
            "POST",
            "/login/mfa",
            None,
            Some(json!({"challenge": challenge, "code": right})),
        )
        .await;
    assert_eq!(capped.status, 429, "{}", capped.body);
    assert!(
        capped.body["detail"]
            .as_str()
            .unwrap()
            .contains("recovery code"),
        "{}",
        capped.body
    );
    let wait: u64 = capped.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 86_400 && wait <= CODE_FAILURE_WINDOW_SECS, "{wait}");
    assert_eq!(api.store.login_failures(&counter).await.unwrap(), before);
    // The known device's own counter is not capped.
    let from_device = api
        .call(
            "POST",
            "/login",
            None,
            Some(json!({"username": "dora", "password": PASSWORD, "device_token": device_token})),
        )
        .await;
    let device_challenge = text(&from_device.body, "challenge");
    let (status, body) =
        second_step(&api, json!({"challenge": device_challenge, "code": right})).await;
    assert_eq!(status, 200, "from the known device: {body}");
    let device_session = text(&body, "access_token");
    // A recovery code signs in where codes no longer do, at once, and starts the counter
    // afresh.
    let (status, body) = second_step(
        &api,
        json!({"challenge": challenge, "recovery_code": enrolled.recovery_codes[0]}),
    )
    .await;
    assert_eq!(status, 200, "a recovery code past the cap: {body}");
    api.clock.advance(STEP_SECS);
    let challenge = first_step(&api, "dora").await;
    let next = enrolled.secret.code_at(step_of(api.clock.now()));
    let (status, body) = second_step(&api, json!({"challenge": challenge, "code": next})).await;
    assert_eq!(status, 200, "codes again, after the recovery code: {body}");
    // Capped again: changing the password (the guesser's) starts the counter afresh too.
    cap_it().await;
    let changed = api
        .call(
            "POST",
            "/password",
            Some(&device_session),
            Some(json!({"current_password": PASSWORD, "new_password": "a-new-pass-phrase-7"})),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(api.store.login_failures(&counter).await.unwrap().count, 0);
}

integration_tests::on_both_local_apis!(
    a_user_with_totp_signs_in_in_two_steps_and_nothing_is_accepted_twice,
    clock_skew_of_one_step_is_accepted_and_two_are_not,
    guessing_codes_is_locked_on_its_own_counter,
    the_first_step_says_nothing_of_totp_before_the_password_is_right,
    turning_totp_off_needs_the_password_and_a_code,
    an_admin_reset_removes_the_factor_and_ends_every_session,
    an_admin_without_totp_is_held_to_enrolment_until_it_signs_in_with_a_code,
    past_the_cap_of_wrong_codes_only_a_recovery_code_signs_in,
);
