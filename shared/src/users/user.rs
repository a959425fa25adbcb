//! Users as the product sees them. A password hash never appears in these types: it stays
//! inside the store and the login use case ([`crate::store::LoginRecord`]).

use serde::{Deserialize, Serialize};

/// Longest role name.
pub const ROLE_MAX_LEN: usize = 32;

/// What a user may do: a role name a deployment declares ([`DeclaredRoles`]), 1 to
/// [`ROLE_MAX_LEN`] characters of `a-z 0-9 _ -`, starting with a letter. Which routes a
/// role may call is configuration ([`crate::access::document`]), not code.
///
/// Held inline, so a role is `Copy` and costs no allocation on the authorizer's path. The
/// two roles of the default configuration are named constants, spelled like the enum
/// variants they once were, so that code and tests read `Role::Admin`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Role {
    len: u8,
    bytes: [u8; ROLE_MAX_LEN],
}

#[allow(non_upper_case_globals)]
impl Role {
    /// The role that manages users (`/users` and the admin routes of this API).
    pub const Admin: Role = Role::known("admin");
    pub const Customer: Role = Role::known("customer");
}

impl Role {
    /// The roles a deployment declares when it declares none.
    pub const DEFAULT: [Role; 2] = [Role::Admin, Role::Customer];

    /// A role name known at compile time; an invalid one fails the build.
    const fn known(name: &str) -> Role {
        match Role::from_bytes(name.as_bytes()) {
            Some(role) => role,
            None => panic!("not a role name"),
        }
    }

    const fn from_bytes(name: &[u8]) -> Option<Role> {
        if name.is_empty() || name.len() > ROLE_MAX_LEN || !name[0].is_ascii_lowercase() {
            return None;
        }
        let mut bytes = [0u8; ROLE_MAX_LEN];
        let mut i = 0;
        while i < name.len() {
            let b = name[i];
            if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-') {
                return None;
            }
            bytes[i] = b;
            i += 1;
        }
        Some(Role {
            len: name.len() as u8,
            bytes,
        })
    }

    /// The role named `raw`, if it is shaped like a role name (declared or not: whether a
    /// deployment knows it is [`DeclaredRoles::contains`]).
    pub fn parse(raw: &str) -> Option<Role> {
        Role::from_bytes(raw.as_bytes())
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (from_bytes).
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or_default()
    }
}

/// What [`Role::parse`] accepts, said to whoever sent something else.
pub const ROLE_NAME_RULE: &str =
    "a role name is 1 to 32 characters of a-z 0-9 _ -, starting with a letter";

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Role({})", self.as_str())
    }
}

impl Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Role::parse(&raw).ok_or_else(|| serde::de::Error::custom(ROLE_NAME_RULE))
    }
}

/// Most roles a deployment may declare (each one's routes are listed in every policy the
/// authorizer answers for it, so the set stays small).
pub const MAX_DECLARED_ROLES: usize = 16;

/// The roles a deployment declares (`ROLES`, default `admin,customer`). Users may be given
/// only these; a token whose role is not among them gets no route. [`Role::Admin`] is
/// always declared: it is the role that manages users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredRoles(Vec<Role>);

impl Default for DeclaredRoles {
    fn default() -> Self {
        Self(Role::DEFAULT.to_vec())
    }
}

impl DeclaredRoles {
    /// Parses a comma-separated list, e.g. `admin,customer,support`.
    pub fn parse_list(raw: &str) -> Result<Self, String> {
        let mut roles: Vec<Role> = Vec::new();
        for name in raw
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            let role = Role::parse(name).ok_or_else(|| format!("{name:?}: {ROLE_NAME_RULE}"))?;
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
        if !roles.contains(&Role::Admin) {
            return Err("must include admin, the role that manages users".into());
        }
        if roles.len() > MAX_DECLARED_ROLES {
            return Err(format!("at most {MAX_DECLARED_ROLES} roles"));
        }
        Ok(Self(roles))
    }

    pub fn contains(&self, role: Role) -> bool {
        self.0.contains(&role)
    }

    pub fn iter(&self) -> impl Iterator<Item = Role> + '_ {
        self.0.iter().copied()
    }

    /// `role` if declared, or the 400 message naming the declared ones.
    pub fn check(&self, role: Role) -> Result<Role, String> {
        if self.contains(role) {
            Ok(role)
        } else {
            Err(format!("role must be one of: {self}"))
        }
    }
}

impl std::fmt::Display for DeclaredRoles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.0.iter().map(Role::as_str).collect();
        f.write_str(&names.join(", "))
    }
}

/// A user as answered by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// 32 lowercase hex characters (128 random bits); also the token's `sub`.
    pub id: String,
    /// Unique, stored lowercase.
    pub username: String,
    /// Display name.
    pub name: String,
    pub role: Role,
    /// A disabled user cannot log in.
    pub disabled: bool,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
}

/// Length of a user id in hex characters.
pub const USER_ID_LEN: usize = 32;

/// A new random user id (128 bits from the OS CSPRNG, lowercase hex).
pub fn new_user_id() -> String {
    let mut bytes = [0u8; USER_ID_LEN / 2];
    crate::crypto::secret::fill_random(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// True for strings shaped like ids this product issues. Ids end up inside IAM policy
/// resources, so nothing with `*`, `?` or `/` may ever be taken for one.
pub fn is_valid_user_id(id: &str) -> bool {
    id.len() == USER_ID_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Username rules: 3 to 64 characters of `a-z 0-9 . _ @ -`, compared case-insensitively.
pub const USERNAME_MAX_LEN: usize = 64;

/// Normalises a username for storage and lookup (lowercase), or says why it is not one.
pub fn normalize_username(raw: &str) -> Result<String, &'static str> {
    let username = raw.trim().to_ascii_lowercase();
    if username.len() < 3 || username.len() > USERNAME_MAX_LEN {
        return Err("username must be 3 to 64 characters");
    }
    if !username
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'))
    {
        return Err("username may contain only letters, digits and . _ @ -");
    }
    Ok(username)
}

/// Display names: 1 to 100 characters, no control characters.
pub fn validate_display_name(raw: &str) -> Result<String, &'static str> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err("name must be 1 to 100 characters");
    }
    if name.chars().any(char::is_control) {
        return Err("name must not contain control characters");
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in Role::DEFAULT {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::Admin.as_str(), "admin");
        let support = Role::parse("support-tier_2").unwrap();
        assert_eq!(support.as_str(), "support-tier_2");
        assert_eq!(
            serde_json::from_str::<Role>("\"support-tier_2\"").unwrap(),
            support
        );
        assert_eq!(
            serde_json::to_string(&support).unwrap(),
            "\"support-tier_2\""
        );
        assert_eq!(
            Role::parse(&"r".repeat(ROLE_MAX_LEN))
                .unwrap()
                .as_str()
                .len(),
            32
        );
    }

    #[test]
    fn role_names_that_could_act_in_a_policy_or_a_log_are_refused() {
        for bad in [
            "",
            "Admin",
            "1st",
            "-x",
            "a*",
            "a/b",
            "a b",
            "a\n",
            "caf\u{e9}",
            "a.b",
            &"r".repeat(ROLE_MAX_LEN + 1),
        ] {
            assert_eq!(Role::parse(bad), None, "{bad:?}");
            assert!(serde_json::from_value::<Role>(serde_json::json!(bad)).is_err());
        }
    }

    #[test]
    fn a_deployment_declares_its_roles_and_admin_is_always_one() {
        let roles = DeclaredRoles::parse_list(" admin, customer ,support,support").unwrap();
        assert_eq!(roles.to_string(), "admin, customer, support");
        assert!(roles.contains(Role::parse("support").unwrap()));
        assert!(!roles.contains(Role::parse("auditor").unwrap()));
        assert_eq!(DeclaredRoles::default().to_string(), "admin, customer");
        assert!(DeclaredRoles::parse_list("customer,support").is_err());
        assert!(DeclaredRoles::parse_list("admin,Support").is_err());
        let many: Vec<String> = (0..MAX_DECLARED_ROLES).map(|i| format!("r{i}")).collect();
        assert!(DeclaredRoles::parse_list(&format!("admin,{}", many.join(","))).is_err());
        assert_eq!(
            roles.check(Role::parse("auditor").unwrap()).unwrap_err(),
            "role must be one of: admin, customer, support"
        );
    }

    #[test]
    fn new_user_ids_are_valid_and_distinct() {
        let a = new_user_id();
        let b = new_user_id();
        assert!(is_valid_user_id(&a));
        assert_ne!(a, b);
    }

    #[test]
    fn ids_with_policy_wildcards_are_not_ids() {
        for bad in [
            "*",
            "0123456789abcdef0123456789abcde*",
            "../users",
            "",
            "ABCDEF",
        ] {
            assert!(!is_valid_user_id(bad), "{bad}");
        }
    }

    #[test]
    fn usernames_are_lowercased_and_checked() {
        assert_eq!(
            normalize_username(" Alice@Example.com ").unwrap(),
            "alice@example.com"
        );
        assert!(normalize_username("ab").is_err());
        assert!(normalize_username(&"a".repeat(65)).is_err());
        assert!(normalize_username("bob smith").is_err());
        assert!(normalize_username("bob*").is_err());
    }
}
