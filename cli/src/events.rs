//! `jwt-auth event …`: prints fresh events, so that `events/` never needs a
//! long-lived token. The token is signed with `JWT_SECRET`, the secret the locally invoked
//! authorizer must be started with (`cargo lambda watch` passes the environment on).

use jwt_auth_core::config::TokenSettings;
use jwt_auth_core::token::{Session, TokenIssuer, TokenKeys};
use jwt_auth_core::user::{Role, User, is_valid_user_id, new_user_id};

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
}

pub fn run(args: EventArgs) -> Result<(), String> {
    let EventKind::Authorizer {
        sub,
        username,
        role,
        method,
        path,
        stage,
        ttl,
    } = args.kind;
    let secret = crate::local_secret()?
        .ok_or("set JWT_SECRET (at least 32 bytes) to the secret the authorizer runs with")?;
    let role = Role::parse(&role).ok_or("role must be admin or customer")?;
    let sub = sub.unwrap_or_else(new_user_id);
    if !is_valid_user_id(&sub) {
        return Err("sub must be 32 lowercase hex characters".into());
    }
    let defaults = TokenSettings::default();
    let settings = TokenSettings {
        issuer: std::env::var("JWT_ISSUER").unwrap_or(defaults.issuer),
        audience: std::env::var("JWT_AUDIENCE").unwrap_or(defaults.audience),
        ttl_secs: ttl,
    };
    let issuer = TokenIssuer::new(TokenKeys::hs256(&secret), settings);
    let user = User {
        id: sub,
        username,
        name: String::new(),
        role,
        disabled: false,
        created_at: 0,
    };
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
    println!(
        "{}",
        serde_json::to_string_pretty(&event).map_err(|err| err.to_string())?
    );
    Ok(())
}
