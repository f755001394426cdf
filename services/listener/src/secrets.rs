//! Credentials at rest: secret fields are sealed under `ENCRYPTION_KEY`, bound to the org, and
//! equal credentials are recognised by a digest instead of by reading the secret.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use keel_crypto::SecretBox;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::domain::Object;

/// Credential fields that are secrets.
const SECRET_FIELDS: [&str; 1] = ["client_secret"];
const SEALED_PREFIX: &str = "sealed:v1:";

/// The credentials as stored: secret fields replaced by `sealed:v1:<base64>`.
pub fn seal(secrets: &SecretBox, org_id: &str, credentials: &Object) -> Object {
    let mut sealed = credentials.clone();
    for field in SECRET_FIELDS {
        if let Some(Value::String(plain)) = sealed.get(field) {
            let value = format!(
                "{SEALED_PREFIX}{}",
                STANDARD.encode(secrets.seal(plain, org_id.as_bytes()))
            );
            sealed.insert(field.to_owned(), Value::String(value));
        }
    }
    sealed
}

/// The stored credentials with their secret fields opened.
pub fn open(secrets: &SecretBox, org_id: &str, stored: &Object) -> anyhow::Result<Object> {
    let mut plain = stored.clone();
    for field in SECRET_FIELDS {
        if let Some(Value::String(value)) = plain.get(field)
            && let Some(encoded) = value.strip_prefix(SEALED_PREFIX)
        {
            let bytes = STANDARD.decode(encoded)?;
            let opened = secrets.open(&bytes, org_id.as_bytes())?;
            plain.insert(field.to_owned(), Value::String(opened));
        }
    }
    Ok(plain)
}

/// The credentials without their secret fields: what APIs may show.
pub fn redact(credentials: &Object) -> Object {
    let mut shown = credentials.clone();
    for field in SECRET_FIELDS {
        shown.remove(field);
    }
    shown
}

/// SHA-256 over the org and the plain credentials with sorted keys: equal credentials of one
/// org give equal digests.
pub fn digest(org_id: &str, credentials: &Object) -> String {
    let mut keys: Vec<&String> = credentials.keys().collect();
    keys.sort();
    let mut hasher = Sha256::new();
    hasher.update(org_id.as_bytes());
    for key in keys {
        hasher.update([0]);
        hasher.update(key.as_bytes());
        hasher.update([0]);
        hasher.update(credentials[key].to_string().as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secrets_are_sealed_per_org_and_digests_ignore_key_order() {
        let key = SecretBox::from_base64(&SecretBox::generate_key()).unwrap();
        let creds = json!({"client_id": "c", "client_secret": "s3cret-value", "tenant_id": "t"});
        let creds = creds.as_object().unwrap();
        let sealed = seal(&key, "org1", creds);
        assert!(
            !Value::Object(sealed.clone())
                .to_string()
                .contains("s3cret-value")
        );
        assert_eq!(sealed["client_id"], "c");
        assert_eq!(&open(&key, "org1", &sealed).unwrap(), creds);
        assert!(open(&key, "org2", &sealed).is_err(), "bound to its org");
        assert_eq!(redact(creds).get("client_secret"), None);

        let reordered =
            json!({"tenant_id": "t", "client_secret": "s3cret-value", "client_id": "c"});
        assert_eq!(
            digest("org1", creds),
            digest("org1", reordered.as_object().unwrap())
        );
        assert_ne!(digest("org1", creds), digest("org2", creds));
        let other = json!({"client_id": "c", "client_secret": "other", "tenant_id": "t"});
        assert_ne!(
            digest("org1", creds),
            digest("org1", other.as_object().unwrap())
        );
    }
}
