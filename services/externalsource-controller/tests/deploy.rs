//! The deployment manifest speaks the controller's settings: every variable it sets is one
//! the controller (or its sidecar) reads, and its whitelist parses.

use clap::CommandFactory as _;
use externalsource_controller::{Config, domain::whitelist::Whitelist};
use serde::Deserialize as _;

const MANIFEST: &str = include_str!("../../../deploy/externalsource-controller.yaml");

fn documents() -> Vec<serde_json::Value> {
    serde_norway::Deserializer::from_str(MANIFEST)
        .map(|d| serde_json::Value::deserialize(d).unwrap())
        .collect()
}

#[test]
fn the_manifest_sets_only_known_settings_and_a_whitelist_that_parses() {
    let known: Vec<String> = Config::command()
        .get_arguments()
        .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
        .collect();
    let docs = documents();
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    let controller = containers
        .iter()
        .find(|c| c["name"] == "controller")
        .unwrap();
    for env in controller["env"].as_array().unwrap() {
        let name = env["name"].as_str().unwrap();
        assert!(
            known.iter().any(|k| k == name) || name == "POD_NAME",
            "{name} is not a setting"
        );
    }
    let sidecar = containers
        .iter()
        .find(|c| c["name"] == "hook-executor")
        .unwrap();
    for env in sidecar["env"].as_array().unwrap() {
        assert!(
            ["HOOK_WHITELIST_PATH", "HOOK_EXECUTOR_ADDR", "HOOK_PATH"]
                .contains(&env["name"].as_str().unwrap())
        );
    }
    let map = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    let whitelist = Whitelist::parse(map["data"]["whitelist.yaml"].as_str().unwrap()).unwrap();
    assert!(
        whitelist
            .check("jq", &["-c".into(), ".items[0]".into()], &[])
            .is_ok()
    );
    assert!(whitelist.check("sh", &[], &[]).is_err());
    let role = docs.iter().find(|d| d["kind"] == "ClusterRole").unwrap();
    let resources: Vec<&str> = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap())
        })
        .collect();
    for needed in [
        "externalsources",
        "externalsources/status",
        "externalartifacts",
        "externalartifacts/status",
        "secrets",
        "events",
    ] {
        assert!(resources.contains(&needed), "the role lacks {needed}");
    }
}
