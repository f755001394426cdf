//! The hook-executor sidecar's wire (the original's): `POST /execute` with
//! `{command, args, timeout, env, stdin}` (stdin base64) answers `{stdout, stderr, exitCode}`
//! (base64); a command the sidecar's own whitelist refuses is 403, one that could not run
//! (not installed, timed out) 422, both with `{error}`.

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Output, Runner};
use crate::{
    crd::{HookEnv, HookSpec, RetryPolicy},
    domain::policy::HookFailure,
};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteRequest {
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default = "thirty")]
    pub timeout: String,
    #[serde(default)]
    pub env: Vec<HookEnv>,
    /// Base64.
    #[serde(default)]
    pub stdin: String,
}

fn thirty() -> String {
    "30s".to_owned()
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteResponse {
    /// Base64.
    pub stdout: String,
    /// Base64.
    pub stderr: String,
    pub exit_code: i32,
}

/// Asks the sidecar at `endpoint` to run `hook`.
pub async fn call(
    client: &reqwest::Client,
    endpoint: &str,
    hook: &HookSpec,
    input: Vec<u8>,
) -> Result<Output, HookFailure> {
    let failed = |reason: String| HookFailure::Failed {
        hook: hook.name.clone(),
        reason,
    };
    let request = ExecuteRequest {
        command: hook.command.clone(),
        args: hook.args.clone(),
        timeout: hook.timeout.clone(),
        env: hook.env.clone(),
        stdin: STANDARD.encode(input),
    };
    let response = client
        .post(format!("{endpoint}/execute"))
        .json(&request)
        .send()
        .await
        .map_err(|e| failed(format!("the hook executor: {e}")))?;
    let status = response.status();
    if status == reqwest::StatusCode::FORBIDDEN {
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        return Err(HookFailure::Denied {
            hook: hook.name.clone(),
            reason: format!(
                "the hook executor refused it: {}",
                body["error"].as_str().unwrap_or_default()
            ),
        });
    }
    if !status.is_success() {
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        return Err(failed(format!(
            "the hook executor answered {status}: {}",
            body["error"].as_str().unwrap_or_default()
        )));
    }
    let answer: ExecuteResponse = response
        .json()
        .await
        .map_err(|e| failed(format!("the hook executor's answer: {e}")))?;
    let decode = |s: &str| {
        STANDARD
            .decode(s)
            .map_err(|e| failed(format!("the hook executor's answer: {e}")))
    };
    Ok(Output {
        stdout: decode(&answer.stdout)?,
        stderr: decode(&answer.stderr)?,
        code: Some(answer.exit_code),
    })
}

async fn execute(State(runner): State<Runner>, Json(req): Json<ExecuteRequest>) -> Response {
    let error =
        |code: StatusCode, message: String| (code, Json(json!({"error": message}))).into_response();
    let Ok(stdin) = STANDARD.decode(&req.stdin) else {
        return error(StatusCode::BAD_REQUEST, "stdin is not base64".into());
    };
    let hook = HookSpec {
        name: req.command.clone(),
        command: req.command,
        args: req.args,
        timeout: req.timeout,
        retry_policy: RetryPolicy::Fail,
        env: req.env,
    };
    match runner.execute(&hook, stdin).await {
        Ok(out) => Json(ExecuteResponse {
            stdout: STANDARD.encode(out.stdout),
            stderr: STANDARD.encode(out.stderr),
            exit_code: out.code.unwrap_or(-1),
        })
        .into_response(),
        Err(HookFailure::Denied { reason, .. }) => {
            tracing::warn!(reason, "hook refused");
            error(StatusCode::FORBIDDEN, reason)
        }
        Err(HookFailure::Failed { reason, .. }) => error(StatusCode::UNPROCESSABLE_ENTITY, reason),
    }
}

/// The sidecar's routes: `POST /execute`, `GET /health`.
pub fn router(runner: Runner) -> Router {
    Router::new()
        .route("/execute", post(execute))
        .route("/health", get(|| async { "OK" }))
        .layer(DefaultBodyLimit::max(super::MAX_OUTPUT))
        .with_state(runner)
}
