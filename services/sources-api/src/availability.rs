//! `POST /sources/{id}/check_availability`: each application whose type has a
//! `<APP>_AVAILABILITY_CHECK_URL` is asked to check the source, off the request path.

use std::{collections::HashMap, time::Duration};

use serde_json::json;

use crate::{
    error::Result,
    state::AppState,
    store::{Tenant, applications},
};

const PER_CALL: Duration = Duration::from_secs(10);
const OVERALL: Duration = Duration::from_secs(20);
const COST_MANAGEMENT: &str = "/insights/platform/cost-management";

/// `/insights/platform/cost-management` -> `COST_MANAGEMENT`
pub fn env_prefix(application_type_name: &str) -> String {
    application_type_name
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase()
        .replace('-', "_")
}

/// The `*_AVAILABILITY_CHECK_URL` variables of the environment, by `<APP>`.
pub fn urls_from_env(env: &keel_service::Env) -> HashMap<String, String> {
    env.with_suffix("_AVAILABILITY_CHECK_URL")
        .map(|(app, url)| (app.to_owned(), url.to_owned()))
        .collect()
}

/// Finds the check URLs of the source's applications and calls them in the background.
pub async fn request_checks(
    state: &AppState,
    tenant: &Tenant,
    source_id: i64,
    skip_cost_management: bool,
) -> Result<()> {
    let app_types = applications::type_names_of_source(&state.db, tenant, source_id).await?;
    let targets: Vec<String> = app_types
        .iter()
        .filter(|name| !(skip_cost_management && name.as_str() == COST_MANAGEMENT))
        .filter_map(|name| {
            state
                .availability_check_urls
                .get(&env_prefix(name))
                .cloned()
        })
        .collect();
    if targets.is_empty() {
        return Ok(());
    }
    let client = state.http.clone();
    let identity = tenant.identity.header.clone();
    let org = tenant.org_id.clone().unwrap_or_default();
    let account = tenant.external_tenant.clone().unwrap_or_default();
    let body = json!({ "source_id": source_id.to_string() }).to_string();
    let span = tracing::info_span!("availability_check", source_id);
    // Each call holds a permit of a bounded pool: a flood of checks costs at most the pool's
    // connections, and the checks beyond it are skipped (they are hints, not writes).
    let mut permitted = Vec::with_capacity(targets.len());
    for url in targets {
        match state.availability_checks.clone().try_acquire_owned() {
            Ok(permit) => permitted.push((url, permit)),
            Err(_) => {
                metrics::counter!("sources_availability_checks_skipped_total").increment(1);
                tracing::warn!(%url, source_id, "availability check skipped: too many in flight");
            }
        }
    }
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            let mut calls = tokio::task::JoinSet::new();
            for (url, permit) in permitted {
                let request = client
                    .post(&url)
                    .timeout(PER_CALL)
                    .header("content-type", "application/json;charset=utf-8")
                    .header("x-rh-identity", &identity)
                    .header("x-rh-sources-org-id", &org)
                    .header("x-rh-sources-account-number", &account)
                    .body(body.clone());
                calls.spawn(async move {
                    let _permit = permit;
                    let outcome = request.send().await;
                    metrics::counter!("sources_availability_check_requests_total").increment(1);
                    match outcome {
                        Ok(r) if r.status().is_success() => {}
                        Ok(r) => {
                            metrics::counter!("sources_availability_check_failed_requests_total")
                                .increment(1);
                            tracing::warn!(%url, status = %r.status(), "availability check refused");
                        }
                        Err(e) => {
                            metrics::counter!("sources_availability_check_failed_requests_total")
                                .increment(1);
                            tracing::warn!(%url, error = %e, "availability check failed");
                        }
                    }
                });
            }
            let all = async { while calls.join_next().await.is_some() {} };
            if tokio::time::timeout(OVERALL, all).await.is_err() {
                // Dropping the set aborts what is left.
                tracing::warn!("availability checks still running after 20s; abandoned");
            }
        },
        span,
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_come_from_the_last_path_segment() {
        assert_eq!(
            env_prefix("/insights/platform/cost-management"),
            "COST_MANAGEMENT"
        );
        assert_eq!(env_prefix("/insights/platform/cloud-meter"), "CLOUD_METER");
    }
}
