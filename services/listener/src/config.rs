use std::time::Duration;

use keel_service::{CommonArgs, CommonConfig, Env, Listen, ListenArgs, config::Secret};

/// Provider operations run at the same time when LISTENER_WORKERS is unset.
pub const DEFAULT_WORKERS: usize = 64;

/// Spare tenant schemas kept cloned when LISTENER_SPARE_TENANTS is unset.
pub const DEFAULT_SPARE_TENANTS: usize = 3;

/// The read API's port when PORT is unset.
pub const DEFAULT_PORT: u16 = 8001;

pub const EVENT_STREAM_TOPIC: &str = keel_domain::sources_events::EVENT_STREAM_TOPIC;

/// The key Koku's listener sends when SOURCES_PSK is unset.
const KOKU_DEFAULT_PSK: &str = "sources-psk";

/// Where sources-api is when nothing names it.
const DEFAULT_SOURCES_API_URL: &str = "http://127.0.0.1:8000";

/// The `listener` binary's flags: the common ones and the listener's own.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    version,
    about = "Turns Platform Sources events into cost-management providers."
)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub listener: ListenerArgs,
}

/// How the listener reaches sources-api and works its queue; every flag can also be set by
/// the environment variable named.
#[derive(Debug, Clone, clap::Args)]
pub struct ListenerArgs {
    /// sources-api's address. Unset: Clowder's `sources-api` endpoint, else Koku's
    /// SOURCES_API_SVC_PROTOCOL/HOST/PORT (port 3000 when only the host is given, as Koku),
    /// else http://127.0.0.1:8000.
    #[arg(long, env = "SOURCES_API_URL")]
    pub sources_api_url: Option<String>,
    /// Path of the public Sources API (Koku's default works with sources-api-go).
    #[arg(long, env = "SOURCES_API_PREFIX", default_value = "/api/sources/v1.0")]
    pub sources_api_prefix: String,
    /// Path of the internal Sources API (where credentials are read).
    #[arg(
        long,
        env = "SOURCES_INTERNAL_API_PREFIX",
        default_value = "/internal/v1.0"
    )]
    pub sources_internal_api_prefix: String,
    /// Pre-shared key sent as `x-rh-sources-psk`. Unset: Koku's default `sources-psk` for the
    /// `listener` binary; under `keel up`, a key made for the run that its sources-api accepts.
    #[arg(long, env = "SOURCES_PSK", hide_env_values = true)]
    pub sources_psk: Option<Secret>,
    /// Seconds one sources-api call may take.
    #[arg(long, env = "SOURCES_API_TIMEOUT", default_value_t = 10)]
    pub sources_api_timeout: u64,
    /// Consumer group on the event stream.
    #[arg(long, env = "SOURCES_CONSUMER_GROUP", default_value = "hccm-sources")]
    pub consumer_group: String,
    /// Appended to org ids (Koku's SCHEMA_SUFFIX).
    #[arg(long, env = "SCHEMA_SUFFIX", default_value = "")]
    pub schema_suffix: String,
    /// Provider operations run at the same time.
    #[arg(long, env = "LISTENER_WORKERS", default_value_t = DEFAULT_WORKERS)]
    pub workers: usize,
    /// Tenant schemas cloned ahead of time, so the first source of a new org does not wait
    /// for a clone (0: clone when needed).
    #[arg(long, env = "LISTENER_SPARE_TENANTS", default_value_t = DEFAULT_SPARE_TENANTS)]
    pub spare_tenants: usize,
    /// Failures that will not heal before an operation is parked; sources-api or database
    /// outages only delay it.
    #[arg(long, env = "LISTENER_MAX_ATTEMPTS", default_value_t = 12)]
    pub max_attempts: i32,
    /// First retry delay in milliseconds; doubles up to LISTENER_RETRY_MAX_SECONDS.
    #[arg(long, env = "LISTENER_RETRY_BASE_MS", default_value_t = 1000)]
    pub retry_base_ms: u64,
    /// Longest retry delay in seconds.
    #[arg(long, env = "LISTENER_RETRY_MAX_SECONDS", default_value_t = 300)]
    pub retry_max_seconds: u64,
}

/// The key that seals stored credentials.
#[derive(Debug, Clone)]
pub enum CredentialKey {
    /// `ENCRYPTION_KEY`.
    Key(Secret),
    /// Derived from Koku's `DJANGO_SECRET_KEY`, the secret a Koku deployment gives its
    /// listener (Koku's own listener needs no key of its own).
    DerivedFrom(Secret),
}

/// Listener configuration, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub listen: Listen,
    /// sources-api's address, `http://host:port`.
    pub sources_api_url: String,
    pub sources_api_prefix: String,
    pub sources_internal_api_prefix: String,
    /// Sent as `x-rh-sources-psk` on every call.
    pub sources_psk: Option<Secret>,
    pub sources_api_timeout: Duration,
    pub topic: String,
    pub consumer_group: String,
    /// Koku's `SCHEMA_SUFFIX`, appended to org ids.
    pub schema_suffix: String,
    /// Operations run at the same time.
    pub workers: usize,
    /// Spare tenant schemas kept cloned.
    pub spare_tenants: usize,
    pub max_attempts: i32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub lease: Duration,
    /// `None` until a key is set: the listener refuses to start without one.
    pub credential_key: Option<CredentialKey>,
}

impl Args {
    /// The standalone binary's configuration: flags, then the environment's aliases.
    pub fn resolve(self, env: &Env) -> anyhow::Result<Config> {
        let common = self.common.resolve(env)?;
        let listen = self.listen.resolve(DEFAULT_PORT, &common);
        let mut config = self.listener.into_config(common, listen, env);
        config
            .sources_psk
            .get_or_insert_with(|| Secret::new(KOKU_DEFAULT_PSK));
        Ok(config)
    }
}

impl ListenerArgs {
    pub fn into_config(self, common: CommonConfig, listen: Listen, env: &Env) -> Config {
        let sanitized: String = self
            .schema_suffix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let sources_api_url = self
            .sources_api_url
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| sources_api_url(env, &common));
        let credential_key = match (&common.encryption_key, env.get("DJANGO_SECRET_KEY")) {
            (Some(key), _) => Some(CredentialKey::Key(key.clone())),
            (None, Some(django)) => Some(CredentialKey::DerivedFrom(Secret::new(django))),
            (None, None) => None,
        };
        Config {
            common,
            listen,
            sources_api_url: sources_api_url.trim_end_matches('/').to_owned(),
            sources_api_prefix: self.sources_api_prefix,
            sources_internal_api_prefix: self.sources_internal_api_prefix,
            sources_psk: self.sources_psk.filter(|p| !p.expose().is_empty()),
            sources_api_timeout: Duration::from_secs(self.sources_api_timeout),
            topic: EVENT_STREAM_TOPIC.to_owned(),
            consumer_group: self.consumer_group,
            schema_suffix: sanitized,
            workers: self.workers.max(1),
            spare_tenants: self.spare_tenants,
            max_attempts: self.max_attempts.max(1),
            retry_base: Duration::from_millis(self.retry_base_ms),
            retry_max: Duration::from_secs(self.retry_max_seconds),
            lease: Duration::from_secs(60),
            credential_key,
        }
    }
}

/// sources-api's address as Koku finds it: Clowder's endpoint, else
/// `SOURCES_API_SVC_{PROTOCOL,HOST,PORT}` (or `SOURCES_API_SVC_URL`), else Keel's default.
fn sources_api_url(env: &Env, common: &CommonConfig) -> String {
    if let Some(url) = common
        .clowder
        .as_ref()
        .and_then(|c| c.endpoint_url("sources-api", "svc"))
    {
        return url;
    }
    if let Some(url) = env.get("SOURCES_API_SVC_URL") {
        return url.to_owned();
    }
    match env.get("SOURCES_API_SVC_HOST") {
        Some(host) => format!(
            "{}://{host}:{}",
            env.get("SOURCES_API_SVC_PROTOCOL").unwrap_or("http"),
            env.get("SOURCES_API_SVC_PORT").unwrap_or("3000")
        ),
        None => DEFAULT_SOURCES_API_URL.to_owned(),
    }
}

impl Config {
    /// Defaults for tests: loopback, port 0, fast retries.
    pub fn for_database(
        database_url: impl Into<String>,
        sources_api_url: impl Into<String>,
    ) -> Self {
        let mut common = CommonConfig::for_database(database_url);
        common.database_max_connections = 10;
        Self {
            common,
            listen: Listen::ephemeral(),
            sources_api_url: sources_api_url.into(),
            sources_api_prefix: "/api/sources/v1.0".to_owned(),
            sources_internal_api_prefix: "/internal/v1.0".to_owned(),
            sources_psk: None,
            sources_api_timeout: Duration::from_secs(5),
            topic: EVENT_STREAM_TOPIC.to_owned(),
            consumer_group: "hccm-sources".to_owned(),
            schema_suffix: String::new(),
            workers: 4,
            spare_tenants: 1,
            max_attempts: 10,
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(2),
            lease: Duration::from_secs(30),
            credential_key: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(pairs: &[(&str, &str)]) -> Config {
        let env: Env = pairs.iter().copied().collect();
        let args = <Args as clap::Parser>::parse_from(["listener"]);
        let mut args = args;
        // The test sets what clap would have read from the process environment.
        args.listener.sources_api_url = None;
        args.resolve(&env).unwrap()
    }

    #[test]
    fn sources_api_from_kokus_service_variables() {
        let c = resolved(&[
            ("SOURCES_API_SVC_HOST", "sources.ns.svc"),
            ("SOURCES_API_SVC_PORT", "8000"),
        ]);
        assert_eq!(c.sources_api_url, "http://sources.ns.svc:8000");
        let c = resolved(&[
            ("SOURCES_API_SVC_HOST", "s"),
            ("SOURCES_API_SVC_PROTOCOL", "https"),
        ]);
        assert_eq!(c.sources_api_url, "https://s:3000");
        assert_eq!(resolved(&[]).sources_api_url, DEFAULT_SOURCES_API_URL);
    }

    #[test]
    fn credentials_key_from_encryption_key_or_djangos_secret() {
        assert!(resolved(&[]).credential_key.is_none());
        let c = resolved(&[("DJANGO_SECRET_KEY", "abc")]);
        assert!(matches!(
            c.credential_key,
            Some(CredentialKey::DerivedFrom(_))
        ));
        assert!(
            !format!("{c:?}").contains("abc"),
            "secrets stay out of Debug"
        );
    }
}
