//! Message queues on a shared RabbitMQ (`queue` with engine `rabbitmq`), through its
//! management HTTP API: a virtual host per deployment, and a user of the same name with every
//! permission there and none elsewhere (tagged `management`, so the team sees its own vhost in
//! the UI); the vhost's `max-connections` from the size. The password is sent as RabbitMQ's
//! salted SHA-256 hash, never in clear.

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use ring::rand::SecureRandom as _;
use serde_json::{Value, json};

use super::{Credentials, DriverError, Names};
use crate::{
    config::SharedTarget,
    domain::drift::{Observed, Usage},
};

#[derive(Debug, Clone)]
pub struct SharedRabbitMq {
    http: reqwest::Client,
    api: reqwest::Url,
    user: String,
    password: String,
    host: String,
    port: u16,
}

impl SharedRabbitMq {
    /// `target.admin_url`: the management API with an administrator's credentials
    /// (`http://user:password@host:15672`); clients are told AMQP on `amqp_port`.
    pub fn new(target: &SharedTarget, amqp_port: u16) -> anyhow::Result<Self> {
        let mut api = reqwest::Url::parse(target.admin_url.expose())?;
        let user = api.username().to_owned();
        let password = api.password().unwrap_or_default().to_owned();
        let _ = api.set_username("");
        let _ = api.set_password(None);
        let host = api.host_str().unwrap_or("localhost").to_owned();
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()?,
            api,
            user,
            password,
            host: target.host.clone().unwrap_or(host),
            port: amqp_port,
        })
    }

    pub fn endpoint(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    /// One management API call; `None` for a 404.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Option<Value>, DriverError> {
        let url = self
            .api
            .join(path)
            .map_err(|e| DriverError::Refused(e.to_string()))?;
        let mut request = self
            .http
            .request(method, url)
            .basic_auth(&self.user, Some(&self.password));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(DriverError::unreachable)?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let text = response.text().await.map_err(DriverError::unreachable)?;
        if status.is_server_error() {
            return Err(DriverError::Transient(format!(
                "RabbitMQ answered {status}: {text}"
            )));
        }
        if !status.is_success() {
            return Err(DriverError::Refused(format!(
                "RabbitMQ answered {status}: {text}"
            )));
        }
        Ok(Some(serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// The server's version (`3.10.8`).
    pub async fn version(&self) -> Result<String, DriverError> {
        let overview = self
            .call(Method::GET, "api/overview", None)
            .await?
            .unwrap_or_default();
        overview["rabbitmq_version"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| DriverError::Transient("the overview names no rabbitmq_version".into()))
    }

    /// Creates or corrects the vhost, its limit, the user and its permissions.
    pub async fn apply(
        &self,
        names: &Names,
        credentials: &Credentials,
        connection_limit: i32,
    ) -> Result<(), DriverError> {
        let name = &names.object;
        self.call(Method::PUT, &format!("api/vhosts/{name}"), Some(json!({})))
            .await?;
        self.call(
            Method::PUT,
            &format!("api/vhost-limits/{name}/max-connections"),
            Some(json!({"value": connection_limit})),
        )
        .await?;
        self.call(
            Method::PUT,
            &format!("api/users/{name}"),
            Some(json!({
                "password_hash": password_hash(&credentials.password),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": "management",
            })),
        )
        .await?;
        self.call(
            Method::PUT,
            &format!("api/permissions/{name}/{name}"),
            Some(json!({"configure": ".*", "write": ".*", "read": ".*"})),
        )
        .await?;
        Ok(())
    }

    pub async fn observe(&self, names: &Names) -> Result<Observed, DriverError> {
        let name = &names.object;
        let vhost = self
            .call(Method::GET, &format!("api/vhosts/{name}"), None)
            .await?;
        let user = self
            .call(Method::GET, &format!("api/users/{name}"), None)
            .await?;
        let permissions = self
            .call(Method::GET, &format!("api/permissions/{name}/{name}"), None)
            .await?;
        let limits = self
            .call(Method::GET, &format!("api/vhost-limits/{name}"), None)
            .await?
            .unwrap_or_default();
        let limit = limits[0]["value"]["max-connections"]
            .as_i64()
            .and_then(|l| i32::try_from(l).ok());
        Ok(Observed {
            parts: vec![
                (format!("vhost {name}"), vhost.is_some()),
                (format!("user {name}"), user.is_some()),
                (
                    format!("permissions of user {name} on vhost {name}"),
                    permissions.is_some(),
                ),
            ],
            version: Some(self.version().await?),
            replicas: Some(1),
            connection_limit: vhost.is_some().then_some(limit.unwrap_or(-1)),
            usage: Usage {
                replicas: Some(1),
                ..Usage::default()
            },
            ..Observed::default()
        })
    }

    /// Deletes the vhost (its queues with it) and the user; what is gone is fine.
    pub async fn delete(&self, names: &Names) -> Result<(), DriverError> {
        let name = &names.object;
        self.call(Method::DELETE, &format!("api/vhosts/{name}"), None)
            .await?;
        self.call(Method::DELETE, &format!("api/users/{name}"), None)
            .await?;
        Ok(())
    }
}

/// RabbitMQ's `rabbit_password_hashing_sha256`: base64 of a 4-byte salt followed by
/// SHA-256(salt ++ password).
pub fn password_hash(password: &str) -> String {
    let mut salt = [0u8; 4];
    ring::rand::SystemRandom::new()
        .fill(&mut salt)
        .expect("the system's randomness is available");
    password_hash_with(password, salt)
}

pub fn password_hash_with(password: &str, salt: [u8; 4]) -> String {
    let mut input = salt.to_vec();
    input.extend_from_slice(password.as_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA256, &input);
    let mut out = salt.to_vec();
    out.extend_from_slice(digest.as_ref());
    base64::engine::general_purpose::STANDARD.encode(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of RabbitMQ's passwords guide: salt 908D C60A and password "test12".
    #[test]
    fn the_hash_is_rabbitmqs() {
        assert_eq!(
            password_hash_with("test12", [0x90, 0x8D, 0xC6, 0x0A]),
            "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"
        );
    }
}
