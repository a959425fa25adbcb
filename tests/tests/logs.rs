//! Nothing logged ever contains a password or a raw token (SECURITY.md row 41): the log
//! output of logins (good and bad) and authorizations (good and bad) is captured and
//! searched.

use integration_tests::{TestApp, http_event};
use jwt_auth_core::users::user::Role;
use lambda_http::Body;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_never_contain_passwords_or_tokens() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = TestApp::in_memory();
    let password = "a-distinctive-password-7731";
    let alice = app.create_user("alice", Role::Admin, password).await;
    for attempt in [password, "another-distinctive-guess-8842"] {
        let mut request = http_event("login-ok.json");
        *request.body_mut() =
            Body::Text(format!(r#"{{"username":"alice","password":"{attempt}"}}"#));
        login::handle(request, &app.login).await.unwrap();
    }
    let token = app.token_for(&alice);
    app.authorize(Some(&format!("Bearer {token}")))
        .await
        .unwrap();
    let forged = format!("{}x", &token[..token.len() - 1]);
    assert!(
        app.authorize(Some(&format!("Bearer {forged}")))
            .await
            .is_err()
    );

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("login succeeded") && logs.contains("token refused"),
        "logs were captured: {logs}"
    );
    for secret in [
        password,
        "another-distinctive-guess-8842",
        token.as_str(),
        forged.as_str(),
    ] {
        assert!(!logs.contains(secret), "logged: {secret}");
    }
    let signature = token.rsplit('.').next().unwrap();
    assert!(!logs.contains(signature), "no token fragment either");
    assert!(!logs.contains("argon2id"), "no password hash");
}
