//! The objects a database is made of on Kubernetes, and what is read back from them. Pure:
//! manifests in, manifests out.
//!
//! StatefulSet mode: a Secret (`<name>-credentials`, basic-auth), a Service, a StatefulSet
//! (3 replicas when highly available, the size's CPU and memory as requests and limits, a
//! volume claim per replica that goes with the StatefulSet) and, with backups, a PVC and a
//! CronJob dumping into it. CloudNativePG mode (PostgreSQL): the Secret, a `Cluster`
//! bootstrapped with it, and a `ScheduledBackup`. Every object carries the broker's labels;
//! the main one also the desired spec, so the cluster alone says what was asked.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::{
    domain::spec::{Engine, Spec},
    drivers::{Credentials, Names},
};

/// The field manager of every apply.
pub const MANAGER: &str = "keel-broker";
/// The annotation holding the desired spec (JSON).
pub const SPEC_ANNOTATION: &str = "kidp.io/desired-spec";

/// How databases are made on the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    StatefulSet,
    /// PostgreSQL as CloudNativePG `Cluster`s; other engines still as StatefulSets.
    CloudNativePg,
}

/// What the engine's image needs.
struct Image {
    repository: &'static str,
    data: &'static str,
    env: Vec<Value>,
    args: Vec<&'static str>,
    ready: &'static str,
    /// The dump a backup runs (`$OUT` is the file), with the client's environment set.
    dump: &'static str,
}

fn from_secret(var: &str, secret: &str, key: &str) -> Value {
    json!({"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
}

fn image(engine: Engine, version: &str, secret: &str) -> Image {
    let s = |var: &str, key: &str| from_secret(var, secret, key);
    match engine {
        Engine::Mysql => Image {
            // The catalogue's 10.x and 11.x are MariaDB's releases.
            repository: if version.starts_with("1") {
                "mariadb"
            } else {
                "mysql"
            },
            data: "/var/lib/mysql",
            env: vec![
                s("MYSQL_USER", "username"),
                s("MYSQL_PASSWORD", "password"),
                s("MYSQL_DATABASE", "database"),
                json!({"name": "MYSQL_RANDOM_ROOT_PASSWORD", "value": "yes"}),
            ],
            args: vec![],
            ready: "mysql -h 127.0.0.1 -u\"$MYSQL_USER\" -p\"$MYSQL_PASSWORD\" -e 'SELECT 1' || mariadb -h 127.0.0.1 -u\"$MYSQL_USER\" -p\"$MYSQL_PASSWORD\" -e 'SELECT 1'",
            dump: "MYSQL_PWD=\"$PASSWORD\" mysqldump -h \"$HOST\" -u \"$USERNAME\" \"$DATABASE\" > \"$OUT\"",
        },
        Engine::Redis => Image {
            repository: "redis",
            data: "/data",
            env: vec![s("REDIS_PASSWORD", "password")],
            args: vec!["--requirepass", "$(REDIS_PASSWORD)", "--appendonly", "yes"],
            ready: "REDISCLI_AUTH=\"$REDIS_PASSWORD\" redis-cli ping",
            dump: "REDISCLI_AUTH=\"$PASSWORD\" redis-cli -h \"$HOST\" --rdb \"$OUT\"",
        },
        Engine::Mongodb => Image {
            repository: "mongo",
            data: "/data/db",
            env: vec![
                s("MONGO_INITDB_ROOT_USERNAME", "username"),
                s("MONGO_INITDB_ROOT_PASSWORD", "password"),
                s("MONGO_INITDB_DATABASE", "database"),
            ],
            args: vec![],
            ready: "mongosh --quiet --eval 'db.adminCommand(\"ping\")'",
            dump: "mongodump --host \"$HOST\" -u \"$USERNAME\" -p \"$PASSWORD\" --archive=\"$OUT\"",
        },
        _ => Image {
            repository: "postgres",
            data: "/var/lib/postgresql/data",
            env: vec![
                s("POSTGRES_USER", "username"),
                s("POSTGRES_PASSWORD", "password"),
                s("POSTGRES_DB", "database"),
                json!({"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"}),
            ],
            args: vec![],
            ready: "pg_isready -h 127.0.0.1 -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\"",
            dump: "PGPASSWORD=\"$PASSWORD\" pg_dump -h \"$HOST\" -U \"$USERNAME\" -d \"$DATABASE\" -Fc -f \"$OUT\"",
        },
    }
}

/// The engines a Kubernetes target can make.
pub fn serves(engine: Engine) -> bool {
    matches!(
        engine,
        Engine::Postgresql | Engine::Mysql | Engine::Redis | Engine::Mongodb
    )
}

pub fn secret_name(names: &Names) -> String {
    format!("{}-credentials", names.name)
}

pub fn labels(names: &Names, engine: Engine) -> Value {
    json!({
        "app.kubernetes.io/name": engine.as_str(),
        "app.kubernetes.io/instance": names.name,
        "app.kubernetes.io/managed-by": MANAGER,
        "kidp.io/deployment-id": names.deployment,
    })
}

fn metadata(names: &Names, engine: Engine, name: &str) -> Value {
    json!({"name": name, "namespace": names.namespace, "labels": labels(names, engine)})
}

/// The size's CPU and memory, as requests and limits.
pub fn resources(spec: &Spec) -> Value {
    let (cpu, memory) = spec.size.cpu_and_memory_gib();
    let amounts = json!({"cpu": cpu.to_string(), "memory": format!("{memory}Gi")});
    json!({"requests": amounts, "limits": amounts})
}

/// How resources are compared for drift: `cpu=1, memory=2Gi`.
pub fn resources_text(resources: &Value) -> Option<String> {
    let limits = resources.get("limits")?;
    Some(format!(
        "cpu={}, memory={}",
        limits["cpu"].as_str()?,
        limits["memory"].as_str()?
    ))
}

/// The host clients connect to: the Service's (CloudNativePG: the primary's) cluster name.
pub fn host(names: &Names, engine: Engine, mode: Mode) -> String {
    let service = if cnpg(engine, mode) {
        format!("{}-rw", names.name)
    } else {
        names.name.clone()
    };
    format!("{service}.{}.svc.cluster.local", names.namespace)
}

pub fn cnpg(engine: Engine, mode: Mode) -> bool {
    mode == Mode::CloudNativePg && engine == Engine::Postgresql
}

/// Days of dumps a backup keeps: the spec's retention (`7d`, `30d`) or 7.
fn retention_days(spec: &Spec) -> u32 {
    spec.backup
        .retention
        .as_deref()
        .and_then(|r| r.strip_suffix('d'))
        .and_then(|d| d.parse().ok())
        .unwrap_or(7)
}

fn schedule(spec: &Spec) -> String {
    spec.backup
        .schedule
        .clone()
        .unwrap_or_else(|| "0 2 * * *".to_owned())
}

/// Every object of the database, in the order they are applied (what others refer to first).
pub fn manifests(
    names: &Names,
    spec: &Spec,
    credentials: &Credentials,
    mode: Mode,
    storage_class: Option<&str>,
) -> Vec<Value> {
    let engine = spec.engine;
    let port = engine.default_port();
    let secret = secret_name(names);
    let host = host(names, engine, mode);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut data = json!({
        "username": b64(&credentials.username),
        "password": b64(&credentials.password),
        "host": b64(&host),
        "port": b64(&port.to_string()),
    });
    if let Some(db) = &credentials.database {
        data["database"] = json!(b64(db));
    }
    let mut out = vec![json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": metadata(names, engine, &secret),
        "type": "kubernetes.io/basic-auth", "data": data,
    })];
    let mut main = metadata(names, engine, &names.name);
    main["annotations"] = json!({
        SPEC_ANNOTATION: serde_json::to_string(spec).expect("a spec serializes"),
    });
    let replicas = if spec.high_availability { 3 } else { 1 };
    let storage = format!("{}Gi", spec.size.storage_gib());
    if cnpg(engine, mode) {
        let mut storage_spec = json!({"size": storage});
        if let Some(class) = storage_class {
            storage_spec["storageClass"] = json!(class);
        }
        out.push(json!({
            "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": main,
            "spec": {
                "instances": replicas,
                "imageName": format!("ghcr.io/cloudnative-pg/postgresql:{}", spec.version),
                "storage": storage_spec,
                "resources": resources(spec),
                "bootstrap": {"initdb": {
                    "database": credentials.database, "owner": credentials.username,
                    "secret": {"name": secret},
                }},
            },
        }));
        if spec.backup.enabled {
            out.push(json!({
                "apiVersion": "postgresql.cnpg.io/v1", "kind": "ScheduledBackup",
                "metadata": metadata(names, engine, &format!("{}-backup", names.name)),
                "spec": {
                    // CloudNativePG's schedules have seconds first.
                    "schedule": format!("0 {}", schedule(spec)),
                    "cluster": {"name": names.name},
                    "backupOwnerReference": "self",
                    "method": "volumeSnapshot",
                },
            }));
        }
        return out;
    }
    let img = image(engine, &spec.version, &secret);
    let selector = json!({
        "app.kubernetes.io/name": engine.as_str(),
        "app.kubernetes.io/instance": names.name,
    });
    out.push(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": metadata(names, engine, &names.name),
        "spec": {"selector": selector, "ports": [{"name": engine.as_str(), "port": port, "targetPort": port}]},
    }));
    let mut claim = json!({
        "metadata": {"name": "data", "labels": selector},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}},
    });
    if let Some(class) = storage_class {
        claim["spec"]["storageClassName"] = json!(class);
    }
    let mut container = json!({
        "name": engine.as_str(),
        "image": format!("{}:{}", img.repository, spec.version),
        "ports": [{"name": engine.as_str(), "containerPort": port}],
        "env": img.env,
        "resources": resources(spec),
        "volumeMounts": [{"name": "data", "mountPath": img.data}],
        "readinessProbe": {"exec": {"command": ["sh", "-c", img.ready]}, "periodSeconds": 5},
    });
    if !img.args.is_empty() {
        container["args"] = json!(img.args);
    }
    out.push(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": main,
        "spec": {
            "replicas": replicas,
            "serviceName": names.name,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": labels(names, engine)}, "spec": {"containers": [container]}},
            "volumeClaimTemplates": [claim],
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Retain"},
        },
    }));
    if spec.backup.enabled {
        let backups = format!("{}-backups", names.name);
        let mut pvc = json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": metadata(names, engine, &backups),
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}},
        });
        if let Some(class) = storage_class {
            pvc["spec"]["storageClassName"] = json!(class);
        }
        out.push(pvc);
        let script = format!(
            "OUT=/backups/{name}-$(date +%Y%m%dT%H%M%S).dump && {dump} && find /backups -name '{name}-*.dump' -mtime +{days} -delete",
            name = names.name,
            dump = img.dump,
            days = retention_days(spec),
        );
        let mut env = vec![
            from_secret("USERNAME", &secret, "username"),
            from_secret("PASSWORD", &secret, "password"),
            json!({"name": "HOST", "value": names.name}),
        ];
        if credentials.database.is_some() {
            env.push(from_secret("DATABASE", &secret, "database"));
        }
        out.push(json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": metadata(names, engine, &format!("{}-backup", names.name)),
            "spec": {
                "schedule": schedule(spec),
                "concurrencyPolicy": "Forbid",
                "jobTemplate": {"spec": {"backoffLimit": 2, "template": {
                    "metadata": {"labels": labels(names, engine)},
                    "spec": {
                        "restartPolicy": "OnFailure",
                        "containers": [{
                            "name": "backup",
                            "image": format!("{}:{}", img.repository, spec.version),
                            "command": ["sh", "-c", script],
                            "env": env,
                            "volumeMounts": [{"name": "backups", "mountPath": "/backups"}],
                        }],
                        "volumes": [{"name": "backups", "persistentVolumeClaim": {"claimName": backups}}],
                    },
                }}},
            },
        }));
    }
    out
}

/// What the main object (StatefulSet or Cluster) says of the database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// The image's tag (`16`, `16.4`).
    pub version: Option<String>,
    pub replicas: Option<u32>,
    pub ready: u32,
    pub resources: Option<String>,
    /// Why it is not serving yet (`1/3 replicas ready`), `None` when every replica is.
    pub waiting: Option<String>,
}

/// The tag of `repository[:port]/name:tag[@digest]`.
fn tag(image: &str) -> Option<String> {
    let named = image.split('@').next().unwrap_or(image);
    let (_, tag) = named.rsplit_once(':')?;
    (!tag.contains('/')).then(|| tag.to_owned())
}

fn count(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok())
}

/// Reads a StatefulSet or a CloudNativePG Cluster.
pub fn seen(main: &Value) -> Seen {
    let spec = &main["spec"];
    let status = &main["status"];
    let (image, replicas, ready, resources, current) = if main["kind"] == "Cluster" {
        (
            spec["imageName"].as_str(),
            count(&spec["instances"]),
            count(&status["readyInstances"]).unwrap_or(0),
            &spec["resources"],
            true,
        )
    } else {
        let container = &spec["template"]["spec"]["containers"][0];
        let generation = main["metadata"]["generation"].as_i64();
        (
            container["image"].as_str(),
            count(&spec["replicas"]),
            count(&status["readyReplicas"]).unwrap_or(0),
            &container["resources"],
            status["observedGeneration"].as_i64() >= generation,
        )
    };
    let want = replicas.unwrap_or(1);
    let waiting = if !current {
        Some("the change is not rolled out yet".to_owned())
    } else if ready < want {
        Some(format!("{ready}/{want} replicas ready"))
    } else {
        None
    };
    Seen {
        version: image.and_then(tag),
        replicas,
        ready,
        resources: resources_text(resources),
        waiting,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::spec::{ResourceType, SpecRequest};

    fn spec(engine: &str, version: &str) -> Spec {
        SpecRequest {
            engine: Some(engine.into()),
            version: Some(version.into()),
            ..SpecRequest::default()
        }
        .check(ResourceType::Database)
        .unwrap()
    }

    fn kinds(m: &[Value]) -> Vec<&str> {
        m.iter().map(|o| o["kind"].as_str().unwrap()).collect()
    }

    #[test]
    fn each_engine_gets_its_image_and_no_backup_objects_unless_asked() {
        let names = Names::of("deploy-1", "team", "db");
        let creds = Credentials::generate("db", Some("db"));
        let table = [
            ("postgresql", "15", "postgres:15"),
            ("mysql", "8.0", "mysql:8.0"),
            ("mysql", "10.11", "mariadb:10.11"),
            ("redis", "7.2", "redis:7.2"),
            ("mongodb", "7.0", "mongo:7.0"),
        ];
        for (engine, version, image) in table {
            let m = manifests(
                &names,
                &spec(engine, version),
                &creds,
                Mode::CloudNativePg,
                None,
            );
            let set = m.iter().find(|o| o["kind"] == "StatefulSet");
            if engine == "postgresql" {
                assert_eq!(kinds(&m), ["Secret", "Cluster"]);
                continue;
            }
            let set = set.unwrap_or_else(|| panic!("{engine}: {m:?}"));
            assert_eq!(kinds(&m), ["Secret", "Service", "StatefulSet"], "{engine}");
            let container = &set["spec"]["template"]["spec"]["containers"][0];
            assert_eq!(container["image"], image);
            assert_eq!(
                container["ports"][0]["containerPort"],
                spec(engine, version).engine.default_port()
            );
            assert!(
                set["spec"]["volumeClaimTemplates"][0]["spec"]
                    .get("storageClassName")
                    .is_none()
            );
        }
    }

    #[test]
    fn status_read_back() {
        let set = |replicas: u32, ready: Option<u32>, generation: i64, observed: i64| {
            json!({"kind": "StatefulSet", "metadata": {"generation": generation},
                "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"image": "postgres:15.4",
                    "resources": {"limits": {"cpu": "1", "memory": "2Gi"}}}]}}},
                "status": {"readyReplicas": ready, "observedGeneration": observed}})
        };
        let all = seen(&set(3, Some(3), 2, 2));
        assert_eq!(
            all,
            Seen {
                version: Some("15.4".into()),
                replicas: Some(3),
                ready: 3,
                resources: Some("cpu=1, memory=2Gi".into()),
                waiting: None,
            }
        );
        assert_eq!(
            seen(&set(3, Some(1), 2, 2)).waiting.as_deref(),
            Some("1/3 replicas ready")
        );
        assert_eq!(
            seen(&set(1, None, 1, 1)).waiting.as_deref(),
            Some("0/1 replicas ready")
        );
        assert_eq!(
            seen(&set(3, Some(3), 3, 2)).waiting.as_deref(),
            Some("the change is not rolled out yet")
        );
        let cluster = json!({"kind": "Cluster", "spec": {"instances": 3,
            "imageName": "ghcr.io/cloudnative-pg/postgresql:16.2@sha256:abc"}, "status": {"readyInstances": 2}});
        let c = seen(&cluster);
        assert_eq!((c.version.as_deref(), c.ready), (Some("16.2"), 2));
        assert_eq!(c.waiting.as_deref(), Some("2/3 replicas ready"));
        assert_eq!(
            tag("registry:5000/postgres"),
            None,
            "a registry port is not a tag"
        );
    }
}
