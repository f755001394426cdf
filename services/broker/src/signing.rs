//! The Ed25519 key that signs callbacks (`X-KIDP-Signature`), read in the forms the KIDP
//! broker accepts: base64 of Go's 64-byte private key or of the 32-byte seed, or a PKCS#8
//! document (base64 DER or PEM).

use anyhow::{Context as _, bail};
use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair as _};

use crate::domain::callback::signed_message;

pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public_base64())
            .finish_non_exhaustive()
    }
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

impl SigningKey {
    /// Reads a key from its text (base64 or PEM).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        let der = if let Some(body) = text.strip_prefix("-----BEGIN PRIVATE KEY-----") {
            let body = body
                .split("-----END PRIVATE KEY-----")
                .next()
                .unwrap_or_default();
            let joined: String = body.split_whitespace().collect();
            B64.decode(joined).context("the PEM key is not base64")?
        } else {
            B64.decode(text)
                .context("the signing key is neither base64 nor PEM")?
        };
        let pair = match der.len() {
            32 => Ed25519KeyPair::from_seed_unchecked(&der),
            64 => Ed25519KeyPair::from_seed_and_public_key(&der[..32], &der[32..]),
            _ => Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der),
        };
        match pair {
            Ok(pair) => Ok(Self { pair }),
            Err(e) => bail!("not an Ed25519 private key: {e}"),
        }
    }

    /// A new random key, and its text form (base64 of Go's 64-byte private key).
    pub fn generate() -> anyhow::Result<(Self, String)> {
        let mut seed = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
            .map_err(|_| anyhow::anyhow!("no randomness"))?;
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|e| anyhow::anyhow!("cannot make a key: {e}"))?;
        let mut go = seed.to_vec();
        go.extend_from_slice(pair.public_key().as_ref());
        Ok((Self { pair }, B64.encode(go)))
    }

    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    pub fn public_base64(&self) -> String {
        B64.encode(self.public_key())
    }

    /// `X-KIDP-Signature` for a callback sent at `timestamp` with `body`.
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        B64.encode(self.pair.sign(&signed_message(timestamp, body)).as_ref())
    }
}

/// Checks a signature as a manager does (tests, and anyone verifying with the public key).
pub fn verify(public_key: &[u8], timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Ok(sig) = B64.decode(signature) else {
        return false;
    };
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key)
        .verify(&signed_message(timestamp, body), &sig)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_tampering_does_not() {
        let (key, text) = SigningKey::generate().unwrap();
        let again = SigningKey::parse(&text).unwrap();
        assert_eq!(key.public_key(), again.public_key());
        let sig = key.sign("2025-10-03T09:30:00Z", b"{\"a\":1}");
        assert!(verify(
            key.public_key(),
            "2025-10-03T09:30:00Z",
            b"{\"a\":1}",
            &sig
        ));
        assert!(!verify(
            key.public_key(),
            "2025-10-03T09:30:01Z",
            b"{\"a\":1}",
            &sig
        ));
        assert!(!verify(
            key.public_key(),
            "2025-10-03T09:30:00Z",
            b"{\"a\":2}",
            &sig
        ));
        assert!(!verify(
            key.public_key(),
            "2025-10-03T09:30:00Z",
            b"{\"a\":1}",
            "bm90IGEgc2ln"
        ));
    }

    #[test]
    fn the_seed_alone_and_pkcs8_pem_are_read() {
        let (key, text) = SigningKey::generate().unwrap();
        let go = B64.decode(text).unwrap();
        let seed = SigningKey::parse(&B64.encode(&go[..32])).unwrap();
        assert_eq!(seed.public_key(), key.public_key());
        // RFC 8410's example private key.
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
        let from_pem = SigningKey::parse(pem).unwrap();
        assert_eq!(
            from_pem.public_base64(),
            "Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE="
        );
        assert!(SigningKey::parse("bm90IGEga2V5").is_err());
        let mismatched = [&go[..32], &[0u8; 32][..]].concat();
        assert!(SigningKey::parse(&B64.encode(mismatched)).is_err());
    }
}
