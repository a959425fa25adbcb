//! Whether an access token still speaks for its user, checked where it matters.
//!
//! API Gateway caches the authorizer's answer (policy *and* context) per token for the
//! cache TTL and reuses it on every route, knowing nothing of `exp` or of revocation. So
//! the authorizer's check alone would let a demoted admin keep admin routes, a logged-out
//! session keep its other access tokens, and an expired token keep working, until the
//! cache entry ends. Every signed-in backend route therefore re-checks the caller with the
//! same rule and the same single strongly consistent read as the authorizer
//! ([`crate::store::UserStore::authorization_state`]) before acting, and acts with the
//! *stored* role. The cache then only saves authorizer invocations; revocation is
//! immediate on every function route.

use crate::ApiError;
use crate::crypto::token::is_expired;
use crate::store::{AuthorizationState, UserStore};
use crate::users::user::Role;
use crate::web::request::Caller;

/// Why a verified token no longer speaks for its user, or `None` if it still does: the
/// user is gone or disabled, its token version moved on (log out everywhere, a role or
/// password change, a reset), its role changed, the token was logged out, or its session
/// was revoked (logout, refresh-token reuse).
pub fn refusal(state: &AuthorizationState, role: Role, ver: u64) -> Option<&'static str> {
    match &state.user {
        None => Some("user deleted"),
        Some(user) if user.disabled => Some("user disabled"),
        Some(user) if user.token_version != ver || user.role != role => {
            Some("token version revoked")
        }
        Some(_) if state.jti_revoked => Some("token logged out"),
        Some(_) if state.session_revoked => Some("session revoked"),
        Some(_) => None,
    }
}

/// The caller as it stands now: refuses a token past its `exp` (with the verifier's
/// leeway) and a revoked one with 401, after one strongly consistent read. Costs one
/// BatchGetItem of three keys per request.
pub async fn current_caller(
    store: &dyn UserStore,
    caller: Caller,
    now: u64,
) -> Result<Caller, ApiError> {
    if is_expired(caller.exp, now) {
        tracing::info!(sub = %caller.sub, jti = %caller.jti, "expired token behind a cached Allow refused");
        return Err(ApiError::TokenExpired);
    }
    let state = store
        .authorization_state(&caller.sub, &caller.jti, &caller.sid)
        .await?;
    if let Some(reason) = refusal(&state, caller.role, caller.ver) {
        tracing::info!(reason, sub = %caller.sub, jti = %caller.jti, "caller refused");
        return Err(ApiError::Unauthorized);
    }
    // `refusal` demands the stored role to equal the token's; taking it from the store
    // anyway keeps the rule "act on stored state" true if that check ever loosens.
    let role = state.user.map_or(caller.role, |user| user.role);
    Ok(Caller { role, ..caller })
}

/// Holds a caller whose role must sign in with a second factor, and whose token was issued
/// without one, to the routes marked `before_second_factor` (403 on any other). The
/// authorizer's policy already does; this holds behind an answer API Gateway cached
/// before the rule changed, and on APIs whose authorizer is not ours.
pub fn within_reach(
    caller: &Caller,
    route: &crate::access::route::Route,
    rule: &crate::access::second_factor::SecondFactorRule,
) -> Result<(), ApiError> {
    use crate::access::second_factor::Reach;
    match caller.reach(rule) {
        Reach::BeforeSecondFactor if !route.before_second_factor => {
            tracing::info!(sub = %caller.sub, jti = %caller.jti, route = %route.key(), "caller without the second factor its role requires refused");
            Err(ApiError::SecondFactorRequired)
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::UserAuthState;

    fn state(role: Role, disabled: bool, token_version: u64) -> AuthorizationState {
        AuthorizationState {
            user: Some(UserAuthState {
                role,
                disabled,
                token_version,
            }),
            jti_revoked: false,
            session_revoked: false,
        }
    }

    #[test]
    fn a_current_token_is_not_refused() {
        assert_eq!(refusal(&state(Role::Admin, false, 3), Role::Admin, 3), None);
    }

    #[test]
    fn every_kind_of_revocation_is_refused() {
        let deleted = AuthorizationState {
            user: None,
            ..state(Role::Admin, false, 0)
        };
        let logged_out = AuthorizationState {
            jti_revoked: true,
            ..state(Role::Admin, false, 0)
        };
        let session_ended = AuthorizationState {
            session_revoked: true,
            ..state(Role::Admin, false, 0)
        };
        for (state, role, ver) in [
            (deleted, Role::Admin, 0),
            (state(Role::Admin, true, 0), Role::Admin, 0),
            (state(Role::Admin, false, 1), Role::Admin, 0),
            (state(Role::Customer, false, 0), Role::Admin, 0),
            (logged_out, Role::Admin, 0),
            (session_ended, Role::Admin, 0),
        ] {
            assert!(refusal(&state, role, ver).is_some(), "{state:?}");
        }
    }
}
