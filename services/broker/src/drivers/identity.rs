//! Who a deployment's objects are on a target: their names, and the credentials a caller
//! connects with.

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// The server-side names of a deployment's objects: on shared servers `<namespace>_<name>`
/// with `-` as `_`, cut to fit PostgreSQL's 63 bytes, and 8 hex digits of a hash of the exact
/// pair (so `a-b`/`c` and `a`/`b-c` stay apart); on Kubernetes the request's own namespace
/// and name, labelled with the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub object: String,
    pub namespace: String,
    pub name: String,
    /// The deployment's id (empty where no deployment is known yet).
    pub deployment: String,
}

impl Names {
    pub fn new(namespace: &str, name: &str) -> Self {
        let readable = format!("{namespace}_{name}").replace('-', "_");
        let hash = sha2::Sha256::digest(format!("{namespace}/{name}").as_bytes());
        let suffix: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
        let cut = &readable[..readable.len().min(54)];
        Self {
            object: format!("{cut}_{suffix}"),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            deployment: String::new(),
        }
    }

    /// The names of deployment `id`'s resource `name` in `namespace`.
    pub fn of(id: &str, namespace: &str, name: &str) -> Self {
        Self {
            deployment: id.to_owned(),
            ..Self::new(namespace, name)
        }
    }
}

/// What the caller gets to connect with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub database: Option<String>,
    /// Redis: the prefix every key and channel of the user must start with; NATS: the
    /// subjects the stream captures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    /// Kafka: the topic's name on the cluster; NATS: the stream's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

impl Credentials {
    /// A new random password (32 characters from an alphabet safe in URLs and shells).
    pub fn generate(username: &str, database: Option<&str>) -> Self {
        use ring::rand::SecureRandom as _;
        const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
        let mut bytes = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .expect("the system's randomness is available");
        let password = bytes
            .iter()
            .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
            .collect();
        Self {
            username: username.to_owned(),
            password,
            database: database.map(str::to_owned),
            key_prefix: None,
            topic: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_postgres_identifiers_and_stay_apart() {
        let n = Names::new("team-platform", "app-db").object;
        assert!(
            n.starts_with("team_platform_app_db_") && n.len() == 29,
            "{n}"
        );
        assert_ne!(Names::new("a-b", "c"), Names::new("a", "b-c"));
        let long = Names::new(&"n".repeat(63), &"r".repeat(63)).object;
        assert_eq!(long.len(), 63);
        assert_ne!(long, Names::new(&"n".repeat(63), &"r".repeat(62)).object);
    }

    #[test]
    fn passwords_are_long_and_fresh() {
        let a = Credentials::generate("u", None);
        let b = Credentials::generate("u", None);
        assert_eq!(a.password.len(), 32);
        assert_ne!(a.password, b.password);
        assert!(a.password.bytes().all(|c| c.is_ascii_alphanumeric()));
    }
}
