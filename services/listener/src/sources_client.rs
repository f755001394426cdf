//! The Sources REST API client: the calls Koku's listener makes, under `SOURCES_API_PREFIX`
//! (default `/api/sources/v1.0`, so it works unchanged against sources-api-go), with the PSK
//! and the source's identity headers, a timeout per call and retries of transient failures.

use std::time::Duration;

use backon::Retryable as _;
use base64::{Engine as _, engine::general_purpose::STANDARD};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::domain::{Object, StatusBody};

/// Koku's `SOURCES_PROBE_HEADER`: the identity of start-up lookups that have no source.
fn probe_identity() -> String {
    STANDARD.encode(json!({"identity": {"account_number": "12345", "org_id": "12345"}}).to_string())
}

pub const COST_MANAGEMENT_APP_TYPE: &str = "/insights/platform/cost-management";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A 404 whose body says `source not found`: the source is gone.
    #[error("source not found")]
    SourceNotFound,
    #[error("sources-api answered {status} to {what}: {body}")]
    Status {
        what: String,
        status: u16,
        body: String,
    },
    #[error("cannot reach sources-api for {what}: {error}")]
    Transport { what: String, error: String },
    #[error("unexpected answer from sources-api to {what}: {detail}")]
    Decode { what: String, detail: String },
}

/// Who a call is made for: the identity the source's events carried.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub identity: &'a str,
    pub account_id: Option<&'a str>,
    pub org_id: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceDetails {
    pub name: String,
    pub source_type_id: i64,
    pub uid: Option<String>,
    pub source_ref: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Application {
    pub id: i64,
    pub extra: Object,
    pub paused: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Authentication {
    pub id: i64,
    pub username: Option<String>,
    pub extra: Object,
}

#[derive(Debug, Clone)]
pub struct SourcesClient {
    http: reqwest::Client,
    base: String,
    internal: String,
    psk: Option<String>,
    attempts: u32,
}

/// An id as sources-api sends it: a string (REST) or a number.
fn id(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn text(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

fn object(value: &Value) -> Object {
    value.as_object().cloned().unwrap_or_default()
}

impl SourcesClient {
    /// `url` is sources-api's address (`http://host:port`); `prefix` and `internal_prefix`
    /// are the public and internal API paths.
    /// `http` is the client to call through (the kit's, with the deployment's CAs).
    pub fn new(
        url: &str,
        prefix: &str,
        internal_prefix: &str,
        psk: Option<String>,
        http: reqwest::Client,
    ) -> anyhow::Result<Self> {
        let url = url.trim_end_matches('/');
        Ok(Self {
            http,
            base: format!("{url}{}", prefix.trim_end_matches('/')),
            internal: format!("{url}{}", internal_prefix.trim_end_matches('/')),
            psk: psk.filter(|p| !p.is_empty()),
            attempts: 3,
        })
    }

    /// Sends a request, retrying transport errors, 429 and 5xx answers twice with a short
    /// backoff; the caller's own retry (the work queue) covers longer outages.
    async fn send(
        &self,
        method: Method,
        url: &str,
        caller: Caller<'_>,
        query: &[(&str, String)],
        body: Option<&Value>,
        what: &str,
    ) -> Result<(StatusCode, String), ClientError> {
        // A 5xx or 429 counts as a failed attempt too, but is what the caller sees once the
        // attempts are used up.
        enum Failed {
            Status(StatusCode, String),
            Transport(String),
        }
        let once = || async {
            let mut request = self
                .http
                .request(method.clone(), url)
                .query(query)
                .header("x-rh-identity", caller.identity);
            if let Some(psk) = &self.psk {
                request = request.header("x-rh-sources-psk", psk);
            }
            if let Some(account) = caller.account_id {
                request = request.header("x-rh-sources-account-number", account);
            }
            if let Some(org) = caller.org_id {
                request = request.header("x-rh-sources-org-id", org);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request
                .send()
                .await
                .map_err(|e| Failed::Transport(e.to_string()))?;
            let status = response.status();
            let text = response
                .text()
                .await
                .map_err(|e| Failed::Transport(e.to_string()))?;
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                return Err(Failed::Status(status, text));
            }
            Ok((status, text))
        };
        let policy =
            keel_service::retry::backoff(Duration::from_millis(100), Duration::from_secs(2))
                .with_max_times(self.attempts.saturating_sub(1) as usize);
        let outcome = once
            .retry(policy)
            .sleep(tokio::time::sleep)
            .notify(|_, _| tracing::debug!(what, "sources-api call failed; retrying"))
            .await;
        match outcome {
            Ok(answer) => Ok(answer),
            Err(Failed::Status(status, text)) => Ok((status, text)),
            Err(Failed::Transport(error)) => Err(ClientError::Transport {
                what: what.to_owned(),
                error,
            }),
        }
    }

    /// A GET that must answer 200 with JSON.
    async fn get(
        &self,
        url: &str,
        caller: Caller<'_>,
        query: &[(&str, String)],
        what: &str,
    ) -> Result<Value, ClientError> {
        let (status, body) = self
            .send(Method::GET, url, caller, query, None, what)
            .await?;
        if status == StatusCode::NOT_FOUND && body.to_lowercase().contains("source not found") {
            return Err(ClientError::SourceNotFound);
        }
        if status != StatusCode::OK {
            return Err(ClientError::Status {
                what: what.to_owned(),
                status: status.as_u16(),
                body: body.chars().take(300).collect(),
            });
        }
        serde_json::from_str(&body).map_err(|e| ClientError::Decode {
            what: what.to_owned(),
            detail: e.to_string(),
        })
    }

    /// The first item of a collection's `data`, if any.
    async fn first(
        &self,
        path: &str,
        caller: Caller<'_>,
        query: &[(&str, String)],
        what: &str,
    ) -> Result<Option<Value>, ClientError> {
        let url = format!("{}{path}", self.base);
        let page = self.get(&url, caller, query, what).await?;
        Ok(page["data"].as_array().and_then(|d| d.first()).cloned())
    }

    /// The cost-management application type id, looked up by name with Koku's probe
    /// identity; exactly one must match.
    pub async fn cost_management_type_id(&self) -> Result<i64, ClientError> {
        let identity = probe_identity();
        let caller = Caller {
            identity: &identity,
            account_id: None,
            org_id: None,
        };
        let what = "the cost-management application type";
        let url = format!("{}/application_types", self.base);
        let page = self
            .get(
                &url,
                caller,
                &[("filter[name]", COST_MANAGEMENT_APP_TYPE.to_owned())],
                what,
            )
            .await?;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        match data.as_slice() {
            [one] => id(&one["id"]).ok_or_else(|| ClientError::Decode {
                what: what.to_owned(),
                detail: "no id".to_owned(),
            }),
            other => Err(ClientError::Decode {
                what: what.to_owned(),
                detail: format!("{} application types matched, expected 1", other.len()),
            }),
        }
    }

    /// `GET /sources/{id}`: name, type, uid and `source_ref`.
    pub async fn source(
        &self,
        caller: Caller<'_>,
        source_id: i64,
    ) -> Result<SourceDetails, ClientError> {
        let what = format!("source {source_id}");
        let url = format!("{}/sources/{source_id}", self.base);
        let s = self.get(&url, caller, &[], &what).await?;
        Ok(SourceDetails {
            name: text(&s["name"]).unwrap_or_default(),
            source_type_id: id(&s["source_type_id"]).ok_or_else(|| ClientError::Decode {
                what: what.clone(),
                detail: "no source_type_id".to_owned(),
            })?,
            uid: text(&s["uid"]),
            source_ref: text(&s["source_ref"]),
        })
    }

    /// `GET /source_types?filter[id]=`: the type's name.
    pub async fn source_type_name(
        &self,
        caller: Caller<'_>,
        type_id: i64,
    ) -> Result<Option<String>, ClientError> {
        let found = self
            .first(
                "/source_types",
                caller,
                &[("filter[id]", type_id.to_string())],
                "source type",
            )
            .await?;
        Ok(found.and_then(|t| text(&t["name"])))
    }

    /// The source's cost-management application: id, `extra` and whether it is paused.
    pub async fn cost_application(
        &self,
        caller: Caller<'_>,
        source_id: i64,
        cost_type_id: i64,
    ) -> Result<Option<Application>, ClientError> {
        let query = [
            ("filter[source_id]", source_id.to_string()),
            ("filter[application_type_id]", cost_type_id.to_string()),
        ];
        let found = self
            .first(
                "/applications",
                caller,
                &query,
                "the cost-management application",
            )
            .await?;
        Ok(found.and_then(|a| {
            Some(Application {
                id: id(&a["id"])?,
                extra: object(&a["extra"]),
                paused: !a["paused_at"].is_null(),
            })
        }))
    }

    /// The source's authentications of `authtype` (all of them when `None`), with their
    /// authtypes, in sources-api's order.
    pub async fn authentications(
        &self,
        caller: Caller<'_>,
        source_id: i64,
        authtype: Option<&str>,
    ) -> Result<Vec<(String, Authentication)>, ClientError> {
        let mut query = vec![("filter[source_id]", source_id.to_string())];
        if let Some(authtype) = authtype {
            query.push(("filter[authtype]", authtype.to_owned()));
        }
        let url = format!("{}/authentications", self.base);
        let page = self
            .get(&url, caller, &query, "the authentications")
            .await?;
        Ok(page["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| {
                Some((
                    text(&a["authtype"]).unwrap_or_default(),
                    Authentication {
                        id: id(&a["id"])?,
                        username: text(&a["username"]),
                        extra: object(&a["extra"]),
                    },
                ))
            })
            .collect())
    }

    /// The authentication's password, from the internal API.
    pub async fn password(
        &self,
        caller: Caller<'_>,
        auth_id: i64,
    ) -> Result<Option<String>, ClientError> {
        let url = format!("{}/authentications/{auth_id}", self.internal);
        let a = self
            .get(
                &url,
                caller,
                &[("expose_encrypted_attribute[]", "password".to_owned())],
                "the authentication password",
            )
            .await?;
        Ok(text(&a["password"]))
    }

    /// `PATCH /applications/{id}` with the availability status. A 404 (the application went
    /// away meanwhile) is tolerated, as Koku does.
    pub async fn set_status(
        &self,
        caller: Caller<'_>,
        app_id: i64,
        body: &StatusBody,
    ) -> Result<(), ClientError> {
        let url = format!("{}/applications/{app_id}", self.base);
        let what = format!("the status of application {app_id}");
        let body = serde_json::to_value(body).unwrap_or_default();
        let (status, text) = self
            .send(Method::PATCH, &url, caller, &[], Some(&body), &what)
            .await?;
        if status.is_success() {
            return Ok(());
        }
        if status == StatusCode::NOT_FOUND {
            tracing::info!(app_id, "application gone before its status was sent");
            return Ok(());
        }
        Err(ClientError::Status {
            what,
            status: status.as_u16(),
            body: text.chars().take(300).collect(),
        })
    }

    /// A cheap call that proves sources-api answers, for `/readiness`.
    pub async fn ping(&self) -> Result<(), ClientError> {
        self.cost_management_type_id().await.map(|_| ())
    }
}
