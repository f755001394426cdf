//! The checked-in CRD is what the code generates (`cargo run --bin crdgen`), and it carries
//! the seed's schema and validation.

const CHECKED_IN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/crds/externalsources.source.flux.oddkin.co.yaml"
);

#[test]
fn the_checked_in_crd_is_the_generated_one() {
    let generated = externalsource_controller::crd::crd_yaml();
    if std::env::var_os("UPDATE_CRDS").is_some() {
        std::fs::write(CHECKED_IN, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
    assert!(
        checked_in == generated,
        "deploy/crds is stale: run `cargo run -p externalsource-controller --bin crdgen > {CHECKED_IN}`"
    );
}

#[test]
fn the_schema_holds_the_seeds_fields_and_rules() {
    let crd: serde_json::Value =
        serde_norway::from_str(&externalsource_controller::crd::crd_yaml()).unwrap();
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert!(version["subresources"]["status"].is_object());
    let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let required: Vec<&str> = spec["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        required.contains(&"interval") && required.contains(&"generator"),
        "{required:?}"
    );
    let p = &spec["properties"];
    assert_eq!(
        p["interval"]["pattern"],
        r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
    );
    assert_eq!(
        p["interval"]["x-kubernetes-validations"][0]["rule"],
        "duration(self) >= duration('1m')"
    );
    assert_eq!(p["maxRetries"]["default"], 3);
    assert_eq!(p["destinationPath"]["default"], "data");
    assert_eq!(
        p["generator"]["properties"]["type"]["enum"],
        serde_json::json!(["http"])
    );
    let http = &p["generator"]["properties"]["http"]["properties"];
    assert_eq!(http["method"]["default"], "GET");
    assert_eq!(http["url"]["format"], "uri");
    for field in [
        "headersSecretRef",
        "caBundleSecretRef",
        "insecureSkipVerify",
    ] {
        assert!(http[field].is_object(), "{field}");
    }
    let hook = &p["hooks"]["properties"]["postRequest"]["items"]["properties"];
    assert_eq!(
        hook["retryPolicy"]["enum"],
        serde_json::json!(["ignore", "retry", "fail"])
    );
    assert_eq!(hook["timeout"]["default"], "30s");
    let status = &version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"];
    assert_eq!(status["conditions"]["x-kubernetes-list-type"], "map");
    assert!(status["lastHandledETag"].is_object() && status["observedGeneration"].is_object());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Ready", "Status", "Age"]);
}
