//! Streams on a NATS server with JetStream (`queue` with engine `nats`): a stream named after
//! the deployment capturing the subjects `<name>.>`, kept for the spec's `retention` and up to
//! the size's byte limit, on file storage. NATS users live in the server's configuration, so
//! clients get the server's address, the stream and its subjects, and authenticate as the
//! server has them. The connection is made on first use and kept (the client reconnects).

use std::time::Duration;

use async_nats::jetstream::{
    self, ErrorCode,
    stream::{Config, StorageType},
};
use tokio::sync::OnceCell;

use super::{DriverError, Names};
use crate::{
    config::SharedTarget,
    domain::{
        drift::{Observed, Usage},
        spec::{Size, Spec, parse_duration},
    },
};

#[derive(Debug, Clone)]
pub struct NatsStreams {
    url: String,
    host: String,
    port: u16,
    client: std::sync::Arc<OnceCell<async_nats::Client>>,
}

/// Bytes a stream may hold, by size: 256 MiB, 1 GiB, 4 GiB, 16 GiB.
pub fn max_bytes(size: Size) -> i64 {
    const MIB: i64 = 1 << 20;
    match size {
        Size::Small => 256 * MIB,
        Size::Medium => 1024 * MIB,
        Size::Large => 4096 * MIB,
        Size::Xlarge => 16384 * MIB,
    }
}

impl NatsStreams {
    pub fn new(target: &SharedTarget) -> anyhow::Result<Self> {
        let url = target.admin_url.expose().to_owned();
        let parsed = reqwest::Url::parse(&url)?;
        let host = parsed.host_str().unwrap_or("localhost").to_owned();
        let port = parsed.port().unwrap_or(4222);
        Ok(Self {
            url,
            host: target.host.clone().unwrap_or(host),
            port,
            client: std::sync::Arc::default(),
        })
    }

    pub fn endpoint(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    /// The subjects a deployment's stream captures.
    pub fn subjects(names: &Names) -> String {
        format!("{}.>", names.object)
    }

    async fn client(&self) -> Result<&async_nats::Client, DriverError> {
        self.client
            .get_or_try_init(|| async {
                async_nats::ConnectOptions::new()
                    .connection_timeout(Duration::from_secs(5))
                    .connect(self.url.as_str())
                    .await
            })
            .await
            .map_err(DriverError::unreachable)
    }

    async fn jetstream(&self) -> Result<jetstream::Context, DriverError> {
        Ok(jetstream::new(self.client().await?.clone()))
    }

    /// The server's version (`2.9.15`).
    pub async fn version(&self) -> Result<String, DriverError> {
        let client = self.client().await?;
        // A round trip, so a server that went away is noticed.
        client.flush().await.map_err(DriverError::unreachable)?;
        Ok(client.server_info().version)
    }

    fn config(names: &Names, spec: &Spec) -> Config {
        Config {
            name: names.object.clone(),
            subjects: vec![Self::subjects(names)],
            max_age: spec
                .retention
                .as_deref()
                .and_then(parse_duration)
                .map(Duration::from_secs)
                .unwrap_or_default(),
            max_bytes: max_bytes(spec.size),
            storage: StorageType::File,
            num_replicas: 1,
            ..Config::default()
        }
    }

    /// Creates the stream, or sets its configuration back to the desired one.
    pub async fn apply(&self, names: &Names, spec: &Spec) -> Result<(), DriverError> {
        let js = self.jetstream().await?;
        let config = Self::config(names, spec);
        let stream = js
            .get_or_create_stream(config.clone())
            .await
            .map_err(|e| DriverError::Refused(e.to_string()))?;
        if stream.cached_info().config != config {
            js.update_stream(&config)
                .await
                .map_err(|e| DriverError::Refused(e.to_string()))?;
        }
        Ok(())
    }

    pub async fn observe(&self, names: &Names) -> Result<Observed, DriverError> {
        let js = self.jetstream().await?;
        let (exists, subjects_kept, bytes) = match js.get_stream(&names.object).await {
            Ok(stream) => {
                let info = stream.cached_info();
                (
                    true,
                    info.config.subjects == [Self::subjects(names)],
                    info.state.bytes,
                )
            }
            Err(e) if not_found(&e) => (false, false, 0),
            Err(e) => return Err(DriverError::unreachable(e)),
        };
        let object = &names.object;
        Ok(Observed {
            parts: vec![
                (format!("stream {object}"), exists),
                (
                    format!("subjects {} of stream {object}", Self::subjects(names)),
                    subjects_kept,
                ),
            ],
            version: Some(self.version().await?),
            replicas: Some(1),
            usage: Usage {
                storage_usage: Some(super::human_bytes(i64::try_from(bytes).unwrap_or(i64::MAX))),
                replicas: Some(1),
                ..Usage::default()
            },
            ..Observed::default()
        })
    }

    pub async fn delete(&self, names: &Names) -> Result<(), DriverError> {
        match self.jetstream().await?.delete_stream(&names.object).await {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(DriverError::unreachable(e)),
        }
    }
}

fn not_found(e: &jetstream::context::GetStreamError) -> bool {
    matches!(
        e.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND
    )
}
