//! The browser client (`web/`) in a real browser: headless Chromium driven over WebDriver
//! (chromedriver, through fantoccini). The page is served on its own origin and calls the
//! local API cross-origin, so CORS is exercised the way a single-page app meets it: sign in
//! as an admin, see the users and page through them, sign out, and be refused with the old
//! token. `make test` installs Chromium (scripts/ensure-chromium.sh); without it this test
//! fails and says so, it never skips.

use fantoccini::{Client, ClientBuilder, Locator};
use integration_tests::running_api::{PASSWORD, RunningApi, start_with};
use integration_tests::workspace_root;
use jwt_auth_core::users::user::Role;
use local_gateway::app::StoreChoice;
use std::process::Stdio;
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: std::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn chromedriver() -> Driver {
    let port = free_port();
    let mut child = std::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|err| {
            panic!("chromedriver did not start ({err}): run `make test`, which installs it")
        });
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Driver { child, url };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("chromedriver did not listen on {port} within 10 s");
}

async fn browser(driver: &Driver) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1100,900"]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// The API with CORS for `page_origin`, and the page served on `page_port`.
async fn api_and_page(page_port: u16) -> (RunningApi, String) {
    api_and_page_with(page_port, &[]).await
}

/// [`api_and_page`] with more template parameters.
async fn api_and_page_with(page_port: u16, more: &[(&str, &str)]) -> (RunningApi, String) {
    let page_origin = format!("http://127.0.0.1:{page_port}");
    let mut parameters = vec![
        ("CorsAllowOrigin", page_origin.as_str()),
        ("Roles", "admin,customer,support"),
    ];
    parameters.extend_from_slice(more);
    let api = start_with(
        StoreChoice::Memory,
        workspace_root().join("template.yaml"),
        &parameters,
    )
    .await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", page_port))
        .await
        .unwrap();
    tokio::spawn(local_gateway::web::serve(
        listener,
        api.base.clone(),
        std::future::pending(),
    ));
    (api, format!("{page_origin}/"))
}

/// Waits until `script` (a JavaScript expression) is true in the page.
async fn wait_for(client: &Client, script: &str, what: &str) {
    for _ in 0..100 {
        let value = client
            .execute(&format!("return Boolean({script});"), vec![])
            .await
            .unwrap();
        if value == serde_json::Value::Bool(true) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let message = client
        .execute(
            "return document.getElementById('message').textContent;",
            vec![],
        )
        .await
        .unwrap();
    panic!("timed out waiting for {what}; the page says {message}");
}

async fn fill(client: &Client, id: &str, text: &str) {
    let field = client.find(Locator::Id(id)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn click(client: &Client, id: &str) {
    client
        .find(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn text(client: &Client, id: &str) -> String {
    client
        .find(Locator::Id(id))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn sign_in(client: &Client, username: &str, password: &str) {
    fill(client, "username", username).await;
    fill(client, "password", password).await;
    click(client, "login").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_signs_in_sees_the_users_signs_out_and_is_refused_in_chromium() {
    let driver = chromedriver().await;
    let (api, page) = api_and_page(free_port()).await;
    api.create_user("admin", Role::Admin).await;
    for name in ["alice", "bob", "carol", "dave", "erin", "frank"] {
        api.create_user(name, Role::Customer).await;
    }
    let client = browser(&driver).await;
    client.goto(&page).await.unwrap();

    // A wrong password is refused with the API's own message.
    sign_in(&client, "admin", "not-the-password").await;
    wait_for(
        &client,
        "document.getElementById('message').className === 'error'",
        "the refusal",
    )
    .await;

    // Sign in: the profile and the first page of users (5 of 7), across origins.
    sign_in(&client, "admin", PASSWORD).await;
    wait_for(
        &client,
        "document.querySelectorAll('#users tr').length === 5",
        "the first page of users",
    )
    .await;
    let who = text(&client, "who").await;
    assert_eq!(who, "admin");
    let profile = text(&client, "profile").await;
    assert!(profile.contains("admin"), "{profile}");

    // A role change: a declared role lands and the list shows it; an undeclared one is
    // refused with the API's own message and changes nothing.
    let chosen = client
        .execute(
            r#"const users = document.getElementById('role-user');
               const choice = [...users.options].find(o => o.textContent !== 'admin');
               users.value = choice.value;
               return choice.textContent;"#,
            vec![],
        )
        .await
        .unwrap();
    let chosen = chosen.as_str().unwrap().to_string();
    fill(&client, "role-name", "support").await;
    click(&client, "set-role").await;
    click(&client, "confirm-yes").await;
    wait_for(
        &client,
        &format!(
            "document.getElementById('message').textContent === '{chosen} now has the role support.'"
        ),
        "the role change",
    )
    .await;
    wait_for(
        &client,
        &format!(
            "[...document.querySelectorAll('#users tr')].some(r => r.dataset.username === '{chosen}' \
             && r.children[2].textContent === 'support')"
        ),
        "the new role in the list",
    )
    .await;
    let stored = api.stored_user(&chosen).await;
    assert_eq!(stored.role.as_str(), "support");
    client
        .execute(
            &format!(
                r#"const users = document.getElementById('role-user');
                   users.value = [...users.options].find(o => o.textContent === '{chosen}').value;"#
            ),
            vec![],
        )
        .await
        .unwrap();
    fill(&client, "role-name", "auditor").await;
    click(&client, "set-role").await;
    click(&client, "confirm-yes").await;
    wait_for(
        &client,
        "document.getElementById('message').className === 'error' \
         && document.getElementById('message').textContent.includes('role must be one of')",
        "the refusal of an undeclared role",
    )
    .await;
    assert_eq!(api.stored_user(&chosen).await.role.as_str(), "support");

    // The next page holds the other two.
    click(&client, "next-page").await;
    wait_for(
        &client,
        "document.querySelectorAll('#users tr').length === 2",
        "the second page",
    )
    .await;
    let rows = text(&client, "users").await;
    assert!(rows.contains("erin") && rows.contains("frank"), "{rows}");

    // Sign out, then the old token is refused by the API (asked from the page's origin,
    // so the 401 must carry CORS for the script to read its status at all).
    click(&client, "logout").await;
    wait_for(
        &client,
        "!document.getElementById('signed-out').hidden",
        "the sign-in form again",
    )
    .await;
    let status = client
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               const token = window.lambdaJwtAuth.lastAccessToken;
               fetch(window.LAMBDA_JWT_AUTH.apiBase + "/users", {
                 headers: { Authorization: "Bearer " + token }
               }).then(r => done(r.status), e => done(String(e)));"#,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, serde_json::json!(401), "the ended session's token");

    if let Ok(path) = std::env::var("BROWSER_SCREENSHOT") {
        // `make screenshot`: the README's picture, signed in again.
        sign_in(&client, "admin", PASSWORD).await;
        wait_for(
            &client,
            "document.querySelectorAll('#users tr').length === 5",
            "the users",
        )
        .await;
        std::fs::write(path, client.screenshot().await.unwrap()).unwrap();
    }
    client.close().await.unwrap();
}

/// Two-step sign-in in the page: a user turns it on (the password, then the QR code and the
/// key, then a first code, computed here from the key the page shows), gets the recovery
/// codes and is signed out; signs in again through the code step, then with a recovery code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_turns_on_two_step_sign_in_and_signs_in_with_a_code_then_a_recovery_code_in_chromium()
 {
    use jwt_auth_core::crypto::totp::step_of;
    let driver = chromedriver().await;
    let (api, page) = api_and_page(free_port()).await;
    api.create_user("alice", Role::Customer).await;
    let client = browser(&driver).await;
    client.goto(&page).await.unwrap();
    sign_in(&client, "alice", PASSWORD).await;
    wait_for(
        &client,
        "!document.getElementById('signed-in').hidden",
        "signed in",
    )
    .await;

    fill(&client, "totp-password", "not-the-password").await;
    click(&client, "totp-start").await;
    wait_for(
        &client,
        "document.getElementById('message').className === 'error'",
        "the wrong password refused",
    )
    .await;
    fill(&client, "totp-password", PASSWORD).await;
    click(&client, "totp-start").await;
    wait_for(
        &client,
        "!document.getElementById('totp-enrol').hidden",
        "the enrolment",
    )
    .await;
    wait_for(
        &client,
        "(() => { const img = document.querySelector('#totp-qr img'); \
           return img && img.complete && img.naturalWidth > 0; })()",
        "the QR code drawn",
    )
    .await;
    let secret = integration_tests::totp_secret_of(&text(&client, "totp-secret").await);
    fill(&client, "totp-code", "000000").await;
    click(&client, "totp-confirm").await;
    wait_for(
        &client,
        "document.getElementById('message').className === 'error'",
        "a wrong first code refused",
    )
    .await;
    let code = secret.code_at(step_of(api.clock.now()));
    fill(&client, "totp-code", &code).await;
    click(&client, "totp-confirm").await;
    wait_for(
        &client,
        "!document.getElementById('recovery').hidden && !document.getElementById('signed-out').hidden",
        "the recovery codes, signed out",
    )
    .await;
    assert_eq!(
        client
            .execute(
                "return document.getElementById('totp-secret').textContent \
                   + document.getElementById('totp-qr').innerHTML;",
                vec![],
            )
            .await
            .unwrap(),
        serde_json::json!(""),
        "the key and its QR code are gone from the page once it is on"
    );
    let codes = client
        .execute(
            "return [...document.querySelectorAll('#recovery-codes li')].map(li => li.textContent);",
            vec![],
        )
        .await
        .unwrap();
    let codes: Vec<String> = serde_json::from_value(codes).unwrap();
    assert_eq!(codes.len(), 10, "{codes:?}");

    // The code step: a password alone is not enough any more. The confirming step is spent;
    // the next one is within the step of skew.
    sign_in(&client, "alice", PASSWORD).await;
    wait_for(
        &client,
        "!document.getElementById('mfa-form').hidden",
        "the code step",
    )
    .await;
    assert!(
        client
            .find(Locator::Id("signed-in"))
            .await
            .unwrap()
            .attr("hidden")
            .await
            .unwrap()
            .is_some(),
        "not signed in after the password alone"
    );
    let next = secret.code_at(step_of(api.clock.now()) + 1);
    fill(&client, "mfa-code", &next).await;
    click(&client, "mfa-submit").await;
    wait_for(
        &client,
        "!document.getElementById('signed-in').hidden",
        "signed in with a code",
    )
    .await;
    assert_eq!(text(&client, "who").await, "alice");

    // Signed out, then in with a recovery code (used once).
    click(&client, "logout").await;
    wait_for(
        &client,
        "!document.getElementById('signed-out').hidden",
        "signed out",
    )
    .await;
    sign_in(&client, "alice", PASSWORD).await;
    wait_for(
        &client,
        "!document.getElementById('mfa-form').hidden",
        "the code step again",
    )
    .await;
    fill(&client, "mfa-code", &codes[0]).await;
    click(&client, "mfa-submit").await;
    wait_for(
        &client,
        "!document.getElementById('signed-in').hidden",
        "signed in with a recovery code",
    )
    .await;
    client.close().await.unwrap();
}

/// Chooses `username` in the admin console's user list.
async fn choose_user(client: &Client, username: &str) {
    client
        .execute(
            &format!(
                r#"const users = document.getElementById('role-user');
                   users.value = [...users.options].find(o => o.textContent === '{username}').value;"#
            ),
            vec![],
        )
        .await
        .unwrap();
}

async fn wait_for_message(client: &Client, message: &str) {
    wait_for(
        client,
        &format!("document.getElementById('message').textContent === {message:?}"),
        message,
    )
    .await;
}

/// Where admins must use a second factor: a new admin is held to enrolment in the page
/// (everything else hidden), turns TOTP on, signs in with a code, and then uses the admin
/// console: create a user, disable (after a cancelled confirmation) and enable one, reset
/// a password, reset a second factor (its own: the API's 409 shown), delete, each after
/// its confirmation, each checked in the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_admin_enrols_then_runs_the_admin_console_in_chromium() {
    use jwt_auth_core::crypto::totp::step_of;
    let driver = chromedriver().await;
    let (api, page) = api_and_page_with(free_port(), &[("MfaRequiredRoles", "admin")]).await;
    api.create_user("root", Role::Admin).await;
    let alice = api.create_user("alice", Role::Customer).await;
    api.create_user("bob", Role::Customer).await;
    let client = browser(&driver).await;
    client.goto(&page).await.unwrap();

    sign_in(&client, "root", PASSWORD).await;
    wait_for(
        &client,
        "!document.getElementById('signed-in').hidden && !document.getElementById('held').hidden",
        "held to enrolment",
    )
    .await;
    assert_eq!(
        client
            .execute(
                "return [document.getElementById('full-access').hidden, \
                         document.getElementById('password-form').hidden, \
                         document.getElementById('totp-start-form').hidden];",
                vec![],
            )
            .await
            .unwrap(),
        serde_json::json!([true, true, false]),
        "only turning two-step sign-in on is offered"
    );
    fill(&client, "totp-password", PASSWORD).await;
    click(&client, "totp-start").await;
    wait_for(
        &client,
        "!document.getElementById('totp-enrol').hidden",
        "the enrolment",
    )
    .await;
    let secret = integration_tests::totp_secret_of(&text(&client, "totp-secret").await);
    fill(
        &client,
        "totp-code",
        &secret.code_at(step_of(api.clock.now())),
    )
    .await;
    click(&client, "totp-confirm").await;
    wait_for(
        &client,
        "!document.getElementById('signed-out').hidden",
        "signed out after turning it on",
    )
    .await;
    sign_in(&client, "root", PASSWORD).await;
    wait_for(
        &client,
        "!document.getElementById('mfa-form').hidden",
        "the code step",
    )
    .await;
    fill(
        &client,
        "mfa-code",
        &secret.code_at(step_of(api.clock.now()) + 1),
    )
    .await;
    click(&client, "mfa-submit").await;
    wait_for(
        &client,
        "!document.getElementById('admin').hidden && document.getElementById('held').hidden \
         && document.querySelectorAll('#users tr').length === 3",
        "the admin console",
    )
    .await;

    // Create a user; the same username again shows the API's refusal.
    for attempt in ["first", "again"] {
        fill(&client, "new-username", "carol").await;
        fill(&client, "new-name", "Carol C").await;
        fill(&client, "new-role", "support").await;
        fill(&client, "new-user-password", "a-first-pass-phrase").await;
        click(&client, "create-user").await;
        click(&client, "confirm-yes").await;
        if attempt == "first" {
            wait_for_message(&client, "carol is created (support).").await;
        } else {
            wait_for(
                &client,
                "document.getElementById('message').className === 'error'",
                "the duplicate refused",
            )
            .await;
        }
    }
    assert_eq!(api.stored_user("carol").await.role.as_str(), "support");

    // Disable: cancelled first (nothing changes), then confirmed.
    choose_user(&client, "alice").await;
    click(&client, "disable-user").await;
    wait_for(
        &client,
        "!document.getElementById('confirm').hidden \
         && document.getElementById('confirm-text').textContent.startsWith('Disable alice?')",
        "the confirmation",
    )
    .await;
    click(&client, "confirm-no").await;
    wait_for_message(&client, "Nothing was changed.").await;
    assert!(!api.stored_user("alice").await.disabled);
    click(&client, "disable-user").await;
    click(&client, "confirm-yes").await;
    wait_for_message(&client, "alice is disabled.").await;
    assert!(api.stored_user("alice").await.disabled);
    assert_eq!(api.try_login("alice", PASSWORD).await.status, 401);
    choose_user(&client, "alice").await;
    click(&client, "enable-user").await;
    click(&client, "confirm-yes").await;
    wait_for_message(&client, "alice is enabled.").await;
    assert!(!api.stored_user("alice").await.disabled);

    // Reset alice's password.
    choose_user(&client, "alice").await;
    fill(&client, "reset-password-value", "a-reset-pass-phrase-9").await;
    click(&client, "reset-password").await;
    click(&client, "confirm-yes").await;
    wait_for_message(&client, "alice's password is reset; their sessions ended.").await;
    assert_eq!(
        api.try_login("alice", "a-reset-pass-phrase-9").await.status,
        200
    );

    // Its own second factor: the API refuses (409) and the page says why.
    choose_user(&client, "root").await;
    click(&client, "reset-mfa").await;
    click(&client, "confirm-yes").await;
    wait_for(
        &client,
        "document.getElementById('message').className === 'error'",
        "the refusal on itself",
    )
    .await;

    // Delete bob.
    choose_user(&client, "bob").await;
    click(&client, "delete-user").await;
    click(&client, "confirm-yes").await;
    wait_for_message(&client, "bob is deleted.").await;
    wait_for(
        &client,
        "![...document.querySelectorAll('#users tr')].some(r => r.dataset.username === 'bob')",
        "bob gone from the list",
    )
    .await;
    assert_eq!(api.try_login("bob", PASSWORD).await.status, 401);
    assert!(!api.stored_user("alice").await.disabled, "{}", alice.id);
    client.close().await.unwrap();
}
