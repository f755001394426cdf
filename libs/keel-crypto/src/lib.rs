//! Secrets at rest: AES-GCM under `ENCRYPTION_KEY` (AES-128, -192 or -256 by the key's
//! length, as sources-api-go's key may be 16 bytes). A sealed value is the 12-byte nonce
//! followed by the ciphertext and tag. The caller binds the owner of the secret (a tenant id,
//! an org id) in as associated data, so a value copied to another owner's row does not decrypt.

use aes_gcm::{
    Aes128Gcm, Aes256Gcm, AesGcm, Key, KeyInit,
    aead::{Aead, Generate, Nonce, Payload, consts::U12},
    aes::Aes192,
};
use anyhow::{Context as _, bail};
use base64::{
    Engine as _, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig, general_purpose::STANDARD},
};

const NONCE_LEN: usize = 12;

type Aes192Gcm = AesGcm<Aes192, U12>;

/// Standard base64 with or without its `=` padding: sources-api-go decodes `ENCRYPTION_KEY`
/// unpadded (`RawStdEncoding`), most tools print it padded.
const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Clone)]
enum Cipher {
    Aes128(Aes128Gcm),
    Aes192(Aes192Gcm),
    Aes256(Aes256Gcm),
}

impl Cipher {
    fn encrypt(
        &self,
        nonce: &Nonce<Aes256Gcm>,
        payload: Payload<'_, '_>,
    ) -> Result<Vec<u8>, aes_gcm::Error> {
        match self {
            Self::Aes128(c) => c.encrypt(nonce, payload),
            Self::Aes192(c) => c.encrypt(nonce, payload),
            Self::Aes256(c) => c.encrypt(nonce, payload),
        }
    }

    fn decrypt(
        &self,
        nonce: &Nonce<Aes256Gcm>,
        payload: Payload<'_, '_>,
    ) -> Result<Vec<u8>, aes_gcm::Error> {
        match self {
            Self::Aes128(c) => c.decrypt(nonce, payload),
            Self::Aes192(c) => c.decrypt(nonce, payload),
            Self::Aes256(c) => c.decrypt(nonce, payload),
        }
    }
}

#[derive(Clone)]
pub struct SecretBox {
    cipher: Cipher,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// `key` is base64 (padded or not) of 16, 24 or 32 bytes.
    pub fn from_base64(key: &str) -> anyhow::Result<Self> {
        let bytes = KEY_BASE64
            .decode(key.trim())
            .context("ENCRYPTION_KEY is not valid base64")?;
        Self::from_bytes(&bytes)
    }

    /// A 16, 24 or 32-byte key.
    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        let invalid = "invalid ENCRYPTION_KEY";
        let cipher = match bytes.len() {
            16 => Cipher::Aes128(Aes128Gcm::new_from_slice(bytes).context(invalid)?),
            24 => Cipher::Aes192(Aes192Gcm::new_from_slice(bytes).context(invalid)?),
            32 => Cipher::Aes256(Aes256Gcm::new_from_slice(bytes).context(invalid)?),
            n => bail!("ENCRYPTION_KEY must be 16, 24 or 32 bytes, base64-encoded (got {n} bytes)"),
        };
        Ok(Self { cipher })
    }

    /// An AES-256 key derived (HKDF-SHA256) from another secret of the deployment, for a
    /// service whose original needed no key of its own (Koku's listener stores credentials
    /// with only `DJANGO_SECRET_KEY` at hand). `purpose` keeps derived keys apart.
    pub fn derived_from(secret: &str, purpose: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !secret.is_empty(),
            "cannot derive a key from an empty secret"
        );
        let mut key = [0u8; 32];
        hkdf::Hkdf::<sha2::Sha256>::new(Some(b"keel-crypto"), secret.as_bytes())
            .expand(purpose.as_bytes(), &mut key)
            .map_err(|_| anyhow::anyhow!("HKDF refused a 32-byte key"))?;
        Self::from_bytes(&key)
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
    fn derived_keys_are_stable_per_secret_and_purpose() {
        let a = SecretBox::derived_from("django-secret", "listener").unwrap();
        let again = SecretBox::derived_from("django-secret", "listener").unwrap();
        let other_purpose = SecretBox::derived_from("django-secret", "broker").unwrap();
        let sealed = a.seal("s", b"o");
        assert_eq!(again.open(&sealed, b"o").unwrap(), "s");
        assert!(other_purpose.open(&sealed, b"o").is_err());
        assert!(SecretBox::derived_from("", "listener").is_err());
    }

    #[test]
    fn keys_are_16_24_or_32_bytes_of_base64_with_or_without_padding() {
        assert!(SecretBox::from_base64("not base64!").is_err());
        assert!(SecretBox::from_base64(&STANDARD.encode([0u8; 20])).is_err());
        for len in [16, 24, 32] {
            let padded = STANDARD.encode(vec![7u8; len]);
            let unpadded = padded.trim_end_matches('=').to_owned();
            let a = SecretBox::from_base64(&padded).unwrap();
            let b = SecretBox::from_base64(&unpadded).unwrap();
            assert_eq!(
                b.open(&a.seal("x", b"o"), b"o").unwrap(),
                "x",
                "{len} bytes"
            );
        }
        // sources-api-go's development key: "aaaaaaaaaaaaaaaa" without padding (AES-128).
        let dev = SecretBox::from_base64("YWFhYWFhYWFhYWFhYWFhYQ").unwrap();
        assert_eq!(dev.open(&dev.seal("pw", b"1"), b"1").unwrap(), "pw");
        let other = SecretBox::from_base64(&STANDARD.encode([b'a'; 32])).unwrap();
        assert!(
            other.open(&dev.seal("pw", b"1"), b"1").is_err(),
            "key length picks the cipher"
        );
    }
}
