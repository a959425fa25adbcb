//! Roles that must sign in with a second factor (`MFA_REQUIRED_ROLES`, default `admin`).
//!
//! A user of such a role who has not enrolled one still signs in with its password, since
//! otherwise nobody could ever enrol, but its tokens say so (`amr` is `["pwd"]`, RFC 8176)
//! and reach only the routes a permissions document marks `before_second_factor`: on this
//! API, enrolling (`POST /mfa/totp`, `/mfa/totp/confirm`) and logging out. Confirming the
//! enrolment ends every session of the user; its next sign-in takes two steps and its
//! tokens say `["pwd", "otp"]`. The authorizer narrows its policy so (the gateway's 403),
//! and the backends refuse the same callers again, since a cached answer may be older
//! than the rule.

pub use crate::crypto::token::{includes_second_factor, sign_in_methods};
use crate::users::user::{DeclaredRoles, Role};

/// How far a caller's token reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Every route its role is given.
    Full,
    /// Only the routes marked `before_second_factor`: its role requires a second factor
    /// and it signed in without one.
    BeforeSecondFactor,
}

/// The roles that must sign in with a second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondFactorRule {
    roles: Vec<Role>,
}

impl Default for SecondFactorRule {
    /// The deployed default: admins.
    fn default() -> Self {
        Self {
            roles: vec![Role::Admin],
        }
    }
}

impl SecondFactorRule {
    /// No role needs a second factor.
    pub fn none() -> Self {
        Self { roles: Vec::new() }
    }

    /// Parses a comma-separated list of declared roles; empty means none.
    pub fn parse_list(raw: &str, declared: &DeclaredRoles) -> Result<Self, String> {
        let mut roles = Vec::new();
        for name in raw
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            let role = Role::parse(name)
                .filter(|role| declared.contains(*role))
                .ok_or_else(|| format!("{name:?} is not a declared role ({declared})"))?;
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
        Ok(Self { roles })
    }

    pub fn requires(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// How far a token of `role`, signed in with or without the second factor, reaches.
    pub fn reach(&self, role: Role, second_factor: bool) -> Reach {
        if self.requires(role) && !second_factor {
            Reach::BeforeSecondFactor
        } else {
            Reach::Full
        }
    }
}

impl std::fmt::Display for SecondFactorRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.roles.iter().map(Role::as_str).collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_required_role_without_the_second_factor_is_held_and_no_one_else() {
        let declared = DeclaredRoles::parse_list("admin,customer,support").unwrap();
        let rule = SecondFactorRule::parse_list(" admin , support,admin", &declared).unwrap();
        let support = Role::parse("support").unwrap();
        assert_eq!(rule.to_string(), "admin,support");
        assert_eq!(rule.reach(Role::Admin, false), Reach::BeforeSecondFactor);
        assert_eq!(rule.reach(support, false), Reach::BeforeSecondFactor);
        assert_eq!(rule.reach(Role::Admin, true), Reach::Full);
        assert_eq!(rule.reach(Role::Customer, false), Reach::Full);
        assert_eq!(
            SecondFactorRule::parse_list("", &declared).unwrap(),
            SecondFactorRule::none()
        );
        assert_eq!(
            SecondFactorRule::default().reach(Role::Admin, false),
            Reach::BeforeSecondFactor
        );
        assert!(SecondFactorRule::parse_list("auditor", &declared).is_err());
        assert!(SecondFactorRule::parse_list("Admin!", &declared).is_err());
    }

    #[test]
    fn only_a_one_time_code_counts_as_the_second_factor() {
        assert!(!includes_second_factor(&sign_in_methods(false)));
        assert!(includes_second_factor(&sign_in_methods(true)));
        assert!(!includes_second_factor(&["pwd", "mfa", "OTP"]));
        assert!(includes_second_factor(&["otp"]));
    }
}
