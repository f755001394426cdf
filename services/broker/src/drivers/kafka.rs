//! Topics on a Kafka cluster (`topic`, or `queue` with engine `kafka`): created through the
//! admin API with the spec's partitions and `retention.ms`, grown when more partitions are
//! asked for (Kafka cannot shrink them), deleted with the deployment. The cluster is reached
//! as Keel's event stream is (`KafkaSettings`: SASL, TLS); clients get its bootstrap servers
//! and the topic's name, no credentials of their own.

use std::{sync::Arc, time::Duration};

use keel_service::config::KafkaSettings;
use rdkafka::{
    admin::{
        AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier,
        TopicReplication,
    },
    client::DefaultClientContext,
    types::RDKafkaErrorCode,
};

use super::{DriverError, Names};
use crate::domain::{
    drift::{Observed, Usage},
    spec::{Spec, parse_duration},
};

#[derive(Clone)]
pub struct KafkaTopics {
    admin: Arc<AdminClient<DefaultClientContext>>,
    host: String,
    port: u16,
    replication: i32,
}

impl std::fmt::Debug for KafkaTopics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTopics")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

const TIMEOUT: Duration = Duration::from_secs(10);

impl KafkaTopics {
    pub fn new(settings: &KafkaSettings, replication: i32) -> anyhow::Result<Self> {
        let admin = keel_events::kafka::client_config(settings).create()?;
        let first = settings
            .brokers
            .split(',')
            .next()
            .unwrap_or_default()
            .trim();
        let (host, port) = first
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_owned(), p.parse().ok()?)))
            .unwrap_or_else(|| (first.to_owned(), 9092));
        Ok(Self {
            admin: Arc::new(admin),
            host,
            port,
            replication,
        })
    }

    pub fn endpoint(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    fn options() -> AdminOptions {
        AdminOptions::new()
            .operation_timeout(Some(TIMEOUT))
            .request_timeout(Some(TIMEOUT))
    }

    /// The topic's partitions, or `None` when the cluster has no such topic.
    async fn partitions(&self, topic: &str) -> Result<Option<usize>, DriverError> {
        let admin = self.admin.clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            let metadata = admin
                .inner()
                .fetch_metadata(Some(&topic), TIMEOUT)
                .map_err(DriverError::unreachable)?;
            Ok(metadata.topics().first().and_then(|t| match t.error() {
                None => Some(t.partitions().len()),
                Some(_) => None,
            }))
        })
        .await
        .map_err(DriverError::unreachable)?
    }

    /// The cluster answers (readiness). Kafka's protocol tells no release, so the catalogue's
    /// versions are accepted as asked.
    pub async fn ping(&self) -> Result<(), DriverError> {
        let admin = self.admin.clone();
        tokio::task::spawn_blocking(move || {
            admin
                .inner()
                .fetch_metadata(None, TIMEOUT)
                .map(|_| ())
                .map_err(DriverError::unreachable)
        })
        .await
        .map_err(DriverError::unreachable)?
    }

    /// Creates the topic, or grows its partitions and sets its retention.
    pub async fn apply(&self, names: &Names, spec: &Spec) -> Result<(), DriverError> {
        let topic = &names.object;
        let partitions = spec.partitions.unwrap_or(1);
        let retention_ms = spec
            .retention
            .as_deref()
            .and_then(parse_duration)
            .map(|s| (s * 1000).to_string());
        let want = i32::try_from(partitions).unwrap_or(i32::MAX);
        let mut new = NewTopic::new(topic, want, TopicReplication::Fixed(self.replication));
        if let Some(ms) = &retention_ms {
            new = new.set("retention.ms", ms);
        }
        let created = self
            .admin
            .create_topics(&[new], &Self::options())
            .await
            .map_err(DriverError::unreachable)?;
        match created.into_iter().next() {
            Some(Ok(_)) => return Ok(()),
            Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => {}
            Some(Err((_, code))) => return Err(refused_or_transient(code)),
            None => return Err(DriverError::Transient("no answer to CreateTopics".into())),
        }
        let have = self.partitions(topic).await?.unwrap_or(0);
        if have < partitions as usize {
            let grown = self
                .admin
                .create_partitions(
                    &[NewPartitions::new(topic, partitions as usize)],
                    &Self::options(),
                )
                .await
                .map_err(DriverError::unreachable)?;
            if let Some(Err((_, code))) = grown.into_iter().next() {
                return Err(refused_or_transient(code));
            }
        } else if have > partitions as usize {
            return Err(DriverError::Refused(format!(
                "topic {topic} has {have} partitions; Kafka cannot reduce them to {partitions}"
            )));
        }
        if let Some(ms) = &retention_ms {
            let config = AlterConfig::new(ResourceSpecifier::Topic(topic)).set("retention.ms", ms);
            let altered = self
                .admin
                .alter_configs(&[config], &Self::options())
                .await
                .map_err(DriverError::unreachable)?;
            if let Some(Err((_, code))) = altered.into_iter().next() {
                return Err(refused_or_transient(code));
            }
        }
        Ok(())
    }

    pub async fn observe(&self, names: &Names) -> Result<Observed, DriverError> {
        let partitions = self.partitions(&names.object).await?;
        Ok(Observed {
            parts: vec![(format!("topic {}", names.object), partitions.is_some())],
            partitions: partitions.and_then(|p| u32::try_from(p).ok()),
            usage: Usage::default(),
            ..Observed::default()
        })
    }

    pub async fn delete(&self, names: &Names) -> Result<(), DriverError> {
        let deleted = self
            .admin
            .delete_topics(&[names.object.as_str()], &Self::options())
            .await
            .map_err(DriverError::unreachable)?;
        match deleted.into_iter().next() {
            Some(Err((_, RDKafkaErrorCode::UnknownTopicOrPartition))) | Some(Ok(_)) | None => {
                Ok(())
            }
            Some(Err((_, code))) => Err(refused_or_transient(code)),
        }
    }
}

/// The cluster's answer: a refusal when asking again cannot help (bad settings, no
/// permission), else transient.
fn refused_or_transient(code: RDKafkaErrorCode) -> DriverError {
    use RDKafkaErrorCode::*;
    match code {
        InvalidPartitions
        | InvalidReplicationFactor
        | InvalidConfig
        | InvalidTopic
        | TopicAuthorizationFailed
        | ClusterAuthorizationFailed
        | PolicyViolation
        | InvalidRequest
        | UnsupportedVersion => DriverError::Refused(format!("Kafka: {code}")),
        _ => DriverError::Transient(format!("Kafka: {code}")),
    }
}
