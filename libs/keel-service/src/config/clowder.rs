//! Clowder's app config (`ACG_CONFIG` names a JSON file), as the Red Hat platform mounts it
//! and `app-common-go` / `app-common-python` read it. Only the parts Keel uses are parsed;
//! unknown fields are ignored, as those libraries do.

use std::path::Path;

use anyhow::Context as _;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Clowder {
    pub public_port: Option<u16>,
    pub metrics_port: Option<u16>,
    pub database: Option<Database>,
    pub kafka: Option<Kafka>,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Database {
    pub name: String,
    pub username: String,
    pub password: String,
    pub hostname: String,
    pub port: u16,
    /// libpq's `sslmode`.
    pub ssl_mode: Option<String>,
    /// The CA of the database server, PEM.
    pub rds_ca: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Kafka {
    #[serde(default)]
    pub brokers: Vec<Broker>,
    #[serde(default)]
    pub topics: Vec<Topic>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Broker {
    pub hostname: String,
    pub port: Option<u16>,
    /// `sasl` or `mtls` when the broker needs authentication.
    pub authtype: Option<String>,
    /// The broker's CA, PEM.
    pub cacert: Option<String>,
    pub sasl: Option<Sasl>,
    pub security_protocol: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sasl {
    pub username: Option<String>,
    pub password: Option<String>,
    pub sasl_mechanism: Option<String>,
    pub security_protocol: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Topic {
    pub requested_name: String,
    pub name: String,
}

/// Another app's service: `app` and `name` as Clowder lists them (e.g. `sources-api`, `svc`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub app: String,
    pub name: String,
    pub hostname: String,
    pub port: u16,
    pub tls_port: Option<u16>,
}

impl Clowder {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let raw = std::fs::read(path)
            .with_context(|| format!("reading ACG_CONFIG {}", path.display()))?;
        serde_json::from_slice(&raw)
            .with_context(|| format!("parsing ACG_CONFIG {}", path.display()))
    }

    /// `host:port,...` of the brokers, as app-common's `KafkaServers`.
    pub fn kafka_servers(&self) -> Option<String> {
        let brokers = &self.kafka.as_ref()?.brokers;
        let servers: Vec<String> = brokers
            .iter()
            .map(|b| match b.port {
                Some(port) => format!("{}:{port}", b.hostname),
                None => b.hostname.clone(),
            })
            .collect();
        (!servers.is_empty()).then(|| servers.join(","))
    }

    /// The URL of another app's endpoint: `https` on its TLS port when it has one.
    pub fn endpoint_url(&self, app: &str, name: &str) -> Option<String> {
        let e = self
            .endpoints
            .iter()
            .find(|e| e.app.eq_ignore_ascii_case(app) && e.name == name)?;
        Some(match e.tls_port.filter(|p| *p != 0) {
            Some(port) => format!("https://{}:{port}", e.hostname),
            None => format!("http://{}:{}", e.hostname, e.port),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_shape_app_common_reads() {
        let config: Clowder = serde_json::from_str(
            r#"{
              "publicPort": 8000, "metricsPort": 9000, "webPort": 8000,
              "database": {"name": "sources", "username": "u", "password": "p",
                "hostname": "db.svc", "port": 5432, "adminUsername": "a",
                "adminPassword": "b", "rdsCa": "-----BEGIN CERTIFICATE-----", "sslMode": "verify-full"},
              "kafka": {
                "brokers": [{"hostname": "kafka.svc", "port": 9093, "authtype": "sasl",
                  "cacert": "PEM", "sasl": {"username": "user", "password": "pw",
                  "saslMechanism": "SCRAM-SHA-512", "securityProtocol": "SASL_SSL"}}],
                "topics": [{"requestedName": "platform.sources.event-stream",
                  "name": "platform.sources.event-stream-env"}]},
              "endpoints": [{"app": "sources-api", "name": "svc", "hostname": "sources.svc", "port": 8000},
                {"app": "rbac", "name": "service", "hostname": "rbac.svc", "port": 8000, "tlsPort": 8443}]
            }"#,
        )
        .unwrap();
        assert_eq!(config.kafka_servers().as_deref(), Some("kafka.svc:9093"));
        assert_eq!(
            config.endpoint_url("sources-api", "svc").as_deref(),
            Some("http://sources.svc:8000")
        );
        assert_eq!(
            config.endpoint_url("rbac", "service").as_deref(),
            Some("https://rbac.svc:8443")
        );
        let db = config.database.unwrap();
        assert_eq!((db.hostname.as_str(), db.port), ("db.svc", 5432));
        assert_eq!(db.ssl_mode.as_deref(), Some("verify-full"));
    }
}
