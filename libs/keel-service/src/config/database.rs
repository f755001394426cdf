//! Where the database is: `DATABASE_URL`, else Clowder's database, else the originals'
//! variables. sources-api-go reads `DATABASE_HOST/PORT/USER/PASSWORD/NAME`; Koku reads the
//! same user, password and name, with the host and port of the Kubernetes service named by
//! `DATABASE_SERVICE_NAME` (`<NAME>_SERVICE_HOST` / `<NAME>_SERVICE_PORT`). libpq's own
//! `PGSSLMODE` and `PGSSLROOTCERT` apply unless the URL sets `sslmode` / `sslrootcert`.

use std::path::PathBuf;

use anyhow::Context as _;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::{Env, clowder::Clowder};

/// The database when nothing names one.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/keel";

struct Parts<'a> {
    host: &'a str,
    port: Option<u16>,
    user: Option<&'a str>,
    password: Option<&'a str>,
    name: &'a str,
    ssl_mode: Option<&'a str>,
    ssl_root_cert: Option<PathBuf>,
}

impl Parts<'_> {
    fn url(&self) -> String {
        let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
        let auth = match (self.user, self.password) {
            (Some(u), Some(p)) => format!("{}:{}@", enc(u), enc(p)),
            (Some(u), None) => format!("{}@", enc(u)),
            (None, Some(p)) => format!(":{}@", enc(p)),
            (None, None) => String::new(),
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.to_owned()
        };
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        let mut params = Vec::new();
        if let Some(mode) = self.ssl_mode {
            params.push(format!("sslmode={}", enc(mode)));
        }
        if let Some(cert) = &self.ssl_root_cert {
            params.push(format!("sslrootcert={}", enc(&cert.to_string_lossy())));
        }
        let query = if params.is_empty() {
            String::new()
        } else {
            format!("?{}", params.join("&"))
        };
        format!("postgres://{auth}{host}{port}/{}{query}", enc(self.name))
    }
}

/// The database URL, by precedence: `explicit` (`DATABASE_URL`), Clowder's database, the
/// originals' variables, [`DEFAULT_DATABASE_URL`].
pub fn resolve_url(
    explicit: Option<&str>,
    env: &Env,
    clowder: Option<&Clowder>,
) -> anyhow::Result<String> {
    if let Some(url) = explicit.filter(|u| !u.is_empty()) {
        return Ok(url.to_owned());
    }
    if let Some(db) = clowder.and_then(|c| c.database.as_ref()) {
        // app-common-go writes the CA to a file too; libpq and sqlx read it from a path.
        let ssl_root_cert = match db.rds_ca.as_deref().filter(|ca| !ca.is_empty()) {
            Some(ca) => Some(write_ca(ca)?),
            None => None,
        };
        return Ok(Parts {
            host: &db.hostname,
            port: Some(db.port),
            user: Some(&db.username)
                .filter(|u| !u.is_empty())
                .map(String::as_str),
            password: Some(&db.password)
                .filter(|p| !p.is_empty())
                .map(String::as_str),
            name: &db.name,
            ssl_mode: db.ssl_mode.as_deref().filter(|m| !m.is_empty()),
            ssl_root_cert,
        }
        .url());
    }
    let service = env
        .get("DATABASE_SERVICE_NAME")
        .unwrap_or_default()
        .to_ascii_uppercase()
        .replace('-', "_");
    let service_host = format!("{service}_SERVICE_HOST");
    let service_port = format!("{service}_SERVICE_PORT");
    let Some(host) = env.get("DATABASE_HOST").or_else(|| env.get(&service_host)) else {
        return Ok(DEFAULT_DATABASE_URL.to_owned());
    };
    let port = env
        .get("DATABASE_PORT")
        .or_else(|| env.get(&service_port))
        .map(|p| {
            p.parse::<u16>()
                .with_context(|| format!("the database port {p:?} is not a port number"))
        })
        .transpose()?;
    Ok(Parts {
        host,
        port,
        user: env.get("DATABASE_USER"),
        password: env.get("DATABASE_PASSWORD"),
        // sources-api-go's default when DATABASE_NAME is unset.
        name: env
            .get("DATABASE_NAME")
            .unwrap_or("sources_api_development"),
        ssl_mode: None,
        ssl_root_cert: None,
    }
    .url())
}

fn write_ca(pem: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("keel-{}-database-ca.pem", std::process::id()));
    std::fs::write(&path, pem).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_wins_then_clowder_then_the_originals_variables() {
        let env: Env = [
            ("DATABASE_HOST", "db.svc"),
            ("DATABASE_PORT", "5433"),
            ("DATABASE_USER", "sources"),
            ("DATABASE_PASSWORD", "p@ss/word"),
            ("DATABASE_NAME", "koku"),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            resolve_url(Some("postgres://x/y"), &env, None).unwrap(),
            "postgres://x/y"
        );
        assert_eq!(
            resolve_url(None, &env, None).unwrap(),
            "postgres://sources:p%40ss%2Fword@db.svc:5433/koku"
        );
        let clowder: Clowder = serde_json::from_str(
            r#"{"database": {"name": "n", "username": "u", "password": "", "hostname": "h",
                "port": 5432, "sslMode": "require"}}"#,
        )
        .unwrap();
        assert_eq!(
            resolve_url(None, &env, Some(&clowder)).unwrap(),
            "postgres://u@h:5432/n?sslmode=require"
        );
        assert_eq!(
            resolve_url(None, &Env::default(), None).unwrap(),
            DEFAULT_DATABASE_URL
        );
    }

    #[test]
    fn kokus_service_variables_name_the_host() {
        let env: Env = [
            ("DATABASE_SERVICE_NAME", "koku-db"),
            ("KOKU_DB_SERVICE_HOST", "10.0.0.7"),
            ("KOKU_DB_SERVICE_PORT", "15432"),
            ("DATABASE_USER", "koku"),
            ("DATABASE_NAME", "koku"),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            resolve_url(None, &env, None).unwrap(),
            "postgres://koku@10.0.0.7:15432/koku"
        );
        let bad: Env = [("DATABASE_HOST", "h"), ("DATABASE_PORT", "x")]
            .into_iter()
            .collect();
        assert!(resolve_url(None, &bad, None).is_err());
    }
}
