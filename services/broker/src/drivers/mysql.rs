//! Databases on a shared MariaDB (or MySQL) server: a database and a user of the same name per
//! deployment, the user granted everything on its database only, `MAX_USER_CONNECTIONS` from
//! the size. The password is sent as its `mysql_native_password` hash, never in clear.

use std::str::FromStr as _;

use ring::digest;
use sqlx::{MySqlPool, mysql::MySqlConnectOptions};

use super::{Credentials, DriverError, Names, human_bytes};
use crate::{
    config::SharedTarget,
    domain::drift::{Observed, Usage},
};

#[derive(Debug, Clone)]
pub struct SharedMysql {
    admin: MySqlPool,
    host: String,
    port: u16,
}

impl SharedMysql {
    /// `connections`: see [`super::admin_pool`].
    pub fn new(target: &SharedTarget, connections: u32) -> anyhow::Result<Self> {
        let options = MySqlConnectOptions::from_str(target.admin_url.expose())?;
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

    /// The server's version without its distribution suffix (`10.11.19`).
    pub async fn version(&self) -> Result<String, DriverError> {
        let v: String = sqlx::query_scalar("SELECT VERSION()")
            .fetch_one(&self.admin)
            .await
            .map_err(DriverError::unreachable)?;
        Ok(v.split('-').next().unwrap_or_default().to_owned())
    }

    /// Creates what is missing and sets what differs: the user (password, connection limit),
    /// the database, the user's privileges on it.
    pub async fn apply(
        &self,
        names: &Names,
        credentials: &Credentials,
        connection_limit: i32,
    ) -> Result<(), DriverError> {
        let user = account(names);
        let database = &names.object;
        let hash = native_password_hash(&credentials.password);
        for verb in ["CREATE USER IF NOT EXISTS", "ALTER USER"] {
            self.execute(&format!(
                "{verb} {user} IDENTIFIED WITH mysql_native_password AS '{hash}' \
                 WITH MAX_USER_CONNECTIONS {connection_limit}"
            ))
            .await?;
        }
        self.execute(&format!("CREATE DATABASE IF NOT EXISTS `{database}`"))
            .await?;
        self.execute(&format!("GRANT ALL PRIVILEGES ON `{database}`.* TO {user}"))
            .await
    }

    /// What exists of the deployment, its connection limit and its data's size.
    pub async fn observe(&self, names: &Names) -> Result<Observed, DriverError> {
        let row: (Option<i64>, i64, i64, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT CAST(max_user_connections AS SIGNED) FROM mysql.user WHERE User = ? AND Host = '%'), \
                    (SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?), \
                    (SELECT COUNT(*) FROM information_schema.SCHEMA_PRIVILEGES \
                      WHERE GRANTEE = ? AND TABLE_SCHEMA = ? AND PRIVILEGE_TYPE = 'SELECT'), \
                    (SELECT CAST(SUM(data_length + index_length) AS SIGNED) FROM information_schema.TABLES \
                      WHERE TABLE_SCHEMA = ?)",
        )
        .bind(&names.object)
        .bind(&names.object)
        .bind(format!("'{}'@'%'", names.object))
        .bind(&names.object)
        .bind(&names.object)
        .fetch_one(&self.admin)
        .await
        .map_err(DriverError::unreachable)?;
        let (limit, databases, grants, size) = row;
        let object = &names.object;
        Ok(Observed {
            parts: vec![
                (format!("user {object}"), limit.is_some()),
                (format!("database {object}"), databases > 0),
                (
                    format!("privileges of user {object} on database {object}"),
                    grants > 0,
                ),
            ],
            version: Some(self.version().await?),
            replicas: Some(1),
            connection_limit: limit.and_then(|l| i32::try_from(l).ok()),
            usage: Usage {
                storage_usage: Some(human_bytes(size.unwrap_or(0))),
                replicas: Some(1),
                ..Usage::default()
            },
            ..Observed::default()
        })
    }

    /// Drops the database and the user; what is already gone is fine.
    pub async fn delete(&self, names: &Names) -> Result<(), DriverError> {
        self.execute(&format!("DROP DATABASE IF EXISTS `{}`", names.object))
            .await?;
        self.execute(&format!("DROP USER IF EXISTS {}", account(names)))
            .await
    }

    async fn execute(&self, statement: &str) -> Result<(), DriverError> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned()))
            .execute(&self.admin)
            .await
            .map_err(DriverError::from_sql)?;
        Ok(())
    }
}

/// `'name'@'%'`: the deployment's user, from any host. Names are `[a-z0-9_]` only.
fn account(names: &Names) -> String {
    format!("'{}'@'%'", names.object)
}

/// `mysql_native_password`'s stored form: `*` and the upper-case hex of SHA1(SHA1(password)).
pub fn native_password_hash(password: &str) -> String {
    let once = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, password.as_bytes());
    let twice = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, once.as_ref());
    let hex: String = twice.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    format!("*{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MySQL's documented example: PASSWORD('mypass').
    #[test]
    fn the_native_hash_is_mysqls() {
        assert_eq!(
            native_password_hash("mypass"),
            "*6C8989366EAF75BB670AD8EA7A7FC1176A95CEF4"
        );
    }
}
