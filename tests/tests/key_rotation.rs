//! Signing keys rotate without logging anyone out (SECURITY.md section E, keys):
//! - the four rotation steps against Secrets Manager (moto) and DynamoDB Local, each
//!   repeated as Secrets Manager repeats a step after a crash, through the rotation
//!   function's own handler; the functions' cold-start reads of both secrets;
//! - a rotation while traffic runs through the local gateway with the policy cache on:
//!   tokens signed before, during and after verify until their expiry, new tokens carry the
//!   new `kid` once the signers re-read the set and the lead has passed, no request fails,
//!   and the retired key leaves the JWKS and stops verifying at its retirement;
//! - a flood of tokens naming unknown `kid`s makes the authorizer re-read the public keys at
//!   most once per interval.

use integration_tests::dynamo_local::fresh_table;
use integration_tests::moto;
use integration_tests::running_api::{RunningApi, dynamo_store, start_signing};
use integration_tests::workspace_root;
use jwt_auth_core::crypto::keys::live::{
    LiveKeys, PublishedKeySet, SIGNER_REFRESH_SECS, SecretKeySet, UNKNOWN_KID_REREAD_SECS,
};
use jwt_auth_core::crypto::keys::rotation::{
    KeyRotation, PUBLICATION_DELAY_SECS, SecretsManagerSecret, Step, retention_secs,
};
use jwt_auth_core::crypto::keys::{KeyRing, KeySetDocument, SIGNING_LEAD_SECS, SigningAlgorithm};
use jwt_auth_core::crypto::secret::{SecretVersion, read_secret_string};
use jwt_auth_core::crypto::token::TokenSettings;
use jwt_auth_core::crypto::token::{Session, TokenIssuer, TokenVerifier};
use jwt_auth_core::startup::clock::Clock;
use jwt_auth_core::store::PublicKeyStore;
use jwt_auth_core::store::dynamodb::DynamoUserStore;
use jwt_auth_core::users::user::Role;
use local_gateway::app::StoreChoice;
use rotation::{RotationEvent, rotate};
use std::sync::Arc;

const T0: u64 = 1_900_000_000;
const TOKEN_TTL: u64 = 900;
const CACHE_TTL: u64 = 300;
/// The least publication lead, so that these timelines stay minutes long; the default
/// lead, against verifiers that hold keys for hours, is `shared/tests/key_rules.rs`'s.
const LEAD: u64 = SIGNING_LEAD_SECS;
/// When a rotated key first signs, after the rotation's start: its publication (the
/// rotation's window and the JWKS re-read), then the lead.
const SIGNS_AFTER: u64 = PUBLICATION_DELAY_SECS + LEAD;
const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];
/// What the template's SigningKeysSecret starts as.
const PLACEHOLDER: &str = r#"{"note":"the first rotation writes the key set","placeholder":"x"}"#;

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

fn event(secret_id: &str, token: &str, step: &str) -> RotationEvent {
    RotationEvent {
        secret_id: secret_id.into(),
        client_request_token: token.into(),
        step: step.into(),
    }
}

async fn current_set(client: &aws_sdk_secretsmanager::Client, arn: &str) -> KeySetDocument {
    let json = read_secret_string(client, arn, SecretVersion::Current)
        .await
        .unwrap()
        .unwrap();
    KeySetDocument::from_json(&json).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_steps_against_secrets_manager_are_idempotent_and_publish_before_signing() {
    let sdk_config = moto::sdk_config();
    let client = aws_sdk_secretsmanager::Client::new(&sdk_config);
    let arn = moto::create_secret(&client, PLACEHOLDER).await;
    let (dynamo, table) = fresh_table().await;
    let store = Arc::new(DynamoUserStore::new(dynamo, table));
    let settings = TokenSettings::default();
    let rotation = KeyRotation {
        secret: Box::new(SecretsManagerSecret {
            client: client.clone(),
            secret_id: arn.clone(),
        }),
        store: store.clone(),
        algorithm: SigningAlgorithm::Es256,
        retention_secs: retention_secs(TOKEN_TTL, CACHE_TTL, LEAD),
        publish_lead_secs: LEAD,
        tokens: settings.clone(),
    };

    // A new deployment: the placeholder is "no key set yet", not an error; login would
    // answer 503 and try again.
    let signer_source = || Box::new(SecretKeySet::new(client.clone(), arn.clone()));
    let before = LiveKeys::load(signer_source(), Clock::manual(T0), SIGNER_REFRESH_SECS)
        .await
        .expect("a placeholder does not stop the start");
    assert!(before.ring().is_none());

    // The first rotation (at deploy), every step run twice: a crash after a step's work
    // and before its answer makes Secrets Manager run it again.
    for step in STEPS {
        for attempt in 0..2 {
            rotate(
                &event(&arn, "first-rotation-0000-0000-000000000000", step),
                &rotation,
                &arn,
                T0,
            )
            .await
            .unwrap_or_else(|err| panic!("{step} attempt {attempt}: {err}"));
            if step == "createSecret" {
                let stages = client
                    .describe_secret()
                    .secret_id(&arn)
                    .send()
                    .await
                    .unwrap();
                let pending: Vec<_> = stages
                    .version_ids_to_stages()
                    .unwrap()
                    .iter()
                    .filter(|(_, labels)| labels.iter().any(|l| l == "AWSPENDING"))
                    .collect();
                assert_eq!(
                    pending.len(),
                    1,
                    "one pending version after attempt {attempt}"
                );
            }
        }
    }
    let first = current_set(&client, &arn).await;
    assert_eq!(first.keys.len(), 1);
    assert_eq!(first.current_key().unwrap().alg, "ES256");
    let published = store.published_keys().await.unwrap().unwrap();
    assert_eq!(
        published.jwks.keys[0].common.key_id.as_deref(),
        Some(first.current.as_str())
    );

    // The functions' cold start: the signer reads the private set from Secrets Manager,
    // the verifier the public set from the table, and they agree.
    let signer = LiveKeys::load(signer_source(), Clock::manual(T0), SIGNER_REFRESH_SECS)
        .await
        .unwrap();
    let verifier = TokenVerifier::new(
        LiveKeys::load(
            Box::new(PublishedKeySet::new(store.clone())),
            Clock::manual(T0),
            300,
        )
        .await
        .unwrap(),
        &settings,
    );
    let issuer = TokenIssuer::new(signer.clone(), settings.clone());
    let user = probe_user();
    let old_token = issuer.issue(&user, &Session::start(0), T0).unwrap().token;
    assert_eq!(kid_of(&old_token), first.current);
    assert!(verifier.verify(&old_token, T0).is_ok());

    // The cursor/device HMAC secret: the other cold-start read.
    let hmac_arn = moto::create_secret(&client, &"h".repeat(48)).await;
    let hmac = jwt_auth_core::crypto::secret::load_from_secrets_manager(&sdk_config, &hmac_arn)
        .await
        .unwrap();
    assert_eq!(hmac.expose(), "h".repeat(48).as_bytes());

    // A second rotation an hour later: testSecret before setSecret fails (the new key is not
    // public yet), then the steps go through, repeated.
    let t1 = T0 + 3_600;
    rotate(
        &event(
            &arn,
            "second-rotation-0000-0000-000000000000",
            "createSecret",
        ),
        &rotation,
        &arn,
        t1,
    )
    .await
    .unwrap();
    assert!(
        rotate(
            &event(&arn, "second-rotation-0000-0000-000000000000", "testSecret"),
            &rotation,
            &arn,
            t1
        )
        .await
        .is_err(),
        "a key that is not published must not become current"
    );
    for step in STEPS {
        for _ in 0..2 {
            rotate(
                &event(&arn, "second-rotation-0000-0000-000000000000", step),
                &rotation,
                &arn,
                t1,
            )
            .await
            .unwrap_or_else(|err| panic!("{step}: {err}"));
        }
    }
    let second = current_set(&client, &arn).await;
    assert_ne!(second.current, first.current);
    let old = second
        .keys
        .iter()
        .find(|key| key.kid == first.current)
        .unwrap();
    assert_eq!(
        old.retires_at,
        Some(t1 + retention_secs(TOKEN_TTL, CACHE_TTL, LEAD))
    );

    // Verifiers that read the new public set still accept the old key's token; the
    // signer, once it re-reads and the lead has passed, signs with the new key.
    let reread = TokenVerifier::new(
        KeyRing::from_published(&store.published_keys().await.unwrap().unwrap()).unwrap(),
        &settings,
    );
    assert!(reread.verify(&old_token, T0 + 60).is_ok());
    let signer = LiveKeys::load(signer_source(), Clock::manual(t1), SIGNER_REFRESH_SECS)
        .await
        .unwrap();
    let ring = signer.ring().unwrap();
    assert_eq!(
        ring.signing_kid(t1, t1 + TOKEN_TTL + 30),
        Some(first.current.as_str())
    );
    assert_eq!(
        ring.signing_kid(t1 + SIGNS_AFTER, t1 + SIGNS_AFTER + TOKEN_TTL + 30),
        Some(second.current.as_str())
    );

    // Only this deployment's secret, only the four steps.
    assert!(
        rotate(
            &event(
                "arn:other",
                "third-rotation-0000-0000-000000000000",
                "createSecret"
            ),
            &rotation,
            &arn,
            t1
        )
        .await
        .is_err()
    );
    assert!(
        rotate(
            &event(&arn, "third-rotation-0000-0000-000000000000", "dropSecret"),
            &rotation,
            &arn,
            t1
        )
        .await
        .is_err()
    );
}

fn probe_user() -> jwt_auth_core::users::user::User {
    jwt_auth_core::users::user::User {
        id: "0123456789abcdef0123456789abcdef".into(),
        username: "alice".into(),
        name: "Alice".into(),
        role: Role::Admin,
        disabled: false,
        created_at: T0,
    }
}

async fn api(store: StoreChoice, algorithm: SigningAlgorithm) -> RunningApi {
    start_signing(
        store,
        workspace_root().join("template.yaml"),
        &[("AuthorizerCacheTtlSeconds", "300")],
        Clock::manual(T0),
        algorithm,
    )
    .await
}

async fn status_with(api: &RunningApi, token: &str, id: &str) -> u16 {
    api.call("GET", &format!("/users/{id}"), Some(token), None)
        .await
        .status
}

async fn jwks_kids(api: &RunningApi) -> Vec<String> {
    let answer = api.call("GET", "/.well-known/jwks.json", None, None).await;
    assert_eq!(answer.status, 200);
    answer.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap().to_string())
        .collect()
}

async fn rotation_while_traffic_runs(store: StoreChoice, algorithm: SigningAlgorithm) {
    let api = Arc::new(api(store, algorithm).await);
    let admin = api.create_user("admin", Role::Admin).await;
    let before_rotation =
        KeySetDocument::from_json(&api.key_secret.current().unwrap().unwrap()).unwrap();
    let k1 = before_rotation.current.clone();
    let a = api.login("admin").await;
    assert_eq!(kid_of(&a), k1);

    // Traffic runs all through the rotation: each round a new login and an uncached call.
    let traffic = {
        let api = Arc::clone(&api);
        let id = admin.id.clone();
        tokio::spawn(async move {
            let mut failures = Vec::new();
            for _ in 0..15 {
                let login = api
                    .try_login("admin", integration_tests::running_api::PASSWORD)
                    .await;
                if login.status != 200 {
                    failures.push(("login", login.status));
                    continue;
                }
                let token = login.body["access_token"].as_str().unwrap().to_string();
                let status = status_with(&api, &token, &id).await;
                if status != 200 {
                    failures.push(("call", status));
                }
            }
            failures
        })
    };
    let rotation = KeyRotation {
        secret: Box::new(api.key_secret.clone()),
        store: api.store.clone(),
        algorithm,
        retention_secs: retention_secs(TOKEN_TTL, CACHE_TTL, LEAD),
        publish_lead_secs: LEAD,
        tokens: TokenSettings::default(),
    };
    for step in STEPS {
        rotation
            .run(
                Step::parse(step).unwrap(),
                "r1-rotation-0000-0000-000000000000",
                T0,
            )
            .await
            .unwrap();
    }
    assert_eq!(traffic.await.unwrap(), vec![], "no request failed");
    // During: the signer has not re-read the set yet and keeps the old key.
    let b = api.login("admin").await;
    assert_eq!(kid_of(&b), k1);
    let rotated = KeySetDocument::from_json(&api.key_secret.current().unwrap().unwrap()).unwrap();
    let k2 = rotated.current.clone();
    assert_ne!(k2, k1);

    // Published before signed: a token of the new key, as a signer that re-read the set
    // signs it once the lead has passed, is accepted at once: the authorizer learns the
    // key through its unknown-kid re-read, long before its scheduled one.
    api.clock.set(T0 + SIGNS_AFTER);
    let reads = api.verifier_keys.reads();
    let early = TokenIssuer::new(
        KeyRing::from_document(&rotated).unwrap(),
        TokenSettings::default(),
    )
    .issue(&admin, &Session::start(0), api.clock.now())
    .unwrap()
    .token;
    assert_eq!(kid_of(&early), k2);
    assert_eq!(status_with(&api, &early, &admin.id).await, 200);
    assert_eq!(
        api.verifier_keys.reads(),
        reads + 1,
        "one re-read taught the new key"
    );
    if algorithm != SigningAlgorithm::Hs256 {
        // The JWKS route re-reads what rotation published within its interval.
        api.clock
            .advance(jwt_auth_core::sessions::login::JWKS_REFRESH_SECS);
        let kids = jwks_kids(&api).await;
        assert!(kids.contains(&k1) && kids.contains(&k2), "{kids:?}");
    }

    // After: the signer re-reads on its schedule (any request past its interval does), and
    // signs with the new key once the key's lead has passed and the least lead from its
    // own first sight of it.
    let seen = api.clock.now().max(T0 + SIGNER_REFRESH_SECS + 1);
    api.clock.set(seen);
    assert_eq!(kid_of(&api.login("admin").await), k1, "just seen: not yet");
    api.clock.set(seen + SIGNING_LEAD_SECS);
    let c = api.login("admin").await;
    assert_eq!(kid_of(&c), k2, "new tokens, new kid");
    for token in [&a, &b, &c] {
        assert_eq!(status_with(&api, token, &admin.id).await, 200);
    }

    // Each token lives its own lifetime: the first two expire, the new one goes on.
    api.clock.set(T0 + TOKEN_TTL + 31);
    assert_eq!(status_with(&api, &a, &admin.id).await, 401);
    assert_eq!(status_with(&api, &c, &admin.id).await, 200);

    // At its retirement the old key leaves the JWKS and nothing it signed verifies, even a
    // token (forged with the old key, as only a thief of it could) that has not expired.
    let retires_at = T0 + retention_secs(TOKEN_TTL, CACHE_TTL, LEAD);
    let old_key = TokenIssuer::new(
        KeyRing::from_document(&before_rotation).unwrap(),
        TokenSettings::default(),
    );
    let forged = || {
        old_key
            .issue_with_lifetime(&admin, &Session::start(0), T0, 3 * 3_600)
            .unwrap()
            .token
    };
    api.clock.set(retires_at - 1);
    assert_eq!(
        status_with(&api, &forged(), &admin.id).await,
        200,
        "still verifying"
    );
    api.clock.set(retires_at);
    assert_eq!(
        status_with(&api, &forged(), &admin.id).await,
        401,
        "retired"
    );
    if algorithm != SigningAlgorithm::Hs256 {
        assert_eq!(jwks_kids(&api).await, vec![k2.clone()]);
    }
    let d = api.login("admin").await;
    assert_eq!(kid_of(&d), k2);
    assert_eq!(status_with(&api, &d, &admin.id).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_es256_rotation_under_traffic_on_dynamodb() {
    rotation_while_traffic_runs(dynamo_store().await, SigningAlgorithm::Es256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eddsa_rotation_under_traffic_in_memory() {
    rotation_while_traffic_runs(StoreChoice::Memory, SigningAlgorithm::EdDsa).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hs256_rotation_under_traffic_in_memory() {
    rotation_while_traffic_runs(StoreChoice::Memory, SigningAlgorithm::Hs256).await;
}

/// `count` tokens, each naming its own `kid` that no key set of ours has, otherwise
/// well-formed (signed by an attacker's own ES256 key).
fn forged_kid_tokens(count: usize) -> Vec<String> {
    (0..count)
        .map(|_| {
            let attacker =
                KeyRing::from_document(&KeySetDocument::generate(SigningAlgorithm::Es256, 0))
                    .unwrap();
            TokenIssuer::new(attacker, TokenSettings::default())
                .issue(&probe_user(), &Session::start(0), T0)
                .unwrap()
                .token
        })
        .collect()
}

async fn flood(api: &Arc<RunningApi>, count: usize) -> Vec<u16> {
    let tasks: Vec<_> = forged_kid_tokens(count)
        .into_iter()
        .map(|token| {
            let api = Arc::clone(api);
            tokio::spawn(async move { api.call("GET", "/users", Some(&token), None).await.status })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_kids_rereads_the_public_keys_at_most_once_per_interval() {
    let api = Arc::new(api(dynamo_store().await, SigningAlgorithm::Es256).await);
    let reads = || api.verifier_keys.reads();
    let start = reads();

    let statuses = flood(&api, 30).await;
    assert!(statuses.iter().all(|status| *status == 401), "{statuses:?}");
    assert_eq!(reads() - start, 1, "one read for the whole flood");

    // Within the interval, another flood reads nothing.
    let after_first = reads();
    api.clock.advance(UNKNOWN_KID_REREAD_SECS - 1);
    assert!(flood(&api, 30).await.iter().all(|status| *status == 401));
    assert_eq!(reads(), after_first);

    // After it, exactly one more.
    api.clock.advance(2);
    assert!(flood(&api, 30).await.iter().all(|status| *status == 401));
    assert_eq!(reads() - after_first, 1);

    // A genuine new key, published meanwhile, is learnt through that same path once the
    // interval allows: the limit delays nobody's real key past the signers' lead.
    let admin = api.create_user("admin", Role::Admin).await;
    let rotation = KeyRotation {
        secret: Box::new(api.key_secret.clone()),
        store: api.store.clone(),
        algorithm: SigningAlgorithm::Es256,
        retention_secs: retention_secs(TOKEN_TTL, CACHE_TTL, LEAD),
        publish_lead_secs: LEAD,
        tokens: TokenSettings::default(),
    };
    let now = api.clock.now();
    for step in STEPS {
        rotation
            .run(
                Step::parse(step).unwrap(),
                "flood-rotation-000-0000-000000000000",
                now,
            )
            .await
            .unwrap();
    }
    api.clock.advance(SIGNS_AFTER);
    let rotated = KeySetDocument::from_json(&api.key_secret.current().unwrap().unwrap()).unwrap();
    let token = TokenIssuer::new(
        KeyRing::from_document(&rotated).unwrap(),
        TokenSettings::default(),
    )
    .issue(&admin, &Session::start(0), api.clock.now())
    .unwrap()
    .token;
    let before = reads();
    assert_eq!(status_with(&api, &token, &admin.id).await, 200);
    assert_eq!(reads() - before, 1);
}

/// The public keys in the table, with publication failing while `failing` is set (a
/// DynamoDB error or throttling during `setSecret`).
struct FlakyPublicKeys {
    inner: Arc<DynamoUserStore>,
    failing: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl PublicKeyStore for FlakyPublicKeys {
    async fn published_keys(
        &self,
    ) -> Result<Option<jwt_auth_core::crypto::keys::PublishedKeys>, jwt_auth_core::store::StoreError>
    {
        self.inner.published_keys().await
    }
    async fn publish_keys(
        &self,
        keys: &jwt_auth_core::crypto::keys::PublishedKeys,
        now: u64,
    ) -> Result<(), jwt_auth_core::store::StoreError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(jwt_auth_core::store::StoreError::unavailable(
                "ProvisionedThroughputExceededException",
            ));
        }
        self.inner.publish_keys(keys, now).await
    }
}

/// A moto secret with one completed rotation at [`T0`], and its rotation over a table
/// whose publication can be made to fail.
async fn rotated_once() -> (
    aws_sdk_secretsmanager::Client,
    String,
    Arc<FlakyPublicKeys>,
    KeyRotation,
) {
    let client = aws_sdk_secretsmanager::Client::new(&moto::sdk_config());
    let arn = moto::create_secret(&client, PLACEHOLDER).await;
    let (dynamo, table) = fresh_table().await;
    let keys = Arc::new(FlakyPublicKeys {
        inner: Arc::new(DynamoUserStore::new(dynamo, table)),
        failing: false.into(),
    });
    let rotation = KeyRotation {
        secret: Box::new(SecretsManagerSecret {
            client: client.clone(),
            secret_id: arn.clone(),
        }),
        store: keys.clone(),
        algorithm: SigningAlgorithm::Es256,
        retention_secs: retention_secs(TOKEN_TTL, CACHE_TTL, LEAD),
        publish_lead_secs: LEAD,
        tokens: TokenSettings::default(),
    };
    run_rotation(&rotation, &arn, "rotation-one-0000-0000-000000000000", T0)
        .await
        .unwrap();
    (client, arn, keys, rotation)
}

async fn run_rotation(
    rotation: &KeyRotation,
    arn: &str,
    token: &str,
    now: u64,
) -> Result<(), String> {
    for step in STEPS {
        rotate(&event(arn, token, step), rotation, arn, now)
            .await
            .map_err(|err| format!("{step}: {err}"))?;
    }
    Ok(())
}

async fn pending_versions(client: &aws_sdk_secretsmanager::Client, arn: &str) -> Vec<String> {
    let described = client
        .describe_secret()
        .secret_id(arn)
        .send()
        .await
        .unwrap();
    described
        .version_ids_to_stages()
        .unwrap()
        .iter()
        .filter(|(_, labels)| labels.iter().any(|label| label == "AWSPENDING"))
        .map(|(version, _)| version.clone())
        .collect()
}

/// What `aws secretsmanager put-secret-value` does: a new version, labelled AWSCURRENT
/// (moto's PutSecretValue leaves the label on a version a rotation made current as well,
/// so the label is moved explicitly, as Secrets Manager moves it).
async fn put_current(client: &aws_sdk_secretsmanager::Client, arn: &str, value: &str) {
    let holder = client
        .describe_secret()
        .secret_id(arn)
        .send()
        .await
        .unwrap()
        .version_ids_to_stages()
        .unwrap()
        .iter()
        .find(|(_, labels)| labels.iter().any(|label| label == "AWSCURRENT"))
        .map(|(version, _)| version.clone())
        .expect("a current version");
    let version = "emergency-0000-0000-0000-000000000000";
    client
        .put_secret_value()
        .secret_id(arn)
        .client_request_token(version)
        .secret_string(value)
        .version_stages("EMERGENCY")
        .send()
        .await
        .unwrap();
    client
        .update_secret_version_stage()
        .secret_id(arn)
        .version_stage("AWSCURRENT")
        .move_to_version_id(version)
        .remove_from_version_id(holder)
        .send()
        .await
        .unwrap();
}

async fn published_kids(keys: &FlakyPublicKeys) -> Vec<String> {
    keys.published_keys()
        .await
        .unwrap()
        .unwrap()
        .jwks
        .keys
        .iter()
        .filter_map(|jwk| jwk.common.key_id.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_that_failed_past_its_window_is_cancelled_and_the_next_one_publishes() {
    let (client, arn, keys, rotation) = rotated_once().await;
    let first = current_set(&client, &arn).await;
    let stalled = "rotation-two-0000-0000-000000000000";
    let t1 = T0 + 86_400;

    // setSecret fails (DynamoDB throttled) until the window has passed, as Secrets
    // Manager retries it.
    keys.failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    rotate(&event(&arn, stalled, "createSecret"), &rotation, &arn, t1)
        .await
        .unwrap();
    for retry in [0, 60, 240] {
        assert!(
            rotate(
                &event(&arn, stalled, "setSecret"),
                &rotation,
                &arn,
                t1 + retry
            )
            .await
            .is_err()
        );
    }
    keys.failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        pending_versions(&client, &arn).await,
        vec![stalled.to_string()]
    );

    // The next RotateSecret resumes the pending version (as Secrets Manager does): it is
    // stale, so it is refused and taken off AWSPENDING.
    let late = t1 + 3_600;
    for step in STEPS {
        assert!(
            rotate(&event(&arn, stalled, step), &rotation, &arn, late)
                .await
                .is_err(),
            "{step} of a stale rotation"
        );
    }
    assert!(pending_versions(&client, &arn).await.is_empty());
    assert_eq!(current_set(&client, &arn).await.current, first.current);

    // The one after it creates a fresh set, publishes it and finishes.
    run_rotation(
        &rotation,
        &arn,
        "rotation-three-0000-0000-000000000000",
        late,
    )
    .await
    .expect("the rotation after a cancelled one starts over");
    let now_current = current_set(&client, &arn).await;
    assert_ne!(now_current.current, first.current);
    let kids = published_kids(&keys).await;
    assert!(kids.contains(&now_current.current) && kids.contains(&first.current));
    let retiring = keys.published_keys().await.unwrap().unwrap().retires_at;
    assert_eq!(
        retiring.get(&first.current),
        Some(&(late + retention_secs(TOKEN_TTL, CACHE_TTL, LEAD))),
        "the old key retires a retention after the rotation that replaced it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emergency_revocation_removes_a_key_even_after_a_failed_rotation() {
    let (client, arn, keys, rotation) = rotated_once().await;
    let t1 = T0 + 86_400;
    run_rotation(&rotation, &arn, "rotation-two-0000-0000-000000000000", t1)
        .await
        .unwrap();
    let set = current_set(&client, &arn).await;
    let leaked = set
        .keys
        .iter()
        .find(|key| key.kid != set.current)
        .expect("the replaced key, still retiring")
        .kid
        .clone();
    // A token the leaked key signed, before the rotation.
    let leaked_ring = KeySetDocument {
        current: leaked.clone(),
        keys: set
            .keys
            .iter()
            .filter(|key| key.kid == leaked)
            .cloned()
            .collect(),
    };
    let forged = TokenIssuer::new(
        KeyRing::from_document(&leaked_ring).unwrap(),
        TokenSettings::default(),
    )
    .issue(&probe_user(), &Session::start(0), t1 + 120)
    .unwrap()
    .token;
    let verify_with_published = |at: u64| {
        let keys = Arc::clone(&keys);
        let forged = forged.clone();
        async move {
            TokenVerifier::new(
                KeyRing::from_published(&keys.published_keys().await.unwrap().unwrap()).unwrap(),
                &TokenSettings::default(),
            )
            .verify(&forged, at)
            .is_ok()
        }
    };
    assert!(
        verify_with_published(t1 + 120).await,
        "before the revocation"
    );

    // A rotation fails within its window (its pending set still holds the leaked key).
    let t2 = t1 + 600;
    let stalled = "rotation-three-0000-0000-000000000000";
    keys.failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    rotate(&event(&arn, stalled, "createSecret"), &rotation, &arn, t2)
        .await
        .unwrap();
    assert!(
        rotate(&event(&arn, stalled, "setSecret"), &rotation, &arn, t2)
            .await
            .is_err()
    );
    keys.failing
        .store(false, std::sync::atomic::Ordering::SeqCst);

    // The runbook: the set without the leaked key as the new AWSCURRENT...
    let mut revoked = current_set(&client, &arn).await;
    revoked.keys.retain(|key| key.kid != leaked);
    put_current(&client, &arn, &revoked.to_json()).await;
    // ...then rotate-secret, which resumes the stale pending set: that one is refused and
    // cancelled (it would republish the leaked key), and the rotation after it publishes.
    let t3 = t2 + 60;
    assert!(
        run_rotation(&rotation, &arn, stalled, t3).await.is_err(),
        "the pending set made before the revocation is not resumed"
    );
    assert!(pending_versions(&client, &arn).await.is_empty());
    run_rotation(&rotation, &arn, "rotation-four-0000-0000-000000000000", t3)
        .await
        .unwrap();
    assert!(!published_kids(&keys).await.contains(&leaked));
    assert!(
        !current_set(&client, &arn)
            .await
            .keys
            .iter()
            .any(|key| key.kid == leaked)
    );
    // A verifier that re-reads the public keys (at most every 5 minutes) refuses it.
    assert!(!verify_with_published(t3 + 1).await);
}
