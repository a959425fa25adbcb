//! IAM policy evaluation as API Gateway applies an authorizer's policy to a method ARN:
//! an explicit Deny wins, then any Allow, otherwise the request is denied (implicitly).
//! In `Resource` and `Action` patterns `*` matches any run of characters (crossing `/`)
//! and `?` exactly one; actions compare case-insensitively, resources case-sensitively.

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerPolicy;
use aws_lambda_events::iam::IamPolicyEffect;

/// The action API Gateway authorizes.
pub const INVOKE_ACTION: &str = "execute-api:Invoke";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// A Deny statement matched: 403 "... with an explicit deny".
    ExplicitDeny,
    /// Nothing allowed it: 403.
    ImplicitDeny,
}

/// Evaluates `policy` for invoking `method_arn`.
pub fn evaluate(policy: &ApiGatewayCustomAuthorizerPolicy, method_arn: &str) -> Decision {
    let mut allowed = false;
    for statement in &policy.statement {
        let action_matches = statement.action.iter().any(|pattern| {
            wildcard_match(
                &pattern.to_ascii_lowercase(),
                &INVOKE_ACTION.to_ascii_lowercase(),
            )
        });
        let resource_matches = statement
            .resource
            .iter()
            .any(|pattern| wildcard_match(pattern, method_arn));
        if !(action_matches && resource_matches) {
            continue;
        }
        match statement.effect {
            IamPolicyEffect::Deny => return Decision::ExplicitDeny,
            IamPolicyEffect::Allow => allowed = true,
            _ => {}
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

/// Glob matching with `*` (any run, including empty and `/`) and `?` (one character).
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it is currently standing for.
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            backtrack = Some((p, t));
            p += 1;
        } else if let Some((star, matched)) = backtrack {
            p = star + 1;
            t = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::iam::IamPolicyStatement;

    const PREFIX: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod";

    fn statement(effect: IamPolicyEffect, action: &str, resources: &[&str]) -> IamPolicyStatement {
        let mut statement = IamPolicyStatement::default();
        statement.effect = effect;
        statement.action = vec![action.into()];
        statement.resource = resources.iter().map(|r| r.to_string()).collect();
        statement
    }

    fn policy(statements: Vec<IamPolicyStatement>) -> ApiGatewayCustomAuthorizerPolicy {
        let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
        policy.version = Some("2012-10-17".into());
        policy.statement = statements;
        policy
    }

    #[test]
    fn an_exact_resource_allows_only_itself() {
        let p = policy(vec![statement(
            IamPolicyEffect::Allow,
            INVOKE_ACTION,
            &[&format!("{PREFIX}/GET/users")],
        )]);
        assert_eq!(
            evaluate(&p, &format!("{PREFIX}/GET/users")),
            Decision::Allow
        );
        assert_eq!(
            evaluate(&p, &format!("{PREFIX}/GET/users/x")),
            Decision::ImplicitDeny
        );
        assert_eq!(
            evaluate(&p, &format!("{PREFIX}/POST/users")),
            Decision::ImplicitDeny
        );
        assert_eq!(
            evaluate(
                &p,
                "arn:aws:execute-api:us-east-1:123456789012:other/prod/GET/users"
            ),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn a_star_crosses_slashes() {
        let p = policy(vec![statement(
            IamPolicyEffect::Allow,
            INVOKE_ACTION,
            &[&format!("{PREFIX}/*")],
        )]);
        assert_eq!(
            evaluate(&p, &format!("{PREFIX}/GET/users/a/b")),
            Decision::Allow
        );
        assert_eq!(evaluate(&p, &format!("{PREFIX}/")), Decision::Allow);
    }

    #[test]
    fn a_question_mark_matches_exactly_one_character() {
        let p = policy(vec![statement(
            IamPolicyEffect::Allow,
            INVOKE_ACTION,
            &[&format!("{PREFIX}/GET/users/?")],
        )]);
        assert_eq!(
            evaluate(&p, &format!("{PREFIX}/GET/users/a")),
            Decision::Allow
        );
        assert_eq!(
            evaluate(&p, &format!("{PREFIX}/GET/users/ab")),
            Decision::ImplicitDeny
        );
        assert_eq!(
            evaluate(&p, &format!("{PREFIX}/GET/users/")),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn an_explicit_deny_wins_over_an_allow() {
        let p = policy(vec![
            statement(
                IamPolicyEffect::Allow,
                INVOKE_ACTION,
                &[&format!("{PREFIX}/*")],
            ),
            statement(
                IamPolicyEffect::Deny,
                INVOKE_ACTION,
                &[&format!("{PREFIX}/GET/users")],
            ),
        ]);
        assert_eq!(
            evaluate(&p, &format!("{PREFIX}/GET/users")),
            Decision::ExplicitDeny
        );
        assert_eq!(
            evaluate(&p, &format!("{PREFIX}/GET/users/x")),
            Decision::Allow
        );
    }

    #[test]
    fn another_action_does_not_allow_invoke() {
        let p = policy(vec![statement(
            IamPolicyEffect::Allow,
            "execute-api:ManageConnections",
            &["*"],
        )]);
        assert_eq!(
            evaluate(&p, &format!("{PREFIX}/GET/users")),
            Decision::ImplicitDeny
        );
        let p = policy(vec![statement(
            IamPolicyEffect::Allow,
            "execute-api:*",
            &["*"],
        )]);
        assert_eq!(
            evaluate(&p, &format!("{PREFIX}/GET/users")),
            Decision::Allow
        );
        let p = policy(vec![statement(
            IamPolicyEffect::Allow,
            "EXECUTE-API:invoke",
            &["*"],
        )]);
        assert_eq!(
            evaluate(&p, &format!("{PREFIX}/GET/users")),
            Decision::Allow
        );
    }

    #[test]
    fn an_empty_policy_denies() {
        assert_eq!(
            evaluate(&policy(vec![]), &format!("{PREFIX}/GET/users")),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn wildcards_backtrack_correctly() {
        assert!(wildcard_match("a*b*c", "axxbyyc"));
        assert!(wildcard_match("a*c", "abcbc"));
        assert!(!wildcard_match("a*c", "abcb"));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match("?", ""));
        assert!(wildcard_match("**a", "a"));
    }
}
