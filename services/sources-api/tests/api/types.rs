use reqwest::StatusCode;

use crate::helpers::{As, TestApp};

const COST: &str = "/insights/platform/cost-management";

#[tokio::test]
async fn source_types_are_seeded_with_their_schemas() {
    let app = TestApp::spawn().await;
    let reply = app.get("/source_types?sort_by=name", As::Raw(&[])).await;
    assert_eq!(reply.status, StatusCode::OK, "type lists need no tenancy");
    let names: Vec<&str> = reply.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for name in ["amazon", "azure", "google", "ibm", "openshift", "satellite"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "sort_by=name orders by name");

    let id = app.source_type_id("amazon").await;
    let amazon = app.get(&format!("/source_types/{id}"), As::Raw(&[])).await;
    assert_eq!(amazon.status, StatusCode::OK);
    let t = &amazon.body;
    assert_eq!(t["product_name"], "Amazon Web Services");
    assert_eq!(t["category"], "Cloud");
    assert_eq!(t["vendor"], "Amazon");
    assert_eq!(
        t["icon_url"],
        "/apps/frontend-assets/partners-icons/aws-long.svg"
    );
    let auth_types: Vec<&str> = t["schema"]["authentication"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["type"].as_str().unwrap())
        .collect();
    assert!(auth_types.contains(&"arn"), "{auth_types:?}");
    let keys: Vec<&str> = t.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "id",
            "created_at",
            "updated_at",
            "category",
            "name",
            "product_name",
            "vendor",
            "schema",
            "icon_url"
        ]
    );
}

#[tokio::test]
async fn koku_finds_cost_management_by_name_and_checks_membership() {
    let app = TestApp::spawn().await;
    // Koku: GET /application_types?filter[name]=/insights/platform/cost-management, len(data)==1
    let reply = app
        .get(
            &format!("/api/sources/v1.0/application_types?filter[name]={COST}"),
            As::Raw(&[]),
        )
        .await;
    assert_eq!(reply.ids().len(), 1);
    let cost = &reply.body["data"][0];
    assert_eq!(cost["display_name"], "Cost Management");
    assert_eq!(cost["dependent_applications"], serde_json::json!([]));
    assert_eq!(
        cost["supported_authentication_types"]["amazon"],
        serde_json::json!(["arn"])
    );
    assert_eq!(
        cost["supported_authentication_types"]["openshift"],
        serde_json::json!(["token"])
    );
    assert!(
        cost.get("resource_ownership").is_none(),
        "resource_ownership is not exposed"
    );
    let cost_id = cost["id"].as_str().unwrap().to_owned();

    // Koku: GET /application_types/{cm}/sources?filter[id]={source_id}
    let s = app.create_source("1", "cluster", "openshift").await;
    let sid = s["id"].as_str().unwrap();
    let path = format!("/api/sources/v1.0/application_types/{cost_id}/sources?filter[id]={sid}");
    assert_eq!(
        app.get(&path, As::Org("1")).await.ids().len(),
        0,
        "no application yet"
    );
    app.attach_application(sid, &cost_id).await;
    assert_eq!(app.get(&path, As::Org("1")).await.ids(), vec![sid]);

    // Koku: GET /source_types?filter[id]=N -> data[0].name
    let type_id = s["source_type_id"].as_str().unwrap();
    let t = app
        .get(
            &format!("/api/sources/v1.0/source_types?filter[id]={type_id}"),
            As::Raw(&[]),
        )
        .await;
    assert_eq!(t.body["data"][0]["name"], "openshift");
}

#[tokio::test]
async fn application_type_get_and_not_found() {
    let app = TestApp::spawn().await;
    let id = app
        .application_type_id("/insights/platform/app-studio")
        .await;
    let reply = app
        .get(&format!("/application_types/{id}"), As::Raw(&[]))
        .await;
    assert_eq!(reply.body["display_name"], "App Studio");
    assert_eq!(
        reply.body["supported_source_types"]
            .as_array()
            .unwrap()
            .len(),
        5
    );

    for (path, detail) in [
        ("/application_types/98765", "application type not found"),
        (
            "/application_types/98765/sources",
            "application type not found",
        ),
        (
            "/application_types/98765/app_meta_data",
            "application type not found",
        ),
        ("/source_types/98765", "source type not found"),
        ("/source_types/98765/sources", "source type not found"),
        ("/app_meta_data/98765", "metadata not found"),
    ] {
        let reply = app.get(path, As::Org("1")).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.error(), detail, "{path}");
    }
}

#[tokio::test]
async fn app_meta_data_lists_get_and_per_type() {
    let app = TestApp::spawn().await;
    let all = app.get("/app_meta_data", As::Raw(&[])).await;
    assert_eq!(all.body["meta"]["count"], 2);
    let cost = app.application_type_id(COST).await;
    let wizard = all.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "aws_wizard_account_number")
        .expect("aws wizard metadata");
    assert_eq!(wizard["payload"], "587172791893");
    assert_eq!(wizard["application_type_id"], cost);

    let one = app
        .get(
            &format!("/app_meta_data/{}", wizard["id"].as_str().unwrap()),
            As::Raw(&[]),
        )
        .await;
    assert_eq!(&one.body, wizard);

    let for_cost = app
        .get(
            &format!("/application_types/{cost}/app_meta_data"),
            As::Raw(&[]),
        )
        .await;
    assert_eq!(for_cost.body["meta"]["count"], 2);
    let meter = app
        .application_type_id("/insights/platform/cloud-meter")
        .await;
    let for_meter = app
        .get(
            &format!("/application_types/{meter}/app_meta_data"),
            As::Raw(&[]),
        )
        .await;
    assert_eq!(for_meter.body["meta"]["count"], 0);
    let by_name = app
        .get("/app_meta_data?name=gcp_service_account", As::Raw(&[]))
        .await;
    assert_eq!(by_name.ids().len(), 1);
}

#[tokio::test]
async fn seeding_again_keeps_ids_and_skip_lists_remove_unused_types() {
    let app = TestApp::spawn().await;
    let amazon = app.source_type_id("amazon").await;
    let ibm = app.source_type_id("ibm").await;
    app.create_source("1", "uses-ibm", "ibm").await;
    let count = app.get("/source_types", As::Raw(&[])).await.body["meta"]["count"].clone();

    let app = app
        .restart(|c| {
            c.source_type_skip_list = vec!["satellite".into(), "ibm".into()];
            c.application_type_skip_list = vec!["/insights/platform/fifi".into()];
        })
        .await;

    assert_eq!(
        app.source_type_id("amazon").await,
        amazon,
        "upsert by name keeps ids"
    );
    assert_eq!(
        app.source_type_id("ibm").await,
        ibm,
        "a type still in use is kept"
    );
    let after = app
        .get("/source_types?filter[name]=satellite", As::Raw(&[]))
        .await;
    assert_eq!(
        after.body["meta"]["count"], 0,
        "an unused skipped type is removed"
    );
    let total = app.get("/source_types", As::Raw(&[])).await.body["meta"]["count"]
        .as_i64()
        .unwrap();
    assert_eq!(total, count.as_i64().unwrap() - 1);
    let fifi = app
        .get(
            "/application_types?filter[name]=/insights/platform/fifi",
            As::Raw(&[]),
        )
        .await;
    assert_eq!(fifi.body["meta"]["count"], 0);
}
