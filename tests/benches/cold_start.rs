//! Cold starts as Lambda sees them. Each release bootstrap (x86_64, built by `make bench`
//! into target/lambda-x86_64) is started again and again against a fake Lambda Runtime API
//! with DynamoDB Local behind it, exactly as Lambda starts it: its real `main.rs`, the
//! environment Lambda gives (region, credentials, function name and memory), one event.
//! Beside them, in the same run and built with the same profile, two floors
//! (`bench-floors`): a `lambda_runtime` bootstrap that does nothing, and one that only builds
//! a DynamoDB client and makes one read (what every function of ours must do at least).
//!
//! Printed, medians over the starts (interleaved, so that the machine's noise falls on all
//! alike): process start -> first `/next` (init), the first invocation (its event handed
//! over -> its answer back), peak RSS, and the stripped size, each as a ratio to the
//! "client + one read" floor. Login's first invocation is set against one argon2id verify
//! measured in this process in the same run. Then one more start of each, through a
//! recording proxy in front of DynamoDB Local ([`integration_tests::round_trips`]), prints
//! the DynamoDB calls of its warm invocation and how many round trips they take.
//!
//! `login+secrets` is the login function as deployed, its key set and HMAC secret read at
//! cold start from Secrets Manager (moto) instead of the inline keys of `events/env.json`.
//! `authorizer+ssm` is the authorizer as deployed, its permissions documents (50 APIs)
//! read at cold start from SSM (moto) instead of the built-in document of a local run:
//! beside `authorizer`, the cost of the registry at cold start and (none) when warm.
//!
//! Needs DYNAMODB_ENDPOINT (DynamoDB Local) and MOTO_ENDPOINT (moto): `make bench` runs it
//! under scripts/with-dynamodb-local.sh with WITH_MOTO.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use integration_tests::round_trips::{self, CallLog};
use integration_tests::{EVENTS_PASSWORD, event_text, workspace_root};
use jwt_auth_core::crypto::password::PasswordHasher;
use jwt_auth_core::crypto::secret::SigningSecret;
use jwt_auth_core::crypto::token::{Session, TokenIssuer, TokenKeys};
use jwt_auth_core::store::Actor;
use jwt_auth_core::store::dynamodb::DynamoUserStore;
use jwt_auth_core::store::{NewUser, UserStore};
use jwt_auth_core::users::user::{Role, User};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Starts per bootstrap.
const STARTS: usize = 15;
/// The most one step of a start may take before the bench gives up on it.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

struct Bootstrap {
    /// The binary (target/lambda-x86_64/<name>/bootstrap).
    name: &'static str,
    /// As printed: the binary, or the binary and what its environment changes.
    label: &'static str,
    /// Variables set (`Some`) or removed (`None`) over the shared environment.
    env: Vec<(&'static str, Option<String>)>,
    /// What its event asks, for the round-trip table.
    route: &'static str,
    event: Value,
    /// Whether the answer is the one expected (a cold start that fails is no measure).
    answered: fn(&Value) -> bool,
}

#[derive(Clone, Copy)]
struct Start {
    init: Duration,
    first_invoke: Duration,
    /// The same event again, in the same (now warm) process.
    warm_invoke: Duration,
    peak_rss_kib: u64,
    /// From the first `/next` to the first answer.
    first_window: (Instant, Instant),
    /// From the second `/next` to the second answer.
    warm_window: (Instant, Instant),
}

enum Mark {
    Next(Instant),
    Response(Instant, Bytes),
    Error(String),
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    let lambda_dir = workspace_root().join("target/lambda-x86_64");
    let (env, alice) = environment().await;
    let bootstraps = bootstraps(
        &env,
        &alice,
        secrets_in_moto().await,
        permissions_in_moto().await,
    );
    for bootstrap in &bootstraps {
        let path = lambda_dir.join(bootstrap.name).join("bootstrap");
        assert!(
            path.exists(),
            "{} is missing: `make bench` builds it",
            path.display()
        );
    }

    let mut starts: Vec<Vec<Start>> = vec![Vec::new(); bootstraps.len()];
    for round in 0..STARTS {
        for (index, bootstrap) in bootstraps.iter().enumerate() {
            let path = lambda_dir.join(bootstrap.name).join("bootstrap");
            let start = start_once(&path, bootstrap, &env)
                .await
                .unwrap_or_else(|err| panic!("{} (start {round}): {err}", bootstrap.label));
            starts[index].push(start);
        }
    }
    let argon2 = argon2_verify_median();

    let medians: Vec<(Duration, Duration, Duration, u64, u64)> = bootstraps
        .iter()
        .zip(&starts)
        .map(|(bootstrap, starts)| {
            let size = std::fs::metadata(lambda_dir.join(bootstrap.name).join("bootstrap"))
                .unwrap()
                .len();
            (
                median(starts.iter().map(|s| s.init)),
                median(starts.iter().map(|s| s.first_invoke)),
                median(starts.iter().map(|s| s.warm_invoke)),
                median_u64(starts.iter().map(|s| s.peak_rss_kib)),
                size,
            )
        })
        .collect();
    let floor = medians[1];
    println!(
        "\ncold start: x86_64 release bootstraps against a fake Runtime API, DynamoDB Local; \
         medians of {STARTS} starts, this run"
    );
    println!(
        "{:<15} {:>10} {:>7} {:>13} {:>12} {:>9} {:>9} {:>7}",
        "bootstrap", "init", "x floor", "first invoke", "then warm", "peak RSS", "size", "x floor"
    );
    for (bootstrap, (init, invoke, warm, rss, size)) in bootstraps.iter().zip(&medians) {
        println!(
            "{:<15} {:>7.1} ms {:>6.2}x {:>10.1} ms {:>9.1} ms {:>6.1} MB {:>6.1} MB {:>6.2}x",
            bootstrap.label,
            ms(*init),
            ms(*init) / ms(floor.0),
            ms(*invoke),
            ms(*warm),
            *rss as f64 / 1024.0,
            *size as f64 / 1e6,
            *size as f64 / floor.4 as f64,
        );
    }
    let login = medians[bootstraps.iter().position(|b| b.name == "login").unwrap()];
    println!(
        "login's first invocation {:.1} ms: one argon2id verify {:.1} ms (in process, this run) \
         + {:.1} ms of DynamoDB Local round trips and the rest (the same login warm: {:.1} ms)",
        ms(login.1),
        ms(argon2),
        ms(login.1) - ms(argon2),
        ms(login.2)
    );
    println!("(x floor: against floor-dynamodb, a DynamoDB client and one read)");
    print_round_trips(&lambda_dir, &bootstraps, &env).await;
}

/// One more start of each of our bootstraps with DynamoDB behind the recording proxy: the
/// calls of its warm invocation (init's reads are not the route's), in round trips.
async fn print_round_trips(
    lambda_dir: &std::path::Path,
    bootstraps: &[Bootstrap],
    env: &[(String, String)],
) {
    let endpoint = std::env::var("DYNAMODB_ENDPOINT").unwrap();
    let (proxy, calls): (_, CallLog) = round_trips::start_proxy(&endpoint).await;
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(name, value)| match name.as_str() {
            "DYNAMODB_ENDPOINT" => (name.clone(), format!("http://{proxy}")),
            _ => (name.clone(), value.clone()),
        })
        .collect();
    println!("\nDynamoDB per request (a warm invocation; calls in one round trip joined by ∥)");
    for bootstrap in bootstraps.iter().filter(|b| !b.name.starts_with("floor-")) {
        let path = lambda_dir.join(bootstrap.name).join("bootstrap");
        let start = start_once(&path, bootstrap, &env)
            .await
            .unwrap_or_else(|err| panic!("{} through the proxy: {err}", bootstrap.label));
        let (from, to) = start.warm_window;
        let warm = calls.between(from, to);
        let trips = round_trips::round_trips(&warm);
        println!(
            "  {:<22} {} calls, {} round trips: {}",
            bootstrap.route,
            warm.len(),
            trips.len(),
            round_trips::describe(&trips)
        );
        // How much of each invocation is spent waiting for DynamoDB, first and warm: the
        // rest is the function's own work.
        for (label, (from, to)) in [("first", start.first_window), ("warm", start.warm_window)] {
            let calls = calls.between(from, to);
            let waiting: Duration = round_trips::round_trips(&calls)
                .iter()
                .map(|trip| round_trips::span(trip))
                .sum();
            println!(
                "  {:<22}   {label:<5} invocation {:>6.1} ms, of which waiting for DynamoDB {:>6.1} ms",
                "",
                ms(to - from),
                ms(waiting)
            );
        }
    }
}

/// What Lambda puts in the environment, plus the local settings of `events/env.json`, and
/// a user for the events (alice, admin, the events' password) in a fresh table.
async fn environment() -> (Vec<(String, String)>, User) {
    let endpoint = std::env::var("DYNAMODB_ENDPOINT")
        .expect("DYNAMODB_ENDPOINT is not set: run `make bench`, which starts DynamoDB Local");
    let (client, table) = integration_tests::dynamo_local::fresh_table().await;
    let store = DynamoUserStore::new(client, table.clone());
    let hash = PasswordHasher::new()
        .hash(&SecretString::from(EVENTS_PASSWORD.to_string()))
        .unwrap();
    let alice = store
        .create_user(
            NewUser {
                username: "alice".into(),
                name: "Alice".into(),
                role: Role::Admin,
                password_hash: hash,
            },
            jwt_auth_core::startup::clock::unix_now(),
            Actor::Operator,
        )
        .await
        .unwrap();
    let random_key = || {
        let mut bytes = [0u8; 32];
        jwt_auth_core::crypto::secret::fill_random(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let env = [
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        ("AWS_SESSION_TOKEN", "bench"),
        ("AWS_LAMBDA_FUNCTION_NAME", "bench"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
        ("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true"),
        ("RUST_LOG", "warn"),
        ("USERS_TABLE", &table),
        ("DYNAMODB_ENDPOINT", &endpoint),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .chain([
        ("JWT_SECRET".to_string(), random_key()),
        ("HMAC_SECRET".to_string(), random_key()),
    ])
    .collect();
    (env, alice)
}

/// The login function as deployed: its key set and HMAC secret in Secrets Manager (moto,
/// which `make bench` starts), read at cold start through `AWS_ENDPOINT_URL_SECRETS_MANAGER`
/// exactly as on Lambda, and the inline keys removed.
async fn secrets_in_moto() -> Vec<(&'static str, Option<String>)> {
    let endpoint = std::env::var(integration_tests::moto::ENDPOINT_VAR).unwrap_or_else(|_| {
        panic!("MOTO_ENDPOINT is not set: run `make bench`, which starts moto")
    });
    let client = jwt_auth_core::crypto::secret::secrets_manager_client(
        &integration_tests::moto::sdk_config(),
    );
    let document = jwt_auth_core::crypto::keys::KeySetDocument::generate(
        jwt_auth_core::crypto::keys::SigningAlgorithm::Es256,
        jwt_auth_core::startup::clock::unix_now(),
    );
    let mut hmac = [0u8; 32];
    jwt_auth_core::crypto::secret::fill_random(&mut hmac);
    let hmac: String = hmac.iter().map(|b| format!("{b:02x}")).collect();
    let keys_arn =
        integration_tests::moto::create_secret(&client, &serde_json::to_string(&document).unwrap())
            .await;
    let hmac_arn = integration_tests::moto::create_secret(&client, &hmac).await;
    vec![
        ("SIGNING_KEYS_SECRET_ARN", Some(keys_arn)),
        ("HMAC_SECRET_ARN", Some(hmac_arn)),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", Some(endpoint)),
        ("JWT_SECRET", None),
        ("HMAC_SECRET", None),
    ]
}

/// The authorizer as deployed: its permissions documents registered in SSM (moto) under
/// `PERMISSIONS_PATH`, read at cold start beside the keys and the DynamoDB warm-up. This
/// API's document under the events' API id, and the orders example's under 49 more.
async fn permissions_in_moto() -> Vec<(&'static str, Option<String>)> {
    let endpoint = std::env::var(integration_tests::moto::ENDPOINT_VAR).unwrap();
    let client = aws_sdk_ssm::Client::new(&integration_tests::moto::sdk_config());
    let path = integration_tests::moto::fresh_parameter_path();
    let orders =
        std::fs::read_to_string(workspace_root().join("examples/orders/permissions.json")).unwrap();
    for n in 1..50 {
        integration_tests::moto::put_parameter(&client, &format!("{path}/api{n:07}"), &orders)
            .await;
    }
    integration_tests::moto::put_parameter(
        &client,
        &format!("{path}/{BENCH_API_ID}"),
        jwt_auth_core::access::routes::THIS_API_DOCUMENT,
    )
    .await;
    vec![
        ("PERMISSIONS_PATH", Some(path)),
        ("AWS_ENDPOINT_URL_SSM", Some(endpoint)),
    ]
}

/// The API id of the authorizer's event (`methodArn`).
const BENCH_API_ID: &str = "abc123";

fn bootstraps(
    env: &[(String, String)],
    alice: &User,
    secrets_in_moto: Vec<(&'static str, Option<String>)>,
    permissions_in_moto: Vec<(&'static str, Option<String>)>,
) -> Vec<Bootstrap> {
    let secret = env
        .iter()
        .find(|(name, _)| name == "JWT_SECRET")
        .map(|(_, value)| SigningSecret::new(value.clone().into_bytes()).unwrap())
        .unwrap();
    let settings = jwt_auth_cli::commands::event::token_settings(3600);
    let token = TokenIssuer::new(TokenKeys::hs256(&secret), settings)
        .issue(
            alice,
            &Session::start(0),
            jwt_auth_core::startup::clock::unix_now(),
        )
        .unwrap()
        .token;
    let mut users_list: Value = serde_json::from_str(&event_text("users-list.json")).unwrap();
    jwt_auth_cli::commands::event::set_caller(&mut users_list, alice, 0, 3600, true).unwrap();
    let status_200 = |answer: &Value| answer["statusCode"] == 200;
    let authorizer_event = json!({
        "type": "TOKEN",
        "authorizationToken": format!("Bearer {token}"),
        "methodArn": format!("arn:aws:execute-api:us-east-1:123456789012:{BENCH_API_ID}/prod/GET/users"),
    });
    vec![
        Bootstrap {
            name: "floor-runtime",
            label: "floor-runtime",
            env: Vec::new(),
            route: "",
            event: json!({"bench": true}),
            answered: |answer| answer["bench"] == true,
        },
        Bootstrap {
            name: "floor-dynamodb",
            label: "floor-dynamodb",
            env: Vec::new(),
            route: "",
            event: json!({"bench": true}),
            answered: |answer| answer["bench"] == true,
        },
        Bootstrap {
            name: "authorizer",
            label: "authorizer",
            env: Vec::new(),
            route: "authorizer (TOKEN)",
            event: authorizer_event.clone(),
            answered: |answer| answer["policyDocument"]["Statement"][0]["Effect"] == "Allow",
        },
        Bootstrap {
            name: "authorizer",
            label: "authorizer+ssm",
            env: permissions_in_moto,
            route: "authorizer, docs in SSM",
            event: authorizer_event,
            answered: |answer| answer["policyDocument"]["Statement"][0]["Effect"] == "Allow",
        },
        Bootstrap {
            name: "login",
            label: "login",
            env: Vec::new(),
            route: "POST /login (success)",
            event: serde_json::from_str(&event_text("login-ok.json")).unwrap(),
            answered: status_200,
        },
        Bootstrap {
            name: "login",
            label: "login+secrets",
            env: secrets_in_moto,
            route: "POST /login, keys in SM",
            event: serde_json::from_str(&event_text("login-ok.json")).unwrap(),
            answered: status_200,
        },
        Bootstrap {
            name: "users",
            label: "users",
            env: Vec::new(),
            route: "GET /users",
            event: users_list,
            answered: status_200,
        },
    ]
}

/// One cold start: the process from spawn to its first `/next`, its first event to its
/// answer, the same event again (warm), and its peak RSS once it has answered both.
async fn start_once(
    path: &std::path::Path,
    bootstrap: &Bootstrap,
    env: &[(String, String)],
) -> Result<Start, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|err| err.to_string())?;
    let address = listener.local_addr().map_err(|err| err.to_string())?;
    let (marks_tx, mut marks) = mpsc::unbounded_channel();
    let event = Bytes::from(serde_json::to_vec(&bootstrap.event).unwrap());
    let nexts = Arc::new(AtomicUsize::new(0));
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (marks_tx, event, nexts) = (marks_tx.clone(), event.clone(), nexts.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    runtime_api(request, marks_tx.clone(), event.clone(), nexts.clone())
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    let spawned = Instant::now();
    let env = env
        .iter()
        .filter(|(name, _)| !bootstrap.env.iter().any(|(over, _)| over == name))
        .cloned()
        .chain(
            bootstrap
                .env
                .iter()
                .filter_map(|(name, value)| Some((name.to_string(), value.clone()?))),
        );
    let mut child = tokio::process::Command::new(path)
        .env_clear()
        .envs(env)
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| err.to_string())?;
    let result = async {
        let Mark::Next(first_next) = next_mark(&mut marks).await? else {
            return Err("answered before asking for an event".to_string());
        };
        let answered = answer(&mut marks, bootstrap).await?;
        let Mark::Next(second_next) = next_mark(&mut marks).await? else {
            return Err("answered twice".to_string());
        };
        let answered_again = answer(&mut marks, bootstrap).await?;
        // Asking for a third event: done with both, and all they allocated is counted.
        next_mark(&mut marks).await?;
        let peak_rss_kib = child.id().map(peak_rss_kib).unwrap_or(0);
        Ok(Start {
            init: first_next - spawned,
            first_invoke: answered - first_next,
            warm_invoke: answered_again - second_next,
            peak_rss_kib,
            first_window: (first_next, answered),
            warm_window: (second_next, answered_again),
        })
    }
    .await;
    let _ = child.kill().await;
    server.abort();
    result
}

/// When the bootstrap answered the event it was given, and that it answered as expected.
async fn answer(
    marks: &mut mpsc::UnboundedReceiver<Mark>,
    bootstrap: &Bootstrap,
) -> Result<Instant, String> {
    match next_mark(marks).await? {
        Mark::Response(at, body) => {
            let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if (bootstrap.answered)(&answer) {
                Ok(at)
            } else {
                Err(format!("unexpected answer: {answer}"))
            }
        }
        Mark::Error(error) => Err(format!("invocation error: {error}")),
        Mark::Next(_) => Err("asked again without answering".into()),
    }
}

async fn next_mark(marks: &mut mpsc::UnboundedReceiver<Mark>) -> Result<Mark, String> {
    tokio::time::timeout(STEP_TIMEOUT, marks.recv())
        .await
        .map_err(|_| format!("nothing from the bootstrap in {STEP_TIMEOUT:?}"))?
        .ok_or_else(|| "the fake Runtime API stopped".to_string())
}

/// The three calls of the Runtime API a function makes: `/next` (answered with the event
/// twice, then held, as Lambda holds it while no event comes), `/response`, `/error`.
async fn runtime_api(
    request: Request<Incoming>,
    marks: mpsc::UnboundedSender<Mark>,
    event: Bytes,
    nexts: Arc<AtomicUsize>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_string();
    if request.method() == Method::GET && path.ends_with("/runtime/invocation/next") {
        let _ = marks.send(Mark::Next(Instant::now()));
        if nexts.fetch_add(1, Ordering::SeqCst) >= 2 {
            std::future::pending::<()>().await;
        }
        let deadline_ms = jwt_auth_core::startup::clock::unix_now() * 1000 + 30_000;
        return Ok(Response::builder()
            .header("content-type", "application/json")
            .header("lambda-runtime-aws-request-id", "bench-request")
            .header("lambda-runtime-deadline-ms", deadline_ms.to_string())
            .header(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:bench",
            )
            .header(
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0",
            )
            .body(Full::new(event))
            .unwrap());
    }
    let body = request
        .into_body()
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let mark = if path.ends_with("/response") {
        Mark::Response(Instant::now(), body)
    } else {
        Mark::Error(format!("{path}: {}", String::from_utf8_lossy(&body)))
    };
    let _ = marks.send(mark);
    Ok(Response::builder()
        .status(202)
        .body(Full::new(Bytes::new()))
        .unwrap())
}

/// The process's peak resident set (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// One argon2id verify with the production parameters, median of 15, in this process.
fn argon2_verify_median() -> Duration {
    let hasher = PasswordHasher::new();
    let password = SecretString::from(EVENTS_PASSWORD.to_string());
    let stored = hasher.hash(&password).unwrap();
    median((0..15).map(|_| {
        let started = Instant::now();
        let _ = hasher.verify(&password, &stored);
        started.elapsed()
    }))
}

fn median(values: impl Iterator<Item = Duration>) -> Duration {
    let mut values: Vec<Duration> = values.collect();
    values.sort();
    values[values.len() / 2]
}

fn median_u64(values: impl Iterator<Item = u64>) -> u64 {
    let mut values: Vec<u64> = values.collect();
    values.sort();
    values[values.len() / 2]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
