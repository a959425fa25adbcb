//! `jwt-auth event …`: prints fresh events, so that `events/` never needs a
//! long-lived token or a caller that exists only in the tests. An authorizer event's token is
//! signed with `JWT_SECRET`, the secret the locally invoked authorizer must be started with
//! (`cargo lambda watch` passes the environment on); a proxy event gets the authorizer
//! context of a real user, as the authorizer would hand it to the function.

use jwt_auth_core::access::policy::AuthorizerContext;
use jwt_auth_core::crypto::token::TokenSettings;
use jwt_auth_core::crypto::token::{Claims, Session, TokenIssuer, TokenKeys};
use jwt_auth_core::users::user::new_user_id;
use jwt_auth_core::users::user::{Role, User, is_valid_user_id};
use serde_json::Value;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct EventArgs {
    #[command(subcommand)]
    kind: EventKind,
}

#[derive(clap::Subcommand)]
enum EventKind {
    /// A TOKEN authorizer event carrying a fresh access token (with `--http-api`, an HTTP
    /// API's REQUEST event in payload format 2.0, shaped as `sam local` builds it).
    Authorizer {
        /// The user id (`sub`); a random one if omitted.
        #[arg(long)]
        sub: Option<String>,
        #[arg(long, default_value = "alice")]
        username: String,
        #[arg(long, default_value = "admin")]
        role: String,
        /// Method and path of the methodArn.
        #[arg(long, default_value = "GET")]
        method: String,
        #[arg(long, default_value = "/users")]
        path: String,
        #[arg(long, default_value = "prod")]
        stage: String,
        /// Token lifetime in seconds.
        #[arg(long, default_value_t = 900)]
        ttl: u64,
        /// An HTTP API's payload 2.0 REQUEST event (the token in the `Authorization` header
        /// and the identity sources) instead of a REST API's TOKEN event.
        #[arg(long)]
        http_api: bool,
    },
    /// A proxy event from `events/` (e.g. events/users-get.json) made current: the
    /// caller's authorizer context (a fresh `jti` and session, `exp` a token lifetime from
    /// now), the `{id}` it targets and its body, each only when given.
    Http {
        /// The event to start from.
        file: PathBuf,
        /// The caller's user id (`sub`); with it, `--username` and `--role` replace the
        /// event's authorizer context.
        #[arg(long, requires_all = ["username", "role"])]
        sub: Option<String>,
        #[arg(long)]
        username: Option<String>,
        #[arg(long)]
        role: Option<String>,
        /// The caller's token version (`ver`): 0 until the user first revokes its tokens.
        #[arg(long, default_value_t = 0)]
        ver: u64,
        /// The user id of a /users/{id} route.
        #[arg(long)]
        id: Option<String>,
        /// The request body (e.g. a refresh token a login answered).
        #[arg(long)]
        body: Option<String>,
        /// Lifetime of the caller's token, in seconds.
        #[arg(long, default_value_t = 900)]
        ttl: u64,
        /// The caller signed in with its password alone (`amr` `pwd`), as an admin without
        /// its second factor is held to enrolment; by default it used both steps.
        #[arg(long)]
        password_only: bool,
    },
}

pub fn run(args: EventArgs) -> Result<(), String> {
    let event = match args.kind {
        EventKind::Authorizer {
            sub,
            username,
            role,
            method,
            path,
            stage,
            ttl,
            http_api,
        } => {
            let token = fresh_token(sub, username, &role, ttl)?;
            if http_api {
                http_api_authorizer_event(&token, &method, &path, &stage)
            } else {
                authorizer_event(&token, &method, &path, &stage)
            }
        }
        EventKind::Http {
            file,
            sub,
            username,
            role,
            ver,
            id,
            body,
            ttl,
            password_only,
        } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|err| format!("{}: {err}", file.display()))?;
            let mut event: Value =
                serde_json::from_str(&text).map_err(|err| format!("{}: {err}", file.display()))?;
            if let (Some(sub), Some(username), Some(role)) = (sub, username, role) {
                let caller = caller(sub, username, &role)?;
                set_caller(&mut event, &caller, ver, ttl, !password_only)?;
            }
            if let Some(id) = id {
                set_path_id(&mut event, &id)?;
            }
            if let Some(body) = body {
                event["body"] = Value::String(body);
            }
            event["requestContext"]["requestTimeEpoch"] =
                (jwt_auth_core::startup::clock::unix_now() * 1000).into();
            event
        }
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&event).map_err(|err| err.to_string())?
    );
    Ok(())
}

/// A fresh access token of the caller, signed with `JWT_SECRET`.
fn fresh_token(
    sub: Option<String>,
    username: String,
    role: &str,
    ttl: u64,
) -> Result<String, String> {
    let secret = super::local_secret()?
        .ok_or("set JWT_SECRET (at least 32 bytes) to the secret the authorizer runs with")?;
    let user = caller(sub.unwrap_or_else(new_user_id), username, role)?;
    let issuer = TokenIssuer::new(TokenKeys::hs256(&secret), token_settings(ttl));
    Ok(issuer
        .issue(
            &user,
            // A sign-in with both steps: with the second factor admins must use by default.
            &Session::start_with_second_factor(0),
            jwt_auth_core::startup::clock::unix_now(),
        )
        .map_err(|err| err.to_string())?
        .token)
}

fn route_arn(method: &str, path: &str, stage: &str) -> String {
    format!(
        "arn:aws:execute-api:us-east-1:123456789012:abc123/{stage}/{}/{}",
        method.to_ascii_uppercase(),
        path.trim_start_matches('/')
    )
}

fn authorizer_event(token: &str, method: &str, path: &str, stage: &str) -> Value {
    serde_json::json!({
        "type": "TOKEN",
        "authorizationToken": format!("Bearer {token}"),
        "methodArn": route_arn(method, path, stage),
    })
}

/// As `sam local start-api` builds it for an HTTP API route whose Lambda authorizer has
/// the identity source `$request.header.Authorization`: the route's payload 2.0 event, plus
/// `type`, `identitySource` and `routeArn`.
fn http_api_authorizer_event(token: &str, method: &str, path: &str, stage: &str) -> Value {
    let method = method.to_ascii_uppercase();
    let authorization = format!("Bearer {token}");
    // The route as API Gateway names it: this API's route template the path reaches.
    let route_key = jwt_auth_core::access::routes::match_route(&method, path)
        .map_or_else(|| "$default".to_string(), |(route, _)| route.key());
    let now_ms = jwt_auth_core::startup::clock::unix_now() * 1000;
    serde_json::json!({
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": route_arn(&method, path, stage),
        "identitySource": [authorization],
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": "",
        "cookies": [],
        "headers": {
            "accept": "application/json",
            "authorization": authorization,
            "host": "abc123.execute-api.us-east-1.amazonaws.com",
            "user-agent": "jwt-auth",
        },
        "queryStringParameters": {},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": "jwt-auth",
            },
            "requestId": new_user_id(),
            "routeKey": route_key,
            "stage": stage,
            "timeEpoch": now_ms,
        },
        "pathParameters": {},
        "stageVariables": {},
        "isBase64Encoded": false,
    })
}

/// A caller: a user id, username and role, checked.
pub fn caller(sub: String, username: String, role: &str) -> Result<User, String> {
    let role = Role::parse(role).ok_or(jwt_auth_core::users::user::ROLE_NAME_RULE)?;
    if !is_valid_user_id(&sub) {
        return Err("sub must be 32 lowercase hex characters".into());
    }
    Ok(User {
        id: sub,
        username,
        name: String::new(),
        role,
        disabled: false,
        created_at: 0,
    })
}

/// The token settings of the local functions: the template's defaults, or `JWT_ISSUER` and
/// `JWT_AUDIENCE` when set.
pub fn token_settings(ttl_secs: u64) -> TokenSettings {
    let defaults = TokenSettings::default();
    TokenSettings {
        issuer: std::env::var("JWT_ISSUER").unwrap_or(defaults.issuer),
        audience: std::env::var("JWT_AUDIENCE").unwrap_or(defaults.audience),
        ttl_secs,
        previous_issuer: None,
    }
}

/// Puts `caller`'s context where API Gateway puts the authorizer's answer: its context
/// fields and `principalId` (the event's other authorizer fields stay).
pub fn set_caller(
    event: &mut Value,
    caller: &User,
    ver: u64,
    ttl: u64,
    second_factor: bool,
) -> Result<(), String> {
    let session = Session {
        second_factor,
        ..Session::start(ver)
    };
    let claims = Claims::new(
        caller,
        &session,
        &token_settings(ttl),
        jwt_auth_core::startup::clock::unix_now(),
        ttl,
    );
    let context =
        serde_json::to_value(AuthorizerContext::from(claims)).map_err(|err| err.to_string())?;
    let request_context = event
        .get_mut("requestContext")
        .and_then(Value::as_object_mut)
        .ok_or("the event has no requestContext: not an API Gateway proxy event")?;
    let authorizer = request_context
        .entry("authorizer")
        .or_insert_with(|| Value::Object(Default::default()));
    let Value::Object(authorizer) = authorizer else {
        return Err("the event's requestContext.authorizer is not an object".into());
    };
    authorizer.insert("principalId".into(), caller.id.clone().into());
    if let Value::Object(fields) = context {
        authorizer.extend(fields);
    }
    Ok(())
}

/// Points a /users/{id} event at `id`: its path parameter and both paths.
pub fn set_path_id(event: &mut Value, id: &str) -> Result<(), String> {
    if !is_valid_user_id(id) {
        return Err("--id must be 32 lowercase hex characters".into());
    }
    let old = event["pathParameters"]["id"]
        .as_str()
        .ok_or("the event has no {id} path parameter")?
        .to_string();
    event["pathParameters"]["id"] = id.into();
    for pointer in ["/path", "/requestContext/path"] {
        if let Some(path) = event.pointer_mut(pointer)
            && let Some(text) = path.as_str()
        {
            *path = text.replace(&old, id).into();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(name: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../events")
            .join(name);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn carol() -> User {
        caller(
            "0123456789abcdef0123456789abcdef".into(),
            "carol".into(),
            "customer",
        )
        .unwrap()
    }

    #[test]
    fn a_caller_replaces_the_whole_context_with_a_fresh_unexpired_one() {
        let mut event = committed("users-get.json");
        let before = event["requestContext"]["authorizer"].clone();
        set_caller(&mut event, &carol(), 3, 900, true).unwrap();
        let context = &event["requestContext"]["authorizer"];
        assert_eq!(context["principalId"], "0123456789abcdef0123456789abcdef");
        assert_eq!(context["sub"], "0123456789abcdef0123456789abcdef");
        assert_eq!(context["username"], "carol");
        assert_eq!(context["role"], "customer");
        assert_eq!(context["ver"], "3");
        assert_eq!(context["amr"], "pwd otp");
        let exp: u64 = context["exp"].as_str().unwrap().parse().unwrap();
        let now = jwt_auth_core::startup::clock::unix_now();
        assert!(exp > now && exp <= now + 900, "exp a lifetime from now");
        assert_ne!(context["jti"], before["jti"], "a fresh jti");
        assert_ne!(context["sid"], before["sid"], "a fresh session");
        // A context value API Gateway would not pass (a number) stays as the event had it.
        assert_eq!(context["integrationLatency"], before["integrationLatency"]);
        let mut again = committed("users-get.json");
        set_caller(&mut again, &carol(), 3, 900, false).unwrap();
        assert_ne!(again["requestContext"]["authorizer"]["jti"], context["jti"]);
        assert_eq!(again["requestContext"]["authorizer"]["amr"], "pwd");
    }

    #[test]
    fn a_target_id_moves_the_path_parameter_and_both_paths() {
        let mut event = committed("users-reset-password.json");
        set_path_id(&mut event, "fedcba9876543210fedcba9876543210").unwrap();
        assert_eq!(
            event["pathParameters"]["id"],
            "fedcba9876543210fedcba9876543210"
        );
        assert_eq!(
            event["path"],
            "/users/fedcba9876543210fedcba9876543210/password"
        );
        assert_eq!(
            event["requestContext"]["path"],
            "/prod/users/fedcba9876543210fedcba9876543210/password"
        );
        assert!(set_path_id(&mut event, "../../etc").is_err());
        assert!(set_path_id(&mut committed("users-list.json"), &"a".repeat(32)).is_err());
    }

    #[test]
    fn only_proxy_events_and_valid_callers_are_accepted() {
        let mut token_event = committed("authorizer-valid.json");
        assert!(set_caller(&mut token_event, &carol(), 0, 900, true).is_err());
        assert!(caller("not-an-id".into(), "carol".into(), "customer").is_err());
        assert!(
            caller(
                "0123456789abcdef0123456789abcdef".into(),
                "carol".into(),
                "root*"
            )
            .is_err()
        );
    }
}
