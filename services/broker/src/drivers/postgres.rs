//! Databases on a shared PostgreSQL server: a database and a login role of the same name per
//! deployment, the role owning the database, `CONNECTION LIMIT` from the size. The password
//! is sent as a SCRAM-SHA-256 verifier computed here, so it never crosses the wire or lands in
//! the server's logs in clear.

use std::str::FromStr as _;

use base64::Engine as _;
use keel_db::quote_ident;
use ring::{digest, hmac, pbkdf2, rand::SecureRandom as _};
use sqlx::{PgPool, postgres::PgConnectOptions};

use super::{Credentials, DriverError, Names, human_bytes};
use crate::{config::SharedTarget, domain::drift::Observed};

#[derive(Debug, Clone)]
pub struct SharedPostgres {
    admin: PgPool,
    host: String,
    port: u16,
}

impl SharedPostgres {
    /// `connections`: see [`super::admin_pool`].
    pub fn new(target: &SharedTarget, connections: u32) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(target.admin_url.expose())?
            .database("postgres")
            .application_name("keel-broker");
        let host = target
            .host
            .clone()
            .unwrap_or_else(|| options.get_host().to_owned());
        let port = options.get_port();
        let admin = super::admin_pool(options, connections);
        Ok(Self { admin, host, port })
    }

    pub fn endpoint(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    /// The server's version as it reports it (`15.14`).
    pub async fn version(&self) -> Result<String, DriverError> {
        let v: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&self.admin)
            .await
            .map_err(DriverError::unreachable)?;
        Ok(v.split_whitespace().next().unwrap_or_default().to_owned())
    }

    /// Creates what is missing and sets what differs: the role (password, connection limit),
    /// the database owned by it, connections to it for its role only.
    pub async fn apply(
        &self,
        names: &Names,
        credentials: &Credentials,
        connection_limit: i32,
    ) -> Result<(), DriverError> {
        let role = quote_ident(&names.object);
        let verifier = scram_verifier(&credentials.password);
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(&names.object)
                .fetch_one(&self.admin)
                .await
                .map_err(DriverError::unreachable)?;
        let verb = if exists { "ALTER" } else { "CREATE" };
        self.execute(&format!(
            "{verb} ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE CONNECTION LIMIT {connection_limit} PASSWORD '{verifier}'"
        ))
        .await?;
        let db_exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&names.object)
                .fetch_one(&self.admin)
                .await
                .map_err(DriverError::unreachable)?;
        if !db_exists {
            self.execute(&format!("CREATE DATABASE {role} OWNER {role}"))
                .await?;
        }
        self.execute(&format!(
            "REVOKE CONNECT, TEMPORARY ON DATABASE {role} FROM PUBLIC"
        ))
        .await?;
        self.execute(&format!(
            "GRANT CONNECT, TEMPORARY ON DATABASE {role} TO {role}"
        ))
        .await?;
        Ok(())
    }

    /// What exists of the deployment, the server's version and the database's size.
    pub async fn observe(&self, names: &Names) -> Result<Observed, DriverError> {
        let row: (Option<i32>, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT rolconnlimit FROM pg_roles WHERE rolname = $1), \
                    (SELECT pg_database_size(oid) FROM pg_database WHERE datname = $1)",
        )
        .bind(&names.object)
        .fetch_one(&self.admin)
        .await
        .map_err(DriverError::unreachable)?;
        let (limit, size) = row;
        Ok(Observed {
            parts: vec![
                (format!("role {}", names.object), limit.is_some()),
                (format!("database {}", names.object), size.is_some()),
            ],
            version: Some(self.version().await?),
            replicas: Some(1),
            connection_limit: limit,
            usage: crate::domain::drift::Usage {
                storage_usage: size.map(human_bytes),
                replicas: Some(1),
                ..Default::default()
            },
            ..Observed::default()
        })
    }

    /// Drops the database (ending its sessions) and the role; what is already gone is fine.
    pub async fn delete(&self, names: &Names) -> Result<(), DriverError> {
        let name = quote_ident(&names.object);
        self.execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await?;
        self.execute(&format!("DROP ROLE IF EXISTS {name}")).await
    }

    async fn execute(&self, statement: &str) -> Result<(), DriverError> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned()))
            .execute(&self.admin)
            .await
            .map_err(DriverError::from_sql)?;
        Ok(())
    }
}

const SCRAM_ITERATIONS: u32 = 4096;

/// PostgreSQL's stored form of a SCRAM-SHA-256 password (RFC 5802/7677):
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
pub fn scram_verifier(password: &str) -> String {
    let mut salt = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut salt)
        .expect("the system's randomness is available");
    scram_verifier_with(password, &salt, SCRAM_ITERATIONS)
}

pub fn scram_verifier_with(password: &str, salt: &[u8], iterations: u32) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut salted = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(iterations).expect("iterations are positive"),
        salt,
        password.as_bytes(),
        &mut salted,
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, &salted);
    let client_key = hmac::sign(&key, b"Client Key");
    let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
    let server_key = hmac::sign(&key, b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        b64.encode(salt),
        b64.encode(stored_key.as_ref()),
        b64.encode(server_key.as_ref())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's exchange (user "user", password "pencil"): the keys derived here reproduce
    /// its server signature, and its client proof checks against the stored key, as the
    /// server checks it.
    #[test]
    fn scram_keys_reproduce_rfc_7677s_exchange() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let salt = b64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let verifier = scram_verifier_with("pencil", &salt, 4096);
        let (head, keys) = verifier.rsplit_once('$').unwrap();
        assert_eq!(head, "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==");
        let (stored, server) = keys.split_once(':').unwrap();
        let (stored, server) = (b64.decode(stored).unwrap(), b64.decode(server).unwrap());
        let auth = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
                    r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
                    c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let auth = auth.replace(' ', "");
        let server_signature =
            hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &server), auth.as_bytes());
        assert_eq!(
            b64.encode(server_signature.as_ref()),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let client_signature =
            hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &stored), auth.as_bytes());
        let proof = b64
            .decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        let client_key: Vec<u8> = proof
            .iter()
            .zip(client_signature.as_ref())
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(
            digest::digest(&digest::SHA256, &client_key).as_ref(),
            &stored[..]
        );
    }
}
