use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, OriginalUri, Path, Request},
};
use http::request::Parts;
use keel_domain::{Id, listing::ListQuery};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::HttpError;

/// A JSON body decoded as sources-api-go's `NoUnknownFieldsBinder` does: unknown keys, an
/// empty body and a body that decodes to nothing are all 400s with its messages. `T` must be
/// `#[serde(deny_unknown_fields)]`.
#[derive(Debug, Clone)]
pub struct StrictJson<T>(pub T);

/// The Go text for a JSON type, for `cannot unmarshal` messages.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Whether a string or key anywhere in `value` holds NUL, which PostgreSQL text and jsonb
/// refuse: refused here as a 400 rather than by the database as a 500.
fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// Decodes a body. Public so services can decode bodies they have already read.
pub fn decode_strict<T: DeserializeOwned>(body: &[u8]) -> Result<T, HttpError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(HttpError::bad_request("no body"));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| HttpError::bad_request(format!("invalid JSON: {e}")))?;
    let Value::Object(map) = &value else {
        return Err(HttpError::bad_request(format!(
            "json: cannot unmarshal {} into an object",
            json_kind(&value)
        )));
    };
    if map.values().all(Value::is_null) {
        return Err(HttpError::bad_request("empty body"));
    }
    if holds_nul(&value) {
        return Err(HttpError::bad_request(
            "json: strings cannot contain NUL characters",
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        let message = e.to_string();
        // serde: "unknown field `x`, expected one of ..." -> Go: json: unknown field "x"
        match message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split_once('`'))
        {
            Some((field, _)) => HttpError::bad_request(format!("json: unknown field \"{field}\"")),
            None => HttpError::bad_request(format!("json: {message}")),
        }
    })
}

impl<S, T> FromRequest<S> for StrictJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
                HttpError::new(e.status(), "request body too large")
            } else {
                HttpError::bad_request(format!("cannot read body: {e}"))
            }
        })?;
        decode_strict(&body).map(Self)
    }
}

/// The one id in a route's path, validated with sources-api-go's messages.
#[derive(Debug, Clone, Copy)]
pub struct PathId(pub Id);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| HttpError::bad_request(e.body_text()))?;
        Id::parse(&raw).map(Self).map_err(HttpError::bad_request)
    }
}

/// A parsed list query plus the request path, for the collection links.
#[derive(Debug, Clone)]
pub struct ListParams {
    pub query: ListQuery,
    pub path: String,
}

impl ListParams {
    pub fn parse(path: &str, raw_query: Option<&str>) -> Result<Self, HttpError> {
        let pairs = form_urlencoded::parse(raw_query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
        let query = ListQuery::parse(pairs).map_err(HttpError::bad_request)?;
        Ok(Self {
            query,
            path: path.to_owned(),
        })
    }
}

impl ListParams {
    /// The same filters and sort, but always the first 100 rows: some sources-api-go
    /// sub-collections ignore `limit` and `offset`.
    pub fn fixed_first_page(&self) -> Self {
        let mut fixed = self.clone();
        fixed.query.limit = keel_domain::listing::DEFAULT_LIMIT;
        fixed.query.offset = 0;
        fixed
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ListParams {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Nested routers strip their prefix from `uri`; links need the full path.
        let OriginalUri(uri) = OriginalUri::from_request_parts(parts, state)
            .await
            .unwrap_or_else(|never| match never {});
        Self::parse(uri.path(), uri.query())
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[expect(dead_code)]
        name: Option<String>,
    }

    fn detail(body: &str) -> String {
        decode_strict::<Body>(body.as_bytes()).unwrap_err().detail
    }

    #[test]
    fn strict_json_messages() {
        assert_eq!(detail(""), "bad request: no body");
        assert_eq!(detail("{}"), "bad request: empty body");
        assert_eq!(detail(r#"{"name":null}"#), "bad request: empty body");
        assert_eq!(
            detail(r#"{"name":"a","nope":1}"#),
            "bad request: json: unknown field \"nope\""
        );
        assert!(detail("[1]").starts_with("bad request: json: cannot unmarshal array"));
        assert!(detail("{").starts_with("bad request: invalid JSON"));
        assert!(decode_strict::<Body>(br#"{"name":"a"}"#).is_ok());
    }
}

/// The list parameters, for OpenAPI documents only (handlers use [`ListParams`]).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQueryDoc {
    /// Page size (default 100).
    #[param(minimum = 1)]
    pub limit: Option<i64>,
    /// Rows to skip (default 0).
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    /// `<column> [asc|desc]`, repeatable; default `id asc`.
    pub sort_by: Option<Vec<String>>,
    /// `filter[<column>][<operation>]=<value>`; operations: eq, not_eq, gt, gte, lt, lte, nil,
    /// not_nil, contains, starts_with, ends_with, eq_i, not_eq_i, contains_i, starts_with_i,
    /// ends_with_i. Bare `<column>=<value>` parameters filter too.
    #[param(style = DeepObject, explode)]
    pub filter: Option<std::collections::HashMap<String, String>>,
}
