//! Secrets Manager throttled or unreachable at a cold start (SECURITY.md row 56): the HTTP
//! functions start anyway and answer 503 with `Retry-After` (never a 500, never a crash
//! loop), try again at most every `SECRET_RETRY_SECS`, and serve once the secret comes; a
//! misconfiguration (access denied) still stops the start.

use integration_tests::outage::{FakeSecretsManager, Outage};
use jwt_auth_core::startup::cold_start::{NeedsSecret, SECRET_RETRY_SECS};
use jwt_auth_core::startup::config::SecretSource;
use jwt_auth_core::users::cursor::CursorCodec;
use std::time::Duration;

const SECRET: &str = "a-deployment-signing-secret-of-64-characters-0123456789abcdefghi";

fn source() -> SecretSource {
    SecretSource::SecretsManager {
        secret_id: "signing".into(),
    }
}

async fn start(fake: &FakeSecretsManager) -> NeedsSecret<CursorCodec> {
    NeedsSecret::start(source(), fake.sdk_config(), |secret| {
        CursorCodec::new(secret)
    })
    .await
    .expect("an unavailable Secrets Manager does not stop the start")
}

async fn answers_503_until_secrets_manager_is_back(outage: Outage) {
    let fake = FakeSecretsManager::start(SECRET, outage).await;
    let service = start(&fake).await;

    let error = service.get().await.err().expect("no secret yet");
    let response = error.into_response();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    // The function's whole answer (`respond`, as `main` runs it) carries CORS too, so a
    // browser can read the 503 and its Retry-After.
    let cors = jwt_auth_core::web::cors::Cors::allowing("https://app.example.com").unwrap();
    let answer = service
        .respond(&cors, |_| async { panic!("no service without the secret") })
        .await
        .unwrap();
    assert_eq!(answer.status(), 503);
    assert_eq!(
        answer.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    // Within the retry interval no request reaches Secrets Manager.
    let calls = fake.requests();
    assert!(service.get().await.is_err());
    assert_eq!(fake.requests(), calls, "at most one try per interval");

    fake.set(Outage::Up);
    tokio::time::sleep(Duration::from_secs(SECRET_RETRY_SECS) + Duration::from_millis(200)).await;
    let codec = service.get().await.expect("the secret came");
    let key = jwt_auth_core::store::PageKey {
        username: "alice".into(),
        id: "0".repeat(32),
    };
    // The service was built with the secret Secrets Manager answered.
    let expected = CursorCodec::new(
        &jwt_auth_core::crypto::secret::SigningSecret::new(SECRET.as_bytes().to_vec()).unwrap(),
    );
    assert_eq!(expected.decode(&codec.encode(&key)), Ok(key));
    let calls = fake.requests();
    assert!(service.get().await.is_ok());
    assert_eq!(fake.requests(), calls, "fetched once, then kept");
}

#[tokio::test]
async fn an_unreachable_secrets_manager_at_cold_start_is_a_503_until_it_is_back() {
    answers_503_until_secrets_manager_is_back(Outage::Down).await;
}

#[tokio::test]
async fn a_throttled_secrets_manager_at_cold_start_is_a_503_until_it_is_back() {
    answers_503_until_secrets_manager_is_back(Outage::Throttled).await;
}

#[tokio::test]
async fn a_secret_that_is_there_is_fetched_at_cold_start() {
    let fake = FakeSecretsManager::start(SECRET, Outage::Up).await;
    let service = start(&fake).await;
    let calls = fake.requests();
    assert!(service.get().await.is_ok());
    assert_eq!(fake.requests(), calls);
}

#[tokio::test]
async fn a_secret_too_short_stops_the_start() {
    let fake = FakeSecretsManager::start("short", Outage::Up).await;
    let started = NeedsSecret::start(source(), fake.sdk_config(), |secret| {
        CursorCodec::new(secret)
    })
    .await;
    assert!(started.is_err(), "a misconfiguration fails closed");
}
