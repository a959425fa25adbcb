//! When the store fails, nothing fails open: login and the users routes answer an opaque
//! 500 (the cause goes to the log, not to the client), and the authorizer refuses to
//! decide (a 500 at API Gateway), never an Allow.

use authorizer::AuthorizerError;
use integration_tests::{TestApp, as_caller, body_json, http_event};
use jwt_auth_core::crypto::password::StoredHash;
use jwt_auth_core::store::{
    Actor, AuthorizationState, LoginFailureStore, LoginFailures, LoginRecord, NewRefreshToken,
    NewUser, PageKey, PasswordWrite, RefreshTokenRecord, Rotation, SessionStore, StandingCaller,
    StoreError, UserChanges, UserPage, UserStore,
};
use jwt_auth_core::users::user::{Role, User};
use std::sync::Arc;

/// A store whose every call fails, as DynamoDB does when throttled or unreachable.
struct UnreachableStore;

const CAUSE: &str = "dynamodb unreachable: connect timeout to dynamodb.us-east-1.amazonaws.com";

fn down<T>() -> Result<T, StoreError> {
    Err(StoreError::backend(CAUSE))
}

#[async_trait::async_trait]
impl UserStore for UnreachableStore {
    async fn create_user(&self, _: NewUser, _: u64, _: Actor<'_>) -> Result<User, StoreError> {
        down()
    }
    async fn get_user(&self, _: &str) -> Result<Option<User>, StoreError> {
        down()
    }
    async fn find_login(&self, _: &str) -> Result<Option<LoginRecord>, StoreError> {
        down()
    }
    async fn list_users(&self, _: usize, _: Option<&PageKey>) -> Result<UserPage, StoreError> {
        down()
    }
    async fn update_user(&self, _: &str, _: UserChanges, _: Actor<'_>) -> Result<User, StoreError> {
        down()
    }
    async fn delete_user(&self, _: &str, _: Actor<'_>) -> Result<(), StoreError> {
        down()
    }
    async fn revoke_all_tokens(&self, _: &str, _: Actor<'_>) -> Result<(), StoreError> {
        down()
    }
    async fn authorization_state(
        &self,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<AuthorizationState, StoreError> {
        down()
    }
    async fn set_password_hash(
        &self,
        _: &str,
        _: StoredHash,
        _: PasswordWrite<'_>,
        _: Actor<'_>,
    ) -> Result<(User, u64), StoreError> {
        down()
    }
}

#[async_trait::async_trait]
impl SessionStore for UnreachableStore {
    async fn create_refresh_token(&self, _: NewRefreshToken) -> Result<(), StoreError> {
        down()
    }
    async fn end_session(&self, _: StandingCaller<'_>, _: u64, _: u64) -> Result<(), StoreError> {
        down()
    }
    async fn take_lease(&self, _: &str, _: &str, _: u64, _: u64) -> Result<bool, StoreError> {
        down()
    }
    async fn release_lease(&self, _: &str, _: &str) -> Result<(), StoreError> {
        down()
    }
    async fn find_refresh_token(&self, _: &str) -> Result<Option<RefreshTokenRecord>, StoreError> {
        down()
    }
    async fn rotate_refresh_token(
        &self,
        _: &str,
        _: NewRefreshToken,
        _: u64,
    ) -> Result<Rotation, StoreError> {
        down()
    }
    async fn revoke_family(&self, _: &str, _: u64) -> Result<(), StoreError> {
        down()
    }
    async fn revoke_access_token(&self, _: &str, _: u64) -> Result<(), StoreError> {
        down()
    }
}

#[async_trait::async_trait]
impl LoginFailureStore for UnreachableStore {
    async fn login_failures(&self, _: &str) -> Result<LoginFailures, StoreError> {
        down()
    }
    async fn count_login_attempt(
        &self,
        _: &str,
        _: u64,
        _: u64,
    ) -> Result<LoginFailures, StoreError> {
        down()
    }
    async fn lock_login(&self, _: &str, _: u64, _: u64, _: u64) -> Result<bool, StoreError> {
        down()
    }
    async fn clear_login_failures(&self, _: &str) -> Result<(), StoreError> {
        down()
    }
    async fn uncount_login_attempt(&self, _: &str) -> Result<(), StoreError> {
        down()
    }
    async fn record_refused_login(&self, _: &str, _: u64) -> Result<(), StoreError> {
        down()
    }
}

fn someone(role: Role) -> User {
    User {
        id: "0123456789abcdef0123456789abcdef".into(),
        username: "alice".into(),
        name: "Alice".into(),
        role,
        disabled: false,
        created_at: 0,
    }
}

#[tokio::test]
async fn login_answers_an_opaque_500_when_the_store_is_down() {
    let app = TestApp::new(Arc::new(UnreachableStore));
    let response = login::handle(http_event("login-ok.json"), &app.login)
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body = body_json(&response).to_string();
    assert!(
        !body.contains("dynamodb") && !body.contains("timeout"),
        "{body}"
    );
}

#[tokio::test]
async fn the_users_routes_answer_an_opaque_500_when_the_store_is_down() {
    let app = TestApp::new(Arc::new(UnreachableStore));
    let admin = someone(Role::Admin);
    for (name, id) in [
        ("users-list.json", None),
        ("users-get.json", Some(admin.id.as_str())),
    ] {
        let response = users::handle(as_caller(http_event(name), &admin, id), &app.users)
            .await
            .unwrap();
        assert_eq!(response.status(), 500, "{name}");
        assert!(
            !body_json(&response).to_string().contains("dynamodb"),
            "{name}"
        );
    }
}

#[tokio::test]
async fn the_authorizer_fails_closed_when_it_cannot_check_revocation() {
    let app = TestApp::new(Arc::new(UnreachableStore));
    let result = app
        .authorize(Some(&format!(
            "Bearer {}",
            app.token_for(&someone(Role::Admin))
        )))
        .await;
    assert_eq!(result, Err(AuthorizerError::StoreUnavailable));
    let diagnostic: lambda_runtime::Diagnostic = result.unwrap_err().into();
    assert_ne!(
        diagnostic.error_message, "Unauthorized",
        "a 500 at API Gateway, not a 401"
    );
}

#[async_trait::async_trait]
impl jwt_auth_core::store::PublicKeyStore for UnreachableStore {
    async fn published_keys(
        &self,
    ) -> Result<Option<jwt_auth_core::crypto::keys::PublishedKeys>, StoreError> {
        down()
    }

    async fn publish_keys(
        &self,
        _: &jwt_auth_core::crypto::keys::PublishedKeys,
        _: u64,
    ) -> Result<(), StoreError> {
        down()
    }
}

#[async_trait::async_trait]
impl jwt_auth_core::store::SecondFactorStore for UnreachableStore {
    async fn second_factor(
        &self,
        _: &str,
        _: u64,
    ) -> Result<Option<jwt_auth_core::store::second_factor::SecondFactor>, StoreError> {
        down()
    }
    async fn start_enrolment(
        &self,
        _: &str,
        _: &str,
        _: u64,
        _: u64,
        _: Actor<'_>,
    ) -> Result<bool, StoreError> {
        down()
    }
    async fn activate_factor(
        &self,
        _: &str,
        _: &str,
        _: u64,
        _: &[jwt_auth_core::crypto::recovery_codes::RecoveryCodeHash],
        _: u64,
        _: Actor<'_>,
    ) -> Result<bool, StoreError> {
        down()
    }
    async fn spend_step(&self, _: &str, _: &str, _: u64) -> Result<bool, StoreError> {
        down()
    }
    async fn remove_factor(&self, _: &str, _: Actor<'_>) -> Result<(), StoreError> {
        down()
    }
    async fn spend_sign_in(
        &self,
        _: &str,
        _: jwt_auth_core::store::second_factor::SignInProof<'_>,
        _: &str,
        _: u64,
    ) -> Result<jwt_auth_core::store::second_factor::SignInSpend, StoreError> {
        down()
    }
}
