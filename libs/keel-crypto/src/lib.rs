//! Secrets at rest: AES-256-GCM under `ENCRYPTION_KEY`. A sealed value is the 12-byte nonce
//! followed by the ciphertext and tag. The caller binds the owner of the secret (a tenant id,
//! an org id) in as associated data, so a value copied to another owner's row does not decrypt.

use aes_gcm::{
    Aes256Gcm, Key, KeyInit,
    aead::{Aead, Generate, Nonce, Payload},
};
use anyhow::{Context as _, bail};
use base64::{Engine as _, engine::general_purpose::STANDARD};

const NONCE_LEN: usize = 12;

#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// `key` is base64 of exactly 32 bytes.
    pub fn from_base64(key: &str) -> anyhow::Result<Self> {
        let bytes = STANDARD
            .decode(key.trim())
            .context("ENCRYPTION_KEY is not valid base64")?;
        if bytes.len() != 32 {
            bail!(
                "ENCRYPTION_KEY must be 32 bytes, base64-encoded (got {} bytes)",
                bytes.len()
            );
        }
        let cipher = Aes256Gcm::new_from_slice(&bytes).context("invalid ENCRYPTION_KEY")?;
        Ok(Self { cipher })
    }

    /// A new random key, base64-encoded.
    pub fn generate_key() -> String {
        STANDARD.encode(Key::<Aes256Gcm>::generate())
    }

    pub fn seal(&self, plaintext: &str, owner: &[u8]) -> Vec<u8> {
        let nonce = Nonce::<Aes256Gcm>::generate();
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: owner,
                },
            )
            // Only fails for inputs of gigabytes, which a request body never holds.
            .expect("AES-GCM encryption of a request-sized value");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    pub fn open(&self, sealed: &[u8], owner: &[u8]) -> anyhow::Result<String> {
        if sealed.len() < NONCE_LEN {
            bail!("sealed value too short");
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::<Aes256Gcm>::try_from(nonce).context("bad nonce")?;
        let plain = self
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: owner,
                },
            )
            .map_err(|_| anyhow::anyhow!("secret does not decrypt under ENCRYPTION_KEY"))?;
        String::from_utf8(plain).context("decrypted secret is not UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_and_refuses_tampering() {
        let key = SecretBox::generate_key();
        let sb = SecretBox::from_base64(&key).unwrap();
        let sealed = sb.seal("s3cret", b"7");
        assert!(
            !sealed.windows(6).any(|w| w == b"s3cret"),
            "no plain text at rest"
        );
        assert_eq!(sb.open(&sealed, b"7").unwrap(), "s3cret");
        assert!(sb.open(&sealed, b"8").is_err(), "bound to its tenant");
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(sb.open(&tampered, b"7").is_err());
        let other = SecretBox::from_base64(&SecretBox::generate_key()).unwrap();
        assert!(
            other.open(&sealed, b"7").is_err(),
            "another key cannot read it"
        );
        assert_ne!(sb.seal("s3cret", b"7"), sealed, "fresh nonce every time");
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(SecretBox::from_base64("not base64!").is_err());
        assert!(SecretBox::from_base64(&STANDARD.encode([0u8; 16])).is_err());
        assert!(SecretBox::from_base64(&STANDARD.encode([0u8; 32])).is_ok());
    }
}
