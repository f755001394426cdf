//! Caches on a shared Redis server: an ACL user per deployment, allowed only the keys and
//! channels under its prefix (`<name>:`), with every command but the administrative and
//! dangerous ones. The password is set as its SHA-256 (`#<hex>`), so it never crosses the
//! wire in clear. Deleting removes the user and every key under the prefix.

use std::collections::HashMap;

use redis::{AsyncCommands as _, Value, aio::MultiplexedConnection};
use sha2::Digest as _;

use super::{Credentials, DriverError, Names};
use crate::{
    config::SharedTarget,
    domain::drift::{Observed, Usage},
};

#[derive(Debug, Clone)]
pub struct SharedRedis {
    client: redis::Client,
    host: String,
    port: u16,
}

/// Keys deleted per round trip when a cache goes.
const UNLINK_BATCH: usize = 500;

impl SharedRedis {
    pub fn new(target: &SharedTarget) -> anyhow::Result<Self> {
        let client = redis::Client::open(target.admin_url.expose())?;
        let info = client.get_connection_info();
        let (host, port) = match info.addr() {
            redis::ConnectionAddr::Tcp(h, p)
            | redis::ConnectionAddr::TcpTls {
                host: h, port: p, ..
            } => (h.clone(), *p),
            _ => ("localhost".to_owned(), 6379),
        };
        Ok(Self {
            client,
            host: target.host.clone().unwrap_or(host),
            port,
        })
    }

    pub fn endpoint(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    async fn connection(&self) -> Result<MultiplexedConnection, DriverError> {
        self.client
            .get_multiplexed_async_connection()
            .await
            .map_err(DriverError::unreachable)
    }

    /// The key prefix of a deployment's user.
    pub fn prefix(names: &Names) -> String {
        format!("{}:", names.object)
    }

    /// The server's version (`7.0.15`).
    pub async fn version(&self) -> Result<String, DriverError> {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut self.connection().await?)
            .await
            .map_err(DriverError::from_redis)?;
        info.lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .map(|v| v.trim().to_owned())
            .ok_or_else(|| DriverError::Transient("INFO server names no redis_version".into()))
    }

    /// Sets the user as desired: `reset` first, so whatever was changed behind the broker's
    /// back is put back.
    pub async fn apply(&self, names: &Names, credentials: &Credentials) -> Result<(), DriverError> {
        let prefix = Self::prefix(names);
        let hash = hex(&sha2::Sha256::digest(credentials.password.as_bytes()));
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&names.object)
            .arg("reset")
            .arg("on")
            .arg(format!("#{hash}"))
            .arg(format!("~{prefix}*"))
            .arg(format!("&{prefix}*"))
            .arg("+@all")
            .arg("-@admin")
            .arg("-@dangerous")
            .query_async::<()>(&mut self.connection().await?)
            .await
            .map_err(DriverError::from_redis)
    }

    /// The user, whether it may log in, and whether its keys are still limited to its prefix.
    pub async fn observe(&self, names: &Names) -> Result<Observed, DriverError> {
        let mut conn = self.connection().await?;
        let user: Option<HashMap<String, Value>> = redis::cmd("ACL")
            .arg("GETUSER")
            .arg(&names.object)
            .query_async(&mut conn)
            .await
            .map_err(DriverError::from_redis)?;
        let prefix = Self::prefix(names);
        let flags: Vec<String> = user
            .as_ref()
            .and_then(|u| u.get("flags"))
            .and_then(|v| redis::from_redis_value(v.clone()).ok())
            .unwrap_or_default();
        let keys: String = user
            .as_ref()
            .and_then(|u| u.get("keys"))
            .and_then(|v| redis::from_redis_value(v.clone()).ok())
            .unwrap_or_default();
        let user_name = &names.object;
        Ok(Observed {
            parts: vec![
                (format!("user {user_name}"), user.is_some()),
                (
                    format!("login of user {user_name}"),
                    flags.iter().any(|f| f == "on"),
                ),
                (
                    format!("access of user {user_name} to keys {prefix}*"),
                    keys == format!("~{prefix}*"),
                ),
            ],
            version: Some(self.version().await?),
            replicas: Some(1),
            usage: Usage {
                replicas: Some(1),
                ..Usage::default()
            },
            ..Observed::default()
        })
    }

    /// Removes the user, then every key under its prefix.
    pub async fn delete(&self, names: &Names) -> Result<(), DriverError> {
        let mut conn = self.connection().await?;
        redis::cmd("ACL")
            .arg("DELUSER")
            .arg(&names.object)
            .query_async::<()>(&mut conn)
            .await
            .map_err(DriverError::from_redis)?;
        let pattern = format!("{}*", Self::prefix(names));
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(UNLINK_BATCH)
                .query_async(&mut conn)
                .await
                .map_err(DriverError::from_redis)?;
            if !keys.is_empty() {
                conn.unlink::<_, ()>(keys)
                    .await
                    .map_err(DriverError::from_redis)?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
