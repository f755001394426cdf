//! Where Kafka is and how to reach it. `KAFKA_BROKERS` wins; else Clowder's brokers; else
//! sources-api-go's `QUEUE_HOST`/`QUEUE_PORT`; else Koku's `INSIGHTS_KAFKA_HOST`/`_PORT`.
//! Security comes from Koku's variables (`KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_MECHANISM`,
//! `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD`, `KAFKA_SSL_CA_LOCATION`), else from Clowder's
//! first broker. Topic names are renamed as Clowder maps them.

use std::{collections::BTreeMap, fmt};

use super::{Env, clowder::Clowder};

/// How Keel's Kafka clients connect. Secrets stay out of `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaSettings {
    /// `host:port,...`
    pub brokers: String,
    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub security_protocol: Option<String>,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub sasl_mechanism: Option<String>,
    pub sasl_username: Option<String>,
    pub sasl_password: Option<String>,
    /// A CA file for the brokers' certificates.
    pub ca_location: Option<String>,
    /// The CA itself, PEM (Clowder hands it over inline).
    pub ca_pem: Option<String>,
    /// Requested topic name -> the name on this cluster (Clowder's `topics`).
    pub topics: BTreeMap<String, String>,
}

impl fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("security_protocol", &self.security_protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field(
                "sasl_password",
                &self.sasl_password.as_ref().map(|_| "<redacted>"),
            )
            .field("ca_location", &self.ca_location)
            .field("topics", &self.topics)
            .finish()
    }
}

impl KafkaSettings {
    /// Plain connection to `brokers`.
    pub fn plain(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            ..Self::default()
        }
    }

    /// The name of `requested` on this cluster.
    pub fn topic<'a>(&'a self, requested: &'a str) -> &'a str {
        self.topics.get(requested).map_or(requested, String::as_str)
    }

    /// librdkafka properties for the connection (bootstrap servers, security, SASL, CA).
    pub fn client_properties(&self) -> Vec<(&'static str, String)> {
        let mut props = vec![("bootstrap.servers", self.brokers.clone())];
        if let Some(p) = &self.security_protocol {
            props.push(("security.protocol", p.to_ascii_lowercase()));
        }
        if let Some(m) = &self.sasl_mechanism {
            props.push(("sasl.mechanism", m.to_ascii_uppercase()));
        }
        if let Some(u) = &self.sasl_username {
            props.push(("sasl.username", u.clone()));
        }
        if let Some(p) = &self.sasl_password {
            props.push(("sasl.password", p.clone()));
        }
        if let Some(ca) = &self.ca_location {
            props.push(("ssl.ca.location", ca.clone()));
        } else if let Some(pem) = &self.ca_pem {
            props.push(("ssl.ca.pem", pem.clone()));
        }
        props
    }
}

/// The Kafka settings, or `None` for the embedded log.
pub fn resolve(
    explicit: Option<&str>,
    env: &Env,
    clowder: Option<&Clowder>,
) -> Option<KafkaSettings> {
    let brokers = explicit
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .map(str::to_owned)
        .or_else(|| clowder.and_then(Clowder::kafka_servers))
        .or_else(|| {
            let port = env.get("QUEUE_PORT")?;
            Some(format!(
                "{}:{port}",
                env.get("QUEUE_HOST").unwrap_or("localhost")
            ))
        })
        .or_else(|| {
            let host = env.get("INSIGHTS_KAFKA_HOST")?;
            Some(format!(
                "{host}:{}",
                env.get("INSIGHTS_KAFKA_PORT").unwrap_or("29092")
            ))
        })?;
    let broker = clowder
        .and_then(|c| c.kafka.as_ref())
        .and_then(|k| k.brokers.first());
    let sasl = broker.and_then(|b| b.sasl.as_ref());
    let owned = |v: Option<&str>| v.map(str::to_owned);
    let sasl_mechanism = owned(env.get("KAFKA_SASL_MECHANISM"))
        .or_else(|| sasl.and_then(|s| s.sasl_mechanism.clone()));
    let ca_location = owned(env.get("KAFKA_SSL_CA_LOCATION"));
    let ca_pem = broker
        .and_then(|b| b.cacert.clone())
        .filter(|c| !c.is_empty());
    let security_protocol = owned(env.get("KAFKA_SECURITY_PROTOCOL"))
        .or_else(|| broker.and_then(|b| b.security_protocol.clone()))
        .or_else(|| sasl.and_then(|s| s.security_protocol.clone()))
        // Koku's default once a SASL mechanism is named; TLS alone once a CA is given.
        .or_else(|| sasl_mechanism.as_ref().map(|_| "SASL_SSL".to_owned()))
        .or_else(|| (ca_location.is_some() || ca_pem.is_some()).then(|| "SSL".to_owned()));
    Some(KafkaSettings {
        brokers,
        security_protocol,
        sasl_username: owned(env.get("KAFKA_SASL_USERNAME"))
            .or_else(|| sasl.and_then(|s| s.username.clone())),
        sasl_password: owned(env.get("KAFKA_SASL_PASSWORD"))
            .or_else(|| sasl.and_then(|s| s.password.clone())),
        sasl_mechanism,
        ca_location,
        ca_pem,
        topics: clowder
            .and_then(|c| c.kafka.as_ref())
            .map(|k| {
                k.topics
                    .iter()
                    .map(|t| (t.requested_name.clone(), t.name.clone()))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().copied().collect()
    }

    #[test]
    fn brokers_by_precedence_and_none_for_the_embedded_log() {
        let all = env(&[
            ("QUEUE_HOST", "q.svc"),
            ("QUEUE_PORT", "29092"),
            ("INSIGHTS_KAFKA_HOST", "k.svc"),
            ("INSIGHTS_KAFKA_PORT", "9092"),
        ]);
        assert_eq!(resolve(Some("a:1"), &all, None).unwrap().brokers, "a:1");
        assert_eq!(resolve(None, &all, None).unwrap().brokers, "q.svc:29092");
        let koku = env(&[
            ("INSIGHTS_KAFKA_HOST", "k.svc"),
            ("INSIGHTS_KAFKA_PORT", "9092"),
        ]);
        assert_eq!(resolve(None, &koku, None).unwrap().brokers, "k.svc:9092");
        // sources-api-go only configures brokers when QUEUE_PORT is set.
        assert!(resolve(None, &env(&[("QUEUE_HOST", "q")]), None).is_none());
        assert!(resolve(None, &Env::default(), None).is_none());
    }

    #[test]
    fn sasl_from_kokus_variables_defaults_to_sasl_ssl() {
        let settings = resolve(
            Some("k:9093"),
            &env(&[
                ("KAFKA_SASL_MECHANISM", "scram-sha-512"),
                ("KAFKA_SASL_USERNAME", "u"),
                ("KAFKA_SASL_PASSWORD", "secret"),
                ("KAFKA_SSL_CA_LOCATION", "/ca.pem"),
            ]),
            None,
        )
        .unwrap();
        let props: BTreeMap<_, _> = settings.client_properties().into_iter().collect();
        assert_eq!(props["security.protocol"], "sasl_ssl");
        assert_eq!(props["sasl.mechanism"], "SCRAM-SHA-512");
        assert_eq!(props["ssl.ca.location"], "/ca.pem");
        assert!(
            !format!("{settings:?}").contains("secret"),
            "the password stays out of logs"
        );
    }

    #[test]
    fn clowder_brokers_sasl_ca_and_topic_names() {
        let clowder: Clowder = serde_json::from_str(
            r#"{"kafka": {"brokers": [{"hostname": "b", "port": 9093, "authtype": "sasl",
                "cacert": "PEM", "sasl": {"username": "u", "password": "p",
                "saslMechanism": "PLAIN", "securityProtocol": "SASL_SSL"}}],
                "topics": [{"requestedName": "platform.sources.event-stream", "name": "renamed"}]}}"#,
        )
        .unwrap();
        let settings = resolve(None, &Env::default(), Some(&clowder)).unwrap();
        assert_eq!(settings.brokers, "b:9093");
        assert_eq!(settings.topic("platform.sources.event-stream"), "renamed");
        assert_eq!(
            settings.topic("platform.sources.status"),
            "platform.sources.status"
        );
        let props: BTreeMap<_, _> = settings.client_properties().into_iter().collect();
        assert_eq!(props["ssl.ca.pem"], "PEM");
        assert_eq!(props["sasl.username"], "u");
        assert_eq!(props["security.protocol"], "sasl_ssl");
    }
}
