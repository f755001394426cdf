use serde_json::json;

use super::*;

fn obj(v: Value) -> Object {
    v.as_object().cloned().unwrap()
}

#[test]
fn debug_output_never_shows_the_password() {
    let parts = CredentialParts {
        username: Some("client-id".into()),
        password: Some("hunter2".into()),
        ..CredentialParts::default()
    };
    let printed = format!("{parts:?}");
    assert!(printed.contains("client-id") && printed.contains("<redacted>"));
    assert!(!printed.contains("hunter2"), "{printed}");
}

#[test]
fn source_type_names_map_to_koku_types_and_back() {
    let pairs = [
        ("amazon", "AWS"),
        ("amazon-local", "AWS-local"),
        ("azure", "Azure"),
        ("azure-local", "Azure-local"),
        ("google", "GCP"),
        ("google-local", "GCP-local"),
        ("openshift", "OCP"),
    ];
    for (name, stored) in pairs {
        let ty = ProviderType::from_source_type_name(name).unwrap();
        assert_eq!(ty.as_str(), stored);
        assert_eq!(ProviderType::parse(stored), Some(ty));
    }
    assert_eq!(ProviderType::from_source_type_name("satellite"), None);
    assert_eq!(ProviderType::parse(""), None);
}

#[test]
fn aws_role_arn_is_the_username_or_else_the_password() {
    let mut parts = CredentialParts {
        username: Some("arn:aws:iam::111111111111:role/Cost".into()),
        auth_extra: obj(json!({"external_id": "ext"})),
        ..Default::default()
    };
    assert_eq!(
        Value::Object(credentials(ProviderType::Aws, &parts)),
        json!({"role_arn": "arn:aws:iam::111111111111:role/Cost", "external_id": "ext"})
    );
    parts.username = Some(String::new());
    parts.password = Some("arn:aws:iam::222222222222:role/P".into());
    parts.auth_extra = Object::new();
    assert_eq!(
        Value::Object(credentials(ProviderType::AwsLocal, &parts)),
        json!({"role_arn": "arn:aws:iam::222222222222:role/P", "external_id": null})
    );
}

#[test]
fn azure_credentials_come_from_the_authentication_the_password_and_the_application() {
    let parts = CredentialParts {
        username: Some("client".into()),
        password: Some("secret".into()),
        auth_extra: obj(json!({"azure": {"tenant_id": "tenant"}})),
        app_extra: obj(json!({"subscription_id": "sub", "resource_group": "rg"})),
        source_ref: None,
    };
    assert_eq!(
        Value::Object(credentials(ProviderType::AzureLocal, &parts)),
        json!({"client_id": "client", "client_secret": "secret", "subscription_id": "sub", "tenant_id": "tenant"})
    );
}

#[test]
fn ocp_and_gcp_credentials() {
    let parts = CredentialParts {
        username: Some("my-proj".into()),
        source_ref: Some("cluster-1".into()),
        ..Default::default()
    };
    assert_eq!(
        Value::Object(credentials(ProviderType::Ocp, &parts)),
        json!({"cluster_id": "cluster-1"})
    );
    assert_eq!(
        Value::Object(credentials(ProviderType::Gcp, &parts)),
        json!({"project_id": "my-proj"})
    );
    assert!(credentials(ProviderType::Ocp, &CredentialParts::default()).is_empty());
}

#[test]
fn data_sources_need_their_required_keys_and_copy_the_optional_ones() {
    let extra = obj(json!({"bucket": "b", "bucket_region": "me-south-1", "other": 1}));
    assert_eq!(
        Value::Object(data_source(ProviderType::Aws, &extra).unwrap()),
        json!({"bucket": "b", "bucket_region": "me-south-1"})
    );
    // Where the report is in the bucket, for ingestion.
    let extra = obj(json!({"bucket": "b", "report_prefix": "cur/", "report_name": "daily"}));
    assert_eq!(
        Value::Object(data_source(ProviderType::Aws, &extra).unwrap()),
        json!({"bucket": "b", "report_prefix": "cur/", "report_name": "daily"})
    );
    assert_eq!(
        data_source(ProviderType::Aws, &obj(json!({"bucket": ""}))),
        None
    );
    assert_eq!(
        data_source(ProviderType::Azure, &obj(json!({"resource_group": "rg"}))),
        None
    );
    assert_eq!(
        Value::Object(
            data_source(
                ProviderType::Azure,
                &obj(json!({"resource_group": "rg", "storage_account": "sa", "scope": "s"}))
            )
            .unwrap()
        ),
        json!({"resource_group": "rg", "storage_account": "sa", "scope": "s"})
    );
    assert_eq!(
        data_source(ProviderType::Gcp, &Object::new()),
        None,
        "GCP with no dataset or bucket is not saved"
    );
    assert_eq!(
        Value::Object(data_source(ProviderType::Gcp, &obj(json!({"dataset": "ds"}))).unwrap()),
        json!({"dataset": "ds"})
    );
    assert_eq!(
        data_source(ProviderType::Ocp, &extra),
        Some(Object::new()),
        "OCP's billing source stays empty"
    );
}

#[test]
fn readiness_rules_per_type() {
    let aws = obj(json!({"role_arn": "arn", "external_id": null}));
    let bucket = obj(json!({"bucket": "b"}));
    assert!(settings_ready(ProviderType::Aws, &aws, Some(&bucket)));
    assert!(settings_ready(ProviderType::AwsLocal, &aws, Some(&bucket)));
    assert!(!settings_ready(ProviderType::Aws, &aws, None));
    assert!(!settings_ready(
        ProviderType::Aws,
        &Object::new(),
        Some(&bucket)
    ));

    let azure = obj(
        json!({"client_id": "c", "client_secret": "s", "subscription_id": "sub", "tenant_id": "t"}),
    );
    let azure_ds = obj(json!({"resource_group": "rg", "storage_account": "sa"}));
    assert!(settings_ready(ProviderType::Azure, &azure, Some(&azure_ds)));
    assert!(settings_ready(
        ProviderType::AzureLocal,
        &azure,
        Some(&azure_ds)
    ));
    let mut three = azure.clone();
    three.remove("tenant_id");
    assert!(
        !settings_ready(ProviderType::Azure, &three, Some(&azure_ds)),
        "exactly the four keys"
    );
    let mut five = azure.clone();
    five.insert("extra".into(), json!("x"));
    assert!(
        !settings_ready(ProviderType::Azure, &five, Some(&azure_ds)),
        "exactly the four keys"
    );
    assert!(!settings_ready(
        ProviderType::Azure,
        &azure,
        Some(&obj(json!({"resource_group": "rg"})))
    ));

    let gcp = obj(json!({"project_id": "p"}));
    assert!(settings_ready(
        ProviderType::Gcp,
        &gcp,
        Some(&obj(json!({"dataset": "d"})))
    ));
    assert!(!settings_ready(ProviderType::GcpLocal, &gcp, None));

    let ocp = obj(json!({"cluster_id": "c"}));
    assert!(
        settings_ready(ProviderType::Ocp, &ocp, Some(&Object::new())),
        "no billing source needed"
    );
    assert!(!settings_ready(ProviderType::Ocp, &Object::new(), None));
}

#[test]
fn validation_catches_malformed_role_arns_and_long_prefixes() {
    let ok = obj(
        json!({"role_arn": "arn:aws:iam::111111111111:role/CostManagement", "external_id": null}),
    );
    let ds = obj(json!({"bucket": "b"}));
    assert_eq!(validate(ProviderType::Aws, &ok, &ds), Ok(()));
    let gov = obj(json!({"role_arn": "arn:aws-us-gov:iam::111111111111:role/a/b"}));
    assert_eq!(validate(ProviderType::Aws, &gov, &ds), Ok(()));
    for bad in [
        "arn:aws:iam::1111:role/x",
        "not-an-arn",
        "arn:aws:iam::111111111111:user/x",
    ] {
        let problem = validate(ProviderType::Aws, &obj(json!({"role_arn": bad})), &ds).unwrap_err();
        assert_eq!(problem.message, AWS_ROLE_ARN_MESSAGE, "{bad}");
    }
    let gcp = obj(json!({"project_id": "p"}));
    let long = obj(json!({"dataset": "d", "report_prefix": "x".repeat(65)}));
    assert!(validate(ProviderType::Gcp, &gcp, &long).is_err());
    let short = obj(json!({"dataset": "d", "report_prefix": "x".repeat(64)}));
    assert_eq!(validate(ProviderType::Gcp, &gcp, &short), Ok(()));
    let ocp = obj(json!({"cluster_id": "c"}));
    assert!(
        validate(ProviderType::Ocp, &ocp, &ds).is_err(),
        "OCP takes no data source"
    );
    assert_eq!(validate(ProviderType::Ocp, &ocp, &Object::new()), Ok(()));
}
