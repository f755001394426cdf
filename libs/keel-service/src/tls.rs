//! TLS for outgoing connections: one crypto provider (ring, which sqlx's rustls uses too) for
//! the whole process, and HTTP clients that trust the system's roots plus a CA bundle.

use std::{path::Path, sync::Once, time::Duration};

use anyhow::Context as _;

/// Installs ring as the process's rustls provider (once; later calls do nothing).
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Fails only when another provider was installed first, which then serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client with rustls, the platform's roots and the certificates of `ca_bundle` (PEM).
pub fn http_client(ca_bundle: Option<&Path>, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(3)));
    if let Some(path) = ca_bundle {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("{} holds no PEM certificates", path.display()))?;
        anyhow::ensure!(
            !certs.is_empty(),
            "{} holds no certificates",
            path.display()
        );
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().context("building the HTTP client")
}
