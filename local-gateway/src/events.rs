//! Events for `sam local invoke` and `cargo lambda invoke` made current: a proxy event from
//! `events/` given the authorizer context of a real caller, as the authorizer would hand it
//! to the function (`jwt-auth event http`, `make sam-local`, the cold-start bench).

use jwt_auth_core::config::TokenSettings;
use jwt_auth_core::policy::AuthorizerContext;
use jwt_auth_core::token::{Claims, Session};
use jwt_auth_core::user::{Role, User, is_valid_user_id};
use serde_json::Value;

/// A caller: a user id, username and role, checked.
pub fn caller(sub: String, username: String, role: &str) -> Result<User, String> {
    let role = Role::parse(role).ok_or("role must be admin or customer")?;
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
    }
}

/// Puts `caller`'s context where API Gateway puts the authorizer's answer: its context
/// fields and `principalId` (the event's other authorizer fields stay).
pub fn set_caller(event: &mut Value, caller: &User, ver: u64, ttl: u64) -> Result<(), String> {
    let claims = Claims::new(
        caller,
        &Session::start(ver),
        &token_settings(ttl),
        jwt_auth_core::unix_now(),
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
        set_caller(&mut event, &carol(), 3, 900).unwrap();
        let context = &event["requestContext"]["authorizer"];
        assert_eq!(context["principalId"], "0123456789abcdef0123456789abcdef");
        assert_eq!(context["sub"], "0123456789abcdef0123456789abcdef");
        assert_eq!(context["username"], "carol");
        assert_eq!(context["role"], "customer");
        assert_eq!(context["ver"], "3");
        let exp: u64 = context["exp"].as_str().unwrap().parse().unwrap();
        let now = jwt_auth_core::unix_now();
        assert!(exp > now && exp <= now + 900, "exp a lifetime from now");
        assert_ne!(context["jti"], before["jti"], "a fresh jti");
        assert_ne!(context["sid"], before["sid"], "a fresh session");
        // A context value API Gateway would not pass (a number) stays as the event had it.
        assert_eq!(context["integrationLatency"], before["integrationLatency"]);
        let mut again = committed("users-get.json");
        set_caller(&mut again, &carol(), 3, 900).unwrap();
        assert_ne!(again["requestContext"]["authorizer"]["jti"], context["jti"]);
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
        assert!(set_caller(&mut token_event, &carol(), 0, 900).is_err());
        assert!(caller("not-an-id".into(), "carol".into(), "customer").is_err());
        assert!(
            caller(
                "0123456789abcdef0123456789abcdef".into(),
                "carol".into(),
                "root"
            )
            .is_err()
        );
    }
}
