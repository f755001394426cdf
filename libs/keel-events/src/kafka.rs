use std::time::Duration;

use anyhow::Context as _;
use keel_service::KafkaSettings;
use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{
        BaseConsumer, Consumer as _, ConsumerContext, DefaultConsumerContext, StreamConsumer,
    },
    error::{KafkaError, RDKafkaErrorCode},
    message::{Header, OwnedHeaders},
    producer::{DeliveryFuture, FutureProducer, FutureRecord},
};

/// A client configuration for `kafka`: brokers, security protocol, SASL, CA.
pub fn client_config(kafka: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in kafka.client_properties() {
        config.set(key, value);
    }
    config
}

/// A producer that waits for every in-sync replica (`acks=all`) and keeps order within a
/// partition across retries (one request in flight per connection).
pub fn producer(kafka: &KafkaSettings) -> anyhow::Result<FutureProducer> {
    client_config(kafka)
        .set("acks", "all")
        .set(
            "message.max.bytes",
            crate::outbox::MAX_MESSAGE_BYTES.to_string(),
        )
        .set("max.in.flight.requests.per.connection", "1")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000")
        .set("message.timeout.ms", "30000")
        // A request the broker never answers is sent again after 5 s, well within the 30 s a
        // message may take, instead of once per message timeout.
        .set("request.timeout.ms", "5000")
        .set("socket.connection.setup.timeout.ms", "5000")
        .create()
        .context("creating the Kafka producer")
}

/// Hands one message to the producer (it batches per partition); the future resolves when the
/// broker acknowledged it or the producer gave up.
pub fn send(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    headers: &[[String; 2]],
    payload: &str,
) -> Result<DeliveryFuture, KafkaError> {
    let headers = headers.iter().fold(OwnedHeaders::new(), |h, [k, v]| {
        h.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        })
    });
    let record = FutureRecord::to(topic)
        .key(key.as_bytes())
        .payload(payload.as_bytes())
        .headers(headers);
    producer.send_result(record).map_err(|(e, _)| e)
}

/// Why Kafka will never take this message, when that is what `error` says (too large, an
/// invalid record or topic name): sending it again cannot succeed. `None` for everything
/// that may heal (the broker away, a full queue, a timeout).
pub fn refused_for_good(error: &KafkaError) -> Option<String> {
    use RDKafkaErrorCode as Code;
    let code = error.rdkafka_error_code()?;
    matches!(
        code,
        Code::MessageSizeTooLarge
            | Code::InvalidMessageSize
            | Code::InvalidRecord
            | Code::InvalidTopic
    )
    .then(|| format!("Kafka refuses the message: {error}"))
}

/// A group member that commits by hand; a new group starts from the earliest offset so
/// nothing published before it joined is missed.
pub fn consumer(kafka: &KafkaSettings, group: &str) -> anyhow::Result<StreamConsumer> {
    consumer_with(kafka, group, DefaultConsumerContext)
}

/// The same member, with `context` told of rebalances.
pub fn consumer_with<C: ConsumerContext + 'static>(
    kafka: &KafkaSettings,
    group: &str,
    context: C,
) -> anyhow::Result<StreamConsumer<C>> {
    client_config(kafka)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        // A broker that holds a fetch until its wait expires (instead of answering when the
        // first byte arrives) would otherwise add up to librdkafka's default 500 ms.
        .set("fetch.wait.max.ms", "20")
        // What the client fetches ahead of the handler stays small (librdkafka's defaults
        // keep 100,000 messages or 64 MB per member); a busy partition's workers also pause it.
        .set("queued.min.messages", "1000")
        .set("queued.max.messages.kbytes", "16384")
        .create_with_context(context)
        .context("creating the Kafka consumer")
}

/// Whether the brokers answer a metadata request for `topic` within `timeout`, and how many
/// partitions it has: for readiness checks.
pub async fn ping(kafka: &KafkaSettings, topic: &str, timeout: Duration) -> anyhow::Result<usize> {
    let consumer: BaseConsumer = client_config(kafka)
        .create()
        .context("creating a Kafka client")?;
    let topic = kafka.topic(topic).to_owned();
    tokio::task::spawn_blocking(move || {
        let metadata = consumer
            .fetch_metadata(Some(&topic), timeout)
            .context("Kafka did not answer")?;
        let partitions = metadata
            .topics()
            .first()
            .map_or(0, |t| t.partitions().len());
        anyhow::ensure!(partitions > 0, "topic {topic} has no partitions");
        Ok(partitions)
    })
    .await?
}

/// Creates the topics that are missing (the test broker never auto-creates them), under their
/// names on this cluster.
pub async fn ensure_topics(
    kafka: &KafkaSettings,
    topics: &[&str],
    partitions: i32,
    replication: i32,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(kafka)
        .create()
        .context("creating the Kafka admin client")?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            NewTopic::new(
                kafka.topic(t),
                partitions,
                TopicReplication::Fixed(replication),
            )
        })
        .collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(5)));
    // A broker that never answers must not hold the caller forever: callers retry.
    let created =
        tokio::time::timeout(Duration::from_secs(15), admin.create_topics(&new, &options))
            .await
            .map_err(|_| anyhow::anyhow!("creating topics timed out"))??;
    for result in created {
        match result {
            Ok(topic) => tracing::info!(%topic, partitions, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("creating topic {topic}: {code}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secured(ca_location: Option<String>) -> KafkaSettings {
        KafkaSettings {
            brokers: "127.0.0.1:1".to_owned(),
            security_protocol: Some("SASL_SSL".to_owned()),
            sasl_mechanism: Some("SCRAM-SHA-512".to_owned()),
            sasl_username: Some("user".to_owned()),
            sasl_password: Some("secret".to_owned()),
            ca_location,
            ..KafkaSettings::default()
        }
    }

    /// librdkafka refuses `sasl_ssl` and SCRAM unless it was built with TLS; the CA file is
    /// read when the client is made. (Stream consumers spawn on the runtime, hence tokio.)
    #[tokio::test]
    async fn clients_speak_sasl_ssl_with_scram_and_read_the_ca_file() {
        let ca = std::env::temp_dir().join(format!("keel-kafka-ca-{}.pem", std::process::id()));
        let made = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=Kafka test CA", "-keyout", "/dev/null", "-out"])
            .arg(&ca)
            .output()
            .expect("openssl makes a CA");
        assert!(made.status.success());
        let with_ca = secured(Some(ca.to_string_lossy().into_owned()));
        assert!(
            producer(&with_ca).is_ok(),
            "SASL_SSL + SCRAM-SHA-512 with a CA file"
        );
        assert!(consumer(&with_ca, "g").is_ok());
        let plain = KafkaSettings {
            sasl_mechanism: Some("PLAIN".to_owned()),
            ..secured(None)
        };
        assert!(producer(&plain).is_ok(), "SASL PLAIN over TLS");
        let missing = secured(Some("/nonexistent/ca.pem".to_owned()));
        assert!(
            producer(&missing).is_err(),
            "a CA file that is not there is refused"
        );
        let _ = std::fs::remove_file(ca);
    }
}
