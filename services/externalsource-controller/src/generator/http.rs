//! The HTTP generator: one request, `If-None-Match` with the last ETag (304: unchanged),
//! headers from a Secret, a CA bundle from a Secret, a timeout and a size limit.

use std::{collections::BTreeMap, time::Duration};

use futures::{StreamExt as _, future::BoxFuture};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::{Fetched, Generator, Input};
use crate::error::{Class, Error, Result};

pub struct HttpGenerator {
    /// For sources without a CA bundle or insecureSkipVerify (connections are reused).
    shared: reqwest::Client,
    timeout: Duration,
    max_bytes: usize,
    user_agent: String,
}

fn client(timeout: Duration, user_agent: &str) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(user_agent)
}

async fn secret(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<BTreeMap<String, Vec<u8>>> {
    let found = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await?
        .ok_or_else(|| Error::Configuration(format!("secret {namespace}/{name} not found")))?;
    Ok(found
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect())
}

impl HttpGenerator {
    pub fn new(timeout: Duration, max_bytes: usize, user_agent: &str) -> anyhow::Result<Self> {
        keel_service::tls::install_crypto_provider();
        Ok(Self {
            shared: client(timeout, user_agent).build()?,
            timeout,
            max_bytes,
            user_agent: user_agent.to_owned(),
        })
    }

    async fn fetch(&self, input: Input<'_>) -> Result<Fetched> {
        let spec = input.spec.http.as_ref().ok_or_else(|| {
            Error::Configuration("generator.type is http but generator.http is missing".into())
        })?;
        let url = reqwest::Url::parse(&spec.url)
            .map_err(|e| Error::Configuration(format!("url {:?}: {e}", spec.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::Configuration(format!(
                "url {:?} is not http or https",
                spec.url
            )));
        }
        let method = reqwest::Method::from_bytes(spec.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| {
                Error::Configuration(format!("method {:?} is not an HTTP method", spec.method))
            })?;
        let client = match (&spec.ca_bundle_secret_ref, spec.insecure_skip_verify) {
            (None, false) => self.shared.clone(),
            (ca, insecure) => {
                let mut builder = client(self.timeout, &self.user_agent);
                if let Some(r) = ca {
                    let key = r.key.as_deref().unwrap_or("ca.crt");
                    let data = secret(input.client, input.namespace, &r.name).await?;
                    let pem = data.get(key).ok_or_else(|| {
                        Error::Configuration(format!(
                            "secret {}/{} has no key {key}",
                            input.namespace, r.name
                        ))
                    })?;
                    let certs = reqwest::Certificate::from_pem_bundle(pem)
                        .ok()
                        .filter(|c| !c.is_empty())
                        .ok_or_else(|| {
                            Error::Configuration(format!(
                                "{}/{key} holds no PEM certificate",
                                r.name
                            ))
                        })?;
                    builder = builder.tls_certs_merge(certs);
                }
                if insecure {
                    tracing::warn!(url = %url, "insecureSkipVerify: the server's certificate is not verified");
                    builder = builder.tls_danger_accept_invalid_certs(true);
                }
                builder
                    .build()
                    .map_err(|e| Error::Configuration(format!("TLS settings: {e}")))?
            }
        };
        let mut request = client.request(method, url.clone());
        if let Some(r) = &spec.headers_secret_ref {
            for (name, value) in secret(input.client, input.namespace, &r.name).await? {
                let name = reqwest::header::HeaderName::from_bytes(name.as_bytes());
                let value = reqwest::header::HeaderValue::from_bytes(value.trim_ascii());
                match (name, value) {
                    (Ok(n), Ok(v)) => request = request.header(n, v),
                    _ => {
                        return Err(Error::Configuration(format!(
                            "secret {} holds a key or value that is not a header",
                            r.name
                        )));
                    }
                }
            }
        }
        if let Some(etag) = input.last_etag {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        let transient = |message: String| Error::Fetch {
            class: Class::Transient,
            message,
        };
        let response = request
            .send()
            .await
            .map_err(|e| transient(format!("GET {url}: {e}")))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(Fetched::Unchanged);
        }
        if !status.is_success() {
            let class =
                if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
                    Class::Transient
                } else {
                    Class::Permanent
                };
            return Err(Error::Fetch {
                class,
                message: format!("{url} answered {status}"),
            });
        }
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let etag = header(reqwest::header::ETAG);
        let mut metadata = BTreeMap::from([("url".to_owned(), url.to_string())]);
        if let Some(t) = header(reqwest::header::CONTENT_TYPE) {
            metadata.insert("contentType".into(), t);
        }
        if response
            .content_length()
            .is_some_and(|n| n > self.max_bytes as u64)
        {
            return Err(self.too_large(&url));
        }
        let mut data = Vec::new();
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| transient(format!("reading {url}: {e}")))?;
            if data.len() + chunk.len() > self.max_bytes {
                return Err(self.too_large(&url));
            }
            data.extend_from_slice(&chunk);
        }
        Ok(Fetched::New {
            data,
            etag,
            metadata,
        })
    }

    fn too_large(&self, url: &reqwest::Url) -> Error {
        Error::Fetch {
            class: Class::Permanent,
            message: format!("{url} is larger than the {} byte limit", self.max_bytes),
        }
    }
}

impl Generator for HttpGenerator {
    fn generate<'a>(&'a self, input: Input<'a>) -> BoxFuture<'a, Result<Fetched>> {
        Box::pin(self.fetch(input))
    }
}
