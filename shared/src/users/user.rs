//! Users as the product sees them. A password hash never appears in these types: it stays
//! inside the store and the login use case ([`crate::store::LoginRecord`]).

use serde::{Deserialize, Serialize};

/// What a user may do. The role -> routes table is in [`crate::access::routes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Customer,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::Admin, Role::Customer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Customer => "customer",
        }
    }

    pub fn parse(raw: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == raw)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("Admin"), None);
        assert_eq!(Role::parse("root"), None);
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
