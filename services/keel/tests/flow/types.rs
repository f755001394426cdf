//! Every provider type becomes a linked provider in its tenant schema with Koku's credential
//! and data-source shapes; incomplete sources wait; invalid ones are reported unavailable.

use serde_json::{Value, json};

use crate::stack::{Stack, aws};

/// The provider the listener built for a source: (uuid, name, type, org, paused).
async fn provider_of(stack: &Stack, source_id: i64) -> (String, String, String, String, bool) {
    sqlx::query_as(
        "SELECT p.uuid::text, p.name, p.type, c.org_id, p.paused FROM api_provider p \
         JOIN api_customer c ON c.id = p.customer_id \
         JOIN api_sources s ON s.provider_id = p.uuid WHERE s.source_id = $1",
    )
    .bind(source_id)
    .fetch_one(&stack.db)
    .await
    .unwrap()
}

async fn settings_of(stack: &Stack, source_id: i64) -> (Value, Value) {
    sqlx::query_as("SELECT authentication, billing_source FROM api_sources WHERE source_id = $1")
        .bind(source_id)
        .fetch_one(&stack.db)
        .await
        .unwrap()
}

async fn tenant_row(stack: &Stack, org: &str, uuid: &str) -> (String, String) {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT name, type FROM org{org}.reporting_tenant_api_provider WHERE provider_id = $1::uuid"
    )))
    .bind(uuid)
    .fetch_one(&stack.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_aws_source_becomes_a_provider_in_its_tenant_schema_and_reports_available() {
    let stack = Stack::start().await;
    let created = stack
        .bulk_create("4242", aws("My AWS", "arn:aws:iam::111111111111:role/Cost"))
        .await;
    let source_id = created.source_id();
    let uid = created.uid();
    stack.wait_state(source_id, "linked").await;

    // The provider carries the source's uid, in the org's customer, with Koku's shapes.
    let (uuid, name, ty, org, paused) = provider_of(&stack, source_id).await;
    assert_eq!(
        (
            uuid.as_str(),
            name.as_str(),
            ty.as_str(),
            org.as_str(),
            paused
        ),
        (uid.as_str(), "My AWS", "AWS", "4242", false)
    );
    let (credentials, data_source) = settings_of(&stack, source_id).await;
    assert_eq!(
        credentials,
        json!({"credentials": {"role_arn": "arn:aws:iam::111111111111:role/Cost", "external_id": "ext-1"}})
    );
    assert_eq!(
        data_source,
        json!({"data_source": {"bucket": "cost-bucket", "bucket_region": "eu-west-1"}})
    );

    // The tenant schema was cloned from the template, at its migration version, with the row.
    assert_eq!(
        tenant_row(&stack, "4242", &uuid).await,
        ("My AWS".to_owned(), "AWS".to_owned())
    );
    let versions = stack
        .count("SELECT count(*) FROM org4242._sqlx_migrations")
        .await;
    assert_eq!(versions, listener::TENANT_MIGRATOR.iter().count() as i64);

    // sources-api got the status through its REST API, once.
    stack
        .wait_availability(&created.app_id(), "4242", "available")
        .await;
    stack.wait_idle().await;
    assert_eq!(stack.status_reports(&created.app_id()).await, 1);

    // The metrics count it: events by type and outcome, the operation by result, the
    // source-to-provider latency, the queue gauges.
    let metrics = stack.metrics().await;
    let has = |name: &str, labels: &[&str]| {
        metrics
            .lines()
            .any(|l| l.starts_with(name) && labels.iter().all(|label| l.contains(label)))
    };
    assert!(
        has(
            "listener_events_total",
            &["event_type=\"Application.create\"", "outcome=\"queued\""]
        ),
        "{metrics}"
    );
    assert!(
        has(
            "provider_operations_total",
            &["operation=\"create\"", "result=\"created\""]
        ),
        "{metrics}"
    );
    assert!(has("source_to_provider_seconds_count", &[]), "{metrics}");
    assert!(has("listener_queue_depth", &[]), "{metrics}");
    assert!(has("listener_parked_operations", &[]), "{metrics}");

    // The read API shows the linked source and the provider to its org only.
    let sources = stack.read_api("/sources/", "4242").await;
    assert_eq!(sources["meta"]["count"], 1);
    assert_eq!(sources["data"][0]["state"], "linked");
    assert_eq!(sources["data"][0]["koku_uuid"], uid);
    let providers = stack.read_api("/providers/", "4242").await;
    assert_eq!(providers["data"][0]["uuid"], uid);
    let others = stack.read_api("/providers/", "9999").await;
    assert_eq!(others["meta"]["count"], 0);
    let status = stack
        .read_api(&format!("/source-status/?source_id={source_id}"), "4242")
        .await;
    assert_eq!(
        status,
        json!({"availability_status": "available", "availability_status_error": ""})
    );
    stack.stop().await;
}

#[tokio::test]
async fn azure_gcp_and_openshift_sources_become_providers_with_kokus_shapes() {
    let stack = Stack::start().await;
    let org = "5150";
    let azure = stack
        .bulk_create(
            org,
            json!({
                "sources": [{"name": "Azure sub", "source_type_name": "azure"}],
                "applications": [{"application_type_name": "cost-management", "source_name": "Azure sub",
                                  "extra": {"subscription_id": "sub-1", "resource_group": "rg-1",
                                            "storage_account": "sa1", "scope": "subscription"}}],
                "authentications": [{"resource_type": "application", "resource_name": "cost-management",
                                     "authtype": "tenant_id_client_id_client_secret",
                                     "username": "client-1", "password": "azure-secret-value",
                                     "extra": {"azure": {"tenant_id": "tenant-1"}}}]
            }),
        )
        .await;
    let gcp = stack
        .bulk_create(
            org,
            json!({
                "sources": [{"name": "GCP project", "source_type_name": "google"}],
                "applications": [{"application_type_name": "cost-management", "source_name": "GCP project",
                                  "extra": {"dataset": "billing_export"}}],
                "authentications": [{"resource_type": "application", "resource_name": "cost-management",
                                     "authtype": "project_id_service_account_json", "username": "project-1"}]
            }),
        )
        .await;
    let ocp = stack
        .bulk_create(
            org,
            json!({
                "sources": [{"name": "Cluster", "source_type_name": "openshift", "source_ref": "cluster-abc"}],
                "applications": [{"application_type_name": "cost-management", "source_name": "Cluster"}]
            }),
        )
        .await;
    for created in [&azure, &gcp, &ocp] {
        stack.wait_state(created.source_id(), "linked").await;
        stack
            .wait_availability(&created.app_id(), org, "available")
            .await;
        let (uuid, name, ty, _, _) = provider_of(&stack, created.source_id()).await;
        assert_eq!(uuid, created.uid(), "provider uuid is the source uid");
        assert_eq!(
            tenant_row(&stack, org, &uuid).await,
            (name, ty),
            "tenant row"
        );
    }
    let types: Vec<(String, String)> =
        sqlx::query_as("SELECT name, type FROM api_provider ORDER BY name")
            .fetch_all(&stack.db)
            .await
            .unwrap();
    assert_eq!(
        types,
        [
            ("Azure sub", "Azure"),
            ("Cluster", "OCP"),
            ("GCP project", "GCP")
        ]
        .map(|(n, t)| (n.to_owned(), t.to_owned()))
    );

    // Azure: the four credential keys (the secret sealed at rest), resource group and storage
    // account plus the optional scope.
    let (credentials, billing) = settings_of(&stack, azure.source_id()).await;
    let c = &credentials["credentials"];
    assert_eq!(
        (&c["client_id"], &c["subscription_id"], &c["tenant_id"]),
        (&json!("client-1"), &json!("sub-1"), &json!("tenant-1"))
    );
    let sealed = c["client_secret"].as_str().unwrap();
    assert!(sealed.starts_with("sealed:v1:"), "{sealed}");
    assert!(!credentials.to_string().contains("azure-secret-value"));
    assert_eq!(
        billing,
        json!({"data_source": {"resource_group": "rg-1", "storage_account": "sa1", "scope": "subscription"}})
    );
    // GCP: the project id; the dataset as data source.
    assert_eq!(
        settings_of(&stack, gcp.source_id()).await,
        (
            json!({"credentials": {"project_id": "project-1"}}),
            json!({"data_source": {"dataset": "billing_export"}})
        )
    );
    // OCP: the cluster id from source_ref; no data source.
    assert_eq!(
        settings_of(&stack, ocp.source_id()).await,
        (
            json!({"credentials": {"cluster_id": "cluster-abc"}}),
            json!({})
        )
    );
    // The read API never shows the secret.
    let providers = stack.read_api("/providers/", org).await;
    assert_eq!(providers["meta"]["count"], 3);
    assert!(
        !providers.to_string().contains("azure-secret-value")
            && !providers.to_string().contains("sealed:v1:"),
        "{providers}"
    );
    // One customer and one tenant schema for the org.
    assert_eq!(
        stack
            .count("SELECT count(*) FROM api_customer WHERE org_id = '5150'")
            .await,
        1
    );
    assert_eq!(
        stack
            .count("SELECT count(*) FROM org5150.reporting_tenant_api_provider")
            .await,
        3
    );
    stack.stop().await;
}

#[tokio::test]
async fn an_invalid_role_arn_becomes_unavailable_with_kokus_message_and_no_provider() {
    let stack = Stack::start().await;
    let created = stack.bulk_create("77", aws("Bad AWS", "not-an-arn")).await;
    stack.wait_state(created.source_id(), "failed").await;
    assert_eq!(stack.count("SELECT count(*) FROM api_provider").await, 0);
    let error = stack
        .wait_availability(&created.app_id(), "77", "unavailable")
        .await;
    assert_eq!(
        error,
        "The role ARN was entered incorrectly for this source. Edit your AWS source and verify the name of your ARN."
    );
    stack.stop().await;
}

#[tokio::test]
async fn an_azure_source_missing_a_credential_waits_until_it_is_given() {
    let stack = Stack::start().await;
    let org = "5151";
    // No subscription id yet: three of the four credential keys.
    let created = stack
        .bulk_create(
            org,
            json!({
                "sources": [{"name": "Azure half", "source_type_name": "azure"}],
                "applications": [{"application_type_name": "cost-management", "source_name": "Azure half",
                                  "extra": {"resource_group": "rg", "storage_account": "sa"}}],
                "authentications": [{"resource_type": "application", "resource_name": "cost-management",
                                     "authtype": "tenant_id_client_id_client_secret",
                                     "username": "client", "password": "secret",
                                     "extra": {"azure": {"tenant_id": "tenant"}}}]
            }),
        )
        .await;
    stack.wait_state(created.source_id(), "details").await;
    stack.wait_idle().await;
    assert_eq!(stack.count("SELECT count(*) FROM api_provider").await, 0);
    assert_eq!(
        stack.status_reports(&created.app_id()).await,
        0,
        "nothing to report yet"
    );
    stack
        .write(
            reqwest::Method::PATCH,
            &format!("/applications/{}", created.app_id()),
            org,
            Some(json!({"extra": {"resource_group": "rg", "storage_account": "sa", "subscription_id": "sub"}})),
            200,
        )
        .await;
    stack.wait_state(created.source_id(), "linked").await;
    let (credentials, _) = settings_of(&stack, created.source_id()).await;
    assert_eq!(credentials["credentials"]["subscription_id"], "sub");
    stack.stop().await;
}

#[tokio::test]
async fn an_incomplete_source_waits_and_a_bad_status_request_is_refused() {
    let stack = Stack::start().await;
    // No bucket: the settings stay incomplete.
    let created = stack
        .bulk_create(
            "88",
            json!({
                "sources": [{"name": "Half", "source_type_name": "amazon"}],
                "applications": [{"application_type_name": "cost-management", "source_name": "Half"}],
                "authentications": [{"resource_type": "application", "resource_name": "cost-management",
                                     "authtype": "arn", "username": "arn:aws:iam::111111111111:role/Cost"}]
            }),
        )
        .await;
    let source_id = created.source_id();
    stack.wait_state(source_id, "details").await;
    assert_eq!(stack.count("SELECT count(*) FROM api_provider").await, 0);
    let url = format!("{}/api/cost-management/v1/source-status/", stack.listener);
    let missing = stack
        .http
        .get(format!("{url}?source_id={source_id}"))
        .header("x-rh-sources-org-id", "88")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404, "incomplete settings have no status");
    let bad = stack
        .http
        .get(format!("{url}?source_id=abc"))
        .header("x-rh-sources-org-id", "88")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["errors"][0]["status"], "400");
    let anonymous = stack
        .http
        .get(format!("{url}?source_id={source_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    stack.stop().await;
}

#[tokio::test]
async fn a_second_source_with_the_same_settings_is_refused_as_a_duplicate() {
    let stack = Stack::start().await;
    let org = "5152";
    let arn = "arn:aws:iam::111111111111:role/Same";
    let first = stack.bulk_create(org, aws("First", arn)).await;
    stack.wait_state(first.source_id(), "linked").await;
    let second = stack.bulk_create(org, aws("Second", arn)).await;
    stack.wait_state(second.source_id(), "failed").await;
    let error = stack
        .wait_availability(&second.app_id(), org, "unavailable")
        .await;
    assert_eq!(
        error,
        "Cost management does not allow duplicate accounts. An integration already exists with these details. Edit integration settings to configure a new integration."
    );
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM api_provider")
        .fetch_all(&stack.db)
        .await
        .unwrap();
    assert_eq!(names, ["First"]);
    // Another org may use the same settings: the rule is per customer.
    let other = stack.bulk_create("5153", aws("Elsewhere", arn)).await;
    stack.wait_state(other.source_id(), "linked").await;
    assert_eq!(stack.count("SELECT count(*) FROM api_provider").await, 2);
    stack.stop().await;
}
