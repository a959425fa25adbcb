//! `jwt-auth event …`: prints fresh events, so that `events/` never needs a
//! long-lived token or a caller that exists only in the tests. An authorizer event's token is
//! signed with `JWT_SECRET`, the secret the locally invoked authorizer must be started with
//! (`cargo lambda watch` passes the environment on); a proxy event gets the authorizer
//! context of a real user, as the authorizer would hand it to the function.

use jwt_auth_core::token::{Session, TokenIssuer, TokenKeys};
use jwt_auth_core::user::new_user_id;
use local_gateway::events::{caller, set_caller, set_path_id, token_settings};
use serde_json::Value;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct EventArgs {
    #[command(subcommand)]
    kind: EventKind,
}

#[derive(clap::Subcommand)]
enum EventKind {
    /// A TOKEN authorizer event carrying a fresh access token.
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
        } => authorizer_event(sub, username, &role, &method, &path, &stage, ttl)?,
        EventKind::Http {
            file,
            sub,
            username,
            role,
            ver,
            id,
            body,
            ttl,
        } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|err| format!("{}: {err}", file.display()))?;
            let mut event: Value =
                serde_json::from_str(&text).map_err(|err| format!("{}: {err}", file.display()))?;
            if let (Some(sub), Some(username), Some(role)) = (sub, username, role) {
                let caller = caller(sub, username, &role)?;
                set_caller(&mut event, &caller, ver, ttl)?;
            }
            if let Some(id) = id {
                set_path_id(&mut event, &id)?;
            }
            if let Some(body) = body {
                event["body"] = Value::String(body);
            }
            event["requestContext"]["requestTimeEpoch"] = (jwt_auth_core::unix_now() * 1000).into();
            event
        }
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&event).map_err(|err| err.to_string())?
    );
    Ok(())
}

fn authorizer_event(
    sub: Option<String>,
    username: String,
    role: &str,
    method: &str,
    path: &str,
    stage: &str,
    ttl: u64,
) -> Result<Value, String> {
    let secret = crate::local_secret()?
        .ok_or("set JWT_SECRET (at least 32 bytes) to the secret the authorizer runs with")?;
    let user = caller(sub.unwrap_or_else(new_user_id), username, role)?;
    let issuer = TokenIssuer::new(TokenKeys::hs256(&secret), token_settings(ttl));
    let token = issuer
        .issue(&user, &Session::start(0), jwt_auth_core::unix_now())
        .map_err(|err| err.to_string())?
        .token;
    let event = serde_json::json!({
        "type": "TOKEN",
        "authorizationToken": format!("Bearer {token}"),
        "methodArn": format!(
            "arn:aws:execute-api:us-east-1:123456789012:abc123/{stage}/{}/{}",
            method.to_ascii_uppercase(),
            path.trim_start_matches('/')
        ),
    });
    Ok(event)
}
