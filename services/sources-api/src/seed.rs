//! Seed data, upserted by name at start. Ids are whatever the database assigns; nothing may
//! depend on them.

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::Value;
use sqlx::PgPool;

/// The checked-in seed file.
pub const SEEDS_YAML: &str = include_str!("../seeds/seeds.yaml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seeds {
    pub source_types: Vec<SourceTypeSeed>,
    pub application_types: Vec<ApplicationTypeSeed>,
    pub app_meta_data: Vec<MetaDataSeed>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceTypeSeed {
    pub name: String,
    pub product_name: String,
    pub category: String,
    pub vendor: String,
    pub icon_url: Option<String>,
    pub schema: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationTypeSeed {
    pub name: String,
    pub display_name: String,
    pub dependent_applications: Value,
    pub supported_source_types: Value,
    pub supported_authentication_types: Value,
    pub resource_ownership: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaDataSeed {
    pub application_type: String,
    pub name: String,
    pub payload: Value,
}

impl Seeds {
    pub fn parse(yaml: &str) -> anyhow::Result<Self> {
        serde_norway::from_str(yaml).context("invalid seed file")
    }

    /// Leaves out the named types (`SOURCE_TYPE_SKIP_LIST`, `APPLICATION_TYPE_SKIP_LIST`).
    pub fn skipping(mut self, source_types: &[String], application_types: &[String]) -> Self {
        self.source_types
            .retain(|t| !source_types.contains(&t.name));
        self.application_types
            .retain(|t| !application_types.contains(&t.name));
        self.app_meta_data
            .retain(|m| !application_types.contains(&m.application_type));
        self
    }
}

/// Upserts every seed by name in one transaction and removes types the file no longer has,
/// unless something still uses them. Rows that did not change are left untouched.
pub async fn apply(db: &PgPool, seeds: &Seeds) -> anyhow::Result<()> {
    let mut tx = db.begin().await?;
    // Several replicas may start at once.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('keel.sources.seed'))")
        .execute(&mut *tx)
        .await?;
    for t in &seeds.source_types {
        sqlx::query(
            "INSERT INTO source_types (name, product_name, category, vendor, icon_url, schema) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (name) DO UPDATE SET product_name = excluded.product_name, \
               category = excluded.category, vendor = excluded.vendor, \
               icon_url = excluded.icon_url, schema = excluded.schema \
             WHERE (source_types.product_name, source_types.category, source_types.vendor, \
                    source_types.icon_url, source_types.schema) IS DISTINCT FROM \
                   (excluded.product_name, excluded.category, excluded.vendor, \
                    excluded.icon_url, excluded.schema)",
        )
        .bind(&t.name)
        .bind(&t.product_name)
        .bind(&t.category)
        .bind(&t.vendor)
        .bind(&t.icon_url)
        .bind(&t.schema)
        .execute(&mut *tx)
        .await
        .with_context(|| format!("seeding source type {}", t.name))?;
    }
    let names: Vec<&str> = seeds.source_types.iter().map(|t| t.name.as_str()).collect();
    sqlx::query(
        "DELETE FROM source_types st WHERE st.name <> ALL($1) \
         AND NOT EXISTS (SELECT 1 FROM sources s WHERE s.source_type_id = st.id)",
    )
    .bind(&names)
    .execute(&mut *tx)
    .await?;

    for t in &seeds.application_types {
        sqlx::query(
            "INSERT INTO application_types (name, display_name, dependent_applications, \
               supported_source_types, supported_authentication_types, resource_ownership) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (name) DO UPDATE SET display_name = excluded.display_name, \
               dependent_applications = excluded.dependent_applications, \
               supported_source_types = excluded.supported_source_types, \
               supported_authentication_types = excluded.supported_authentication_types, \
               resource_ownership = excluded.resource_ownership \
             WHERE (application_types.display_name, application_types.dependent_applications, \
                    application_types.supported_source_types, \
                    application_types.supported_authentication_types, \
                    application_types.resource_ownership) IS DISTINCT FROM \
                   (excluded.display_name, excluded.dependent_applications, \
                    excluded.supported_source_types, excluded.supported_authentication_types, \
                    excluded.resource_ownership)",
        )
        .bind(&t.name)
        .bind(&t.display_name)
        .bind(&t.dependent_applications)
        .bind(&t.supported_source_types)
        .bind(&t.supported_authentication_types)
        .bind(&t.resource_ownership)
        .execute(&mut *tx)
        .await
        .with_context(|| format!("seeding application type {}", t.name))?;
    }
    let names: Vec<&str> = seeds
        .application_types
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    sqlx::query(
        "DELETE FROM application_types at WHERE at.name <> ALL($1) \
         AND NOT EXISTS (SELECT 1 FROM applications a WHERE a.application_type_id = at.id)",
    )
    .bind(&names)
    .execute(&mut *tx)
    .await?;

    for m in &seeds.app_meta_data {
        sqlx::query(
            "INSERT INTO meta_data (application_type_id, name, payload) \
             SELECT id, $2, $3 FROM application_types WHERE name = $1 \
             ON CONFLICT (application_type_id, name) DO UPDATE SET payload = excluded.payload \
             WHERE meta_data.payload IS DISTINCT FROM excluded.payload",
        )
        .bind(&m.application_type)
        .bind(&m.name)
        .bind(&m.payload)
        .execute(&mut *tx)
        .await
        .with_context(|| format!("seeding metadata {}", m.name))?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checked_in_seeds_have_what_cost_management_needs() {
        let seeds = Seeds::parse(SEEDS_YAML).unwrap();
        let cost = seeds
            .application_types
            .iter()
            .find(|t| t.name == "/insights/platform/cost-management")
            .expect("cost-management application type");
        assert_eq!(cost.display_name, "Cost Management");
        for (source_type, authtype) in [
            ("amazon", "arn"),
            ("azure", "tenant_id_client_id_client_secret"),
            ("google", "project_id_service_account_json"),
            ("openshift", "token"),
            ("ibm", "api_token_account_id"),
        ] {
            assert!(
                seeds.source_types.iter().any(|t| t.name == source_type),
                "{source_type} missing"
            );
            assert_eq!(
                cost.supported_authentication_types[source_type][0],
                authtype
            );
            assert!(
                cost.supported_source_types
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|v| v == source_type)
            );
        }
        // Every supported source type of every application type exists.
        for app in &seeds.application_types {
            for st in app.supported_source_types.as_array().unwrap() {
                assert!(
                    seeds.source_types.iter().any(|t| t.name == *st),
                    "{} names unknown source type {st}",
                    app.name
                );
            }
        }
    }

    #[test]
    fn skip_lists_remove_types_and_their_metadata() {
        let seeds = Seeds::parse(SEEDS_YAML).unwrap().skipping(
            &["amazon".to_owned()],
            &["/insights/platform/cost-management".to_owned()],
        );
        assert!(!seeds.source_types.iter().any(|t| t.name == "amazon"));
        assert!(seeds.app_meta_data.is_empty());
    }
}
