use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{As, TestApp};

/// Creates sources a..e in org 1, in that order, with varied fields.
async fn five_sources(app: &TestApp) -> Vec<String> {
    let amazon = app.source_type_id("amazon").await;
    let google = app.source_type_id("google").await;
    let rows = [
        ("alpha", &amazon, Some("ref-1"), "available"),
        ("Bravo", &amazon, None, "unavailable"),
        ("charlie", &google, Some("ref-3"), "in_progress"),
        ("delta_x", &google, None, "available"),
        ("echo%", &amazon, Some("other"), "partially_available"),
    ];
    let mut ids = Vec::new();
    for (name, type_id, source_ref, status) in rows {
        let reply = app
            .post(
                "/sources",
                As::Org("1"),
                &json!({"name": name, "source_type_id": type_id, "source_ref": source_ref,
                        "availability_status": status}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
        ids.push(reply.body["id"].as_str().unwrap().to_owned());
    }
    ids
}

#[tokio::test]
async fn every_filter_operator() {
    let app = TestApp::spawn().await;
    let ids = five_sources(&app).await;
    let (a, b, c, d, e) = (&ids[0], &ids[1], &ids[2], &ids[3], &ids[4]);
    let cases: Vec<(String, Vec<&String>)> = vec![
        ("filter[name]=alpha".into(), vec![a]),
        ("filter[name][eq]=alpha".into(), vec![a]),
        ("name=alpha".into(), vec![a]),
        ("filter[name][not_eq]=alpha".into(), vec![b, c, d, e]),
        (format!("filter[id][gt]={c}"), vec![d, e]),
        (format!("filter[id][gte]={c}"), vec![c, d, e]),
        (format!("filter[id][lt]={c}"), vec![a, b]),
        (format!("filter[id][lte]={c}"), vec![a, b, c]),
        ("filter[source_ref][nil]=1".into(), vec![b, d]),
        ("filter[source_ref][not_nil]=1".into(), vec![a, c, e]),
        ("filter[name][contains]=ha".into(), vec![a, c]),
        ("filter[name][starts_with]=d".into(), vec![d]),
        ("filter[name][ends_with]=o".into(), vec![b]),
        ("filter[name][eq_i]=BRAVO".into(), vec![b]),
        ("filter[name][not_eq_i]=bravo".into(), vec![a, c, d, e]),
        ("filter[name][contains_i]=RAV".into(), vec![b]),
        ("filter[name][starts_with_i]=b".into(), vec![b]),
        ("filter[name][ends_with_i]=LIE".into(), vec![c]),
        // LIKE wildcards in values are literal.
        ("filter[name][contains]=%25".into(), vec![e]),
        ("filter[name][contains]=_".into(), vec![d]),
        // Repeated values mean IN.
        (format!("filter[id][]={a}&filter[id][]={e}"), vec![a, e]),
        (format!("filter[id]={b}&filter[id]={d}"), vec![b, d]),
        ("filter[availability_status]=available".into(), vec![a, d]),
        ("filter[source_type][name]=google".into(), vec![c, d]),
        (
            "filter[source_type][name][starts_with]=ama".into(),
            vec![a, b, e],
        ),
        (
            "filter[created_at][gt]=2000-01-01".into(),
            vec![a, b, c, d, e],
        ),
        ("filter[created_at][lt]=2000-01-01T00:00:00Z".into(), vec![]),
        (
            "filter[name]=alpha&filter[source_ref]=ref-1".into(),
            vec![a],
        ),
    ];
    for (query, want) in cases {
        let reply = app.get(&format!("/sources?{query}"), As::Org("1")).await;
        assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.body);
        let want: Vec<String> = want.into_iter().cloned().collect();
        assert_eq!(reply.ids(), want, "{query}");
        assert_eq!(reply.body["meta"]["count"], want.len(), "{query}");
    }
}

#[tokio::test]
async fn bad_filters_sorts_and_pages_are_400s() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            "filter[password]=x",
            "bad request: invalid filter parameter",
        ),
        ("tenant_id=1", "bad request: invalid filter parameter"),
        (
            "filter[name][like]=x",
            "bad request: unsupported operation like",
        ),
        ("filter[id]=abc", "bad request: invalid filter parameter"),
        (
            "filter[source_type][secret]=x",
            "bad request: invalid filter parameter",
        ),
        (
            "filter[application_type][name]=x",
            "bad request: invalid filter parameter",
        ),
        ("sort_by=password", "bad request: invalid sort_by parameter"),
        (
            "sort_by=name%20sideways",
            "bad request: invalid sort_by parameter",
        ),
        ("limit=abc", "bad request: error parsing limit"),
        ("offset=abc", "bad request: error parsing offset"),
        ("limit=0", "bad request: limit is less than 1"),
        ("offset=-1", "bad request: offset is less than 0"),
    ];
    for (query, detail) in cases {
        let reply = app.get(&format!("/sources?{query}"), As::Org("1")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(reply.error(), detail, "{query}");
    }
}

#[tokio::test]
async fn sort_by_orders_and_breaks_ties_by_id() {
    let app = TestApp::spawn().await;
    let ids = five_sources(&app).await;
    let names = |reply: &crate::helpers::Reply| -> Vec<String> {
        reply.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let desc = app.get("/sources?sort_by=name%20desc", As::Org("1")).await;
    // Byte order (the test database's collation may be C or a locale; compare as Postgres does).
    let mut want = names(&app.get("/sources?sort_by=name", As::Org("1")).await);
    want.reverse();
    assert_eq!(names(&desc), want);
    let by_status = app
        .get(
            "/sources?sort_by=availability_status%20asc&sort_by=id%20desc",
            As::Org("1"),
        )
        .await;
    let statuses: Vec<String> = by_status.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["availability_status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        statuses,
        [
            "available",
            "available",
            "in_progress",
            "partially_available",
            "unavailable"
        ]
    );
    assert_eq!(
        by_status.ids()[0],
        ids[3],
        "ties broken by the second sort key (id desc)"
    );
    let default = app.get("/sources", As::Org("1")).await;
    assert_eq!(default.ids(), ids, "default order is id ascending");
}

#[tokio::test]
async fn pagination_envelope_and_links() {
    let app = TestApp::spawn().await;
    let ids = five_sources(&app).await;

    let page = app
        .get(
            "/sources?limit=2&offset=1&filter[name][not_eq]=zzz",
            As::Org("1"),
        )
        .await;
    assert_eq!(page.ids(), ids[1..3].to_vec());
    assert_eq!(
        page.body["meta"],
        json!({"count": 5, "limit": 2, "offset": 1}),
        "count is the total"
    );
    assert_eq!(
        page.body["links"],
        json!({
            "first": "/api/sources/v3.1/sources?filter[name][not_eq]=zzz&limit=2&offset=1",
            "last": "/api/sources/v3.1/sources?filter[name][not_eq]=zzz&limit=2&offset=3"
        })
    );

    let past_end = app.get("/sources?offset=10", As::Org("1")).await;
    assert_eq!(past_end.body["data"], json!([]));
    assert_eq!(
        past_end.body["meta"],
        json!({"count": 5, "limit": 100, "offset": 10}),
        "count without rows"
    );

    let defaults = app.get("/api/sources/v1.0/sources/", As::Org("1")).await;
    assert_eq!(
        defaults.body["links"],
        json!({"first": "/api/sources/v1.0/sources?limit=100&offset=0",
               "last": "/api/sources/v1.0/sources?limit=100&offset=100"}),
        "links are path-only, under the prefix asked for, without the trailing slash"
    );
    let keys: Vec<&str> = defaults
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["data", "meta", "links"]);
}

#[tokio::test]
async fn every_version_prefix_serves_the_same_api() {
    let app = TestApp::spawn().await;
    let s = app.create_source("1", "everywhere", "amazon").await;
    let id = s["id"].as_str().unwrap();
    for prefix in sources_api::PREFIXES {
        let one = app
            .get(&format!("{prefix}/sources/{id}"), As::Org("1"))
            .await;
        assert_eq!(one.status, StatusCode::OK, "{prefix}");
        assert_eq!(one.body, s, "{prefix}");
        let list = app.get(&format!("{prefix}/sources/"), As::Org("1")).await;
        assert_eq!(list.ids(), vec![id], "{prefix} with trailing slash");
        assert!(
            list.body["links"]["first"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{prefix}/sources?"))
        );
    }
    for prefix in sources_api::PREFIXES {
        let created = app
            .post(
                &format!("{prefix}/sources"),
                As::Org("1"),
                &json!({"name": format!("via {prefix}"), "source_type_id": s["source_type_id"]}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{prefix}");
    }
    assert_eq!(
        app.count("sources").await,
        1 + sources_api::PREFIXES.len() as i64
    );
    let unknown = app.get("/api/sources/v9.9/sources", As::Org("1")).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.body, json!({"message": "Not Found"}));
}

/// Hostile list queries are 400s or pages, never 500s: the largest limit and offset (links
/// saturate instead of overflowing), NUL characters, and many distinct parameters.
#[tokio::test]
async fn extreme_list_queries_answer_cleanly() {
    let app = TestApp::spawn().await;
    app.create_source("1", "aws", "amazon").await;
    let max = i64::MAX;
    let reply = app
        .get(&format!("/sources?limit={max}&offset={max}"), As::Org("1"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["data"], json!([]));
    assert_eq!(reply.body["meta"]["count"], 1);
    let last = reply.body["links"]["last"].as_str().unwrap();
    assert!(last.contains(&format!("offset={max}")), "{last}");
    let nul = app.get("/sources?filter[name]=a%00b", As::Org("1")).await;
    assert_eq!(nul.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        nul.error(),
        "bad request: query parameters cannot contain NUL characters"
    );
    let many: String = (0..1000).map(|i| format!("&filter[name][{i}]=x")).collect();
    let wide = app
        .get(&format!("/sources?limit=1{many}"), As::Org("1"))
        .await;
    assert_eq!(wide.status, StatusCode::BAD_REQUEST);
}

/// Rows a plan's nodes read and threw away, over the whole plan (EXPLAIN's JSON form).
fn rows_removed(plan: &serde_json::Value) -> f64 {
    let own = plan["Rows Removed by Filter"].as_f64().unwrap_or(0.0);
    let children = plan["Plans"]
        .as_array()
        .map(|plans| plans.iter().map(rows_removed).sum())
        .unwrap_or(0.0);
    own + children
}

/// A tenant's page, as the listing asks for it once its statement is cached (a generic plan,
/// made for the average tenant), reads that tenant's rows only: the newest tenant beside a
/// large one must not walk the large one's rows to find its page.
#[tokio::test]
async fn a_tenants_page_reads_only_that_tenants_rows() {
    let app = TestApp::spawn().await;
    // One large tenant and fifty small ones, then the newest.
    app.create_source("1", "first", "amazon").await;
    sqlx::raw_sql(
        "INSERT INTO sources (tenant_id, source_type_id, name, uid) \
         SELECT s.tenant_id, s.source_type_id, 'many-' || n, gen_random_uuid()::text \
         FROM sources s, generate_series(1, 20000) n; \
         INSERT INTO tenants (org_id) SELECT 'small-' || n FROM generate_series(1, 50) n; \
         INSERT INTO sources (tenant_id, source_type_id, name, uid) \
         SELECT t.id, (SELECT id FROM source_types WHERE name = 'amazon'), 'few-' || n, \
           gen_random_uuid()::text \
         FROM tenants t, generate_series(1, 200) n WHERE t.org_id LIKE 'small-%'",
    )
    .execute(&app.db)
    .await
    .unwrap();
    for n in 0..3 {
        app.create_source("2", &format!("newest-{n}"), "amazon")
            .await;
    }
    let newest: i64 = sqlx::query_scalar("SELECT id FROM tenants WHERE org_id = '2'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let mut conn = app.db.acquire().await.unwrap();
    sqlx::raw_sql(
        "ANALYZE sources; SET plan_cache_mode = force_generic_plan; \
         PREPARE page(bigint) AS SELECT t.*, count(*) OVER () AS keel_total FROM sources t \
         WHERE TRUE AND t.tenant_id = $1 ORDER BY t.id ASC LIMIT 100 OFFSET 0",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    let explained: serde_json::Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE page({newest})"
    )))
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    let plan = &explained[0]["Plan"];
    assert_eq!(plan["Actual Rows"], 3, "{explained}");
    assert_eq!(rows_removed(plan), 0.0, "{explained}");

    let page = app.get("/sources", As::Org("2")).await;
    assert_eq!(page.body["meta"]["count"], 3);
}
