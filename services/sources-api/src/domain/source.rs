use chrono::{DateTime, NaiveDateTime, Utc};
use keel_domain::AvailabilityStatus;
use serde_json::Value;

use super::parse_flexible_id;

/// How a source's applications get created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppCreationWorkflow {
    ManualConfiguration,
    /// Superkey: applications are created by the superkey worker.
    AccountAuthorization,
}

impl AppCreationWorkflow {
    /// Anything but the two known values means manual configuration, as in sources-api-go.
    pub fn parse_lenient(raw: Option<&str>) -> Self {
        match raw {
            Some("account_authorization") => Self::AccountAuthorization,
            _ => Self::ManualConfiguration,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ManualConfiguration => "manual_configuration",
            Self::AccountAuthorization => "account_authorization",
        }
    }
}

/// Reasons a source cannot be created; rendered after `Validation failed: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NewSourceError {
    #[error("name cannot be empty")]
    NameEmpty,
    #[error("invalid status")]
    InvalidStatus,
    #[error("source type id cannot be empty")]
    TypeIdMissing,
    #[error("the source type id is not valid")]
    TypeIdInvalid,
    #[error("source type id must be greater than 0")]
    TypeIdNotPositive,
}

/// A source to create. The uid is always generated: a client-sent one is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSource {
    pub name: String,
    pub version: Option<String>,
    pub imported: Option<String>,
    pub source_ref: Option<String>,
    pub app_creation_workflow: AppCreationWorkflow,
    pub availability_status: AvailabilityStatus,
    pub source_type_id: i64,
}

/// The raw fields of a create request.
#[derive(Debug, Clone, Default)]
pub struct NewSourceFields<'a> {
    pub name: Option<&'a str>,
    pub version: Option<String>,
    pub imported: Option<String>,
    pub source_ref: Option<String>,
    pub app_creation_workflow: Option<&'a str>,
    pub availability_status: Option<&'a str>,
    /// A number or a numeric string.
    pub source_type_id: Option<&'a Value>,
}

impl NewSource {
    pub fn parse(fields: NewSourceFields<'_>) -> Result<Self, NewSourceError> {
        let name = fields.name.unwrap_or_default();
        if name.is_empty() {
            return Err(NewSourceError::NameEmpty);
        }
        let availability_status = match fields.availability_status.unwrap_or_default() {
            "" => AvailabilityStatus::InProgress,
            other => other.parse().map_err(|()| NewSourceError::InvalidStatus)?,
        };
        let source_type_id = match fields.source_type_id {
            None | Some(Value::Null) => return Err(NewSourceError::TypeIdMissing),
            Some(v) => parse_flexible_id(v).ok_or(NewSourceError::TypeIdInvalid)?,
        };
        if source_type_id < 1 {
            return Err(NewSourceError::TypeIdNotPositive);
        }
        Ok(Self {
            name: name.to_owned(),
            version: fields.version,
            imported: fields.imported,
            source_ref: fields.source_ref,
            app_creation_workflow: AppCreationWorkflow::parse_lenient(fields.app_creation_workflow),
            availability_status,
            source_type_id,
        })
    }
}

/// Reasons an edit is refused; rendered after `bad request: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceEditError {
    #[error("name cannot be empty")]
    NameEmpty,
    #[error("{}", super::INVALID_STATUS)]
    InvalidStatus,
    #[error("{}", super::PAUSED_INVALID_STATUS)]
    PausedInvalidStatus,
    #[error("{}", super::INVALID_DATE)]
    InvalidDate,
}

/// Changes to a source; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceEdit {
    pub name: Option<String>,
    pub version: Option<String>,
    pub imported: Option<String>,
    pub source_ref: Option<String>,
    pub availability_status: Option<AvailabilityStatus>,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub last_available_at: Option<DateTime<Utc>>,
}

/// The raw fields of an edit request.
#[derive(Debug, Clone, Default)]
pub struct SourceEditFields {
    pub name: Option<String>,
    pub version: Option<String>,
    pub imported: Option<String>,
    pub source_ref: Option<String>,
    pub availability_status: Option<String>,
    pub last_checked_at: Option<String>,
    pub last_available_at: Option<String>,
}

/// Parses Go's `"2006-01-02 15:04:05 MST"` layout, as sent in status updates. Only UTC is
/// accepted: a zone abbreviation alone does not say which offset it means.
pub fn parse_record_time(raw: &str) -> Option<DateTime<Utc>> {
    let naive = raw
        .strip_suffix(" UTC")
        .or_else(|| raw.strip_suffix(" GMT"))?;
    NaiveDateTime::parse_from_str(naive, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|t| t.and_utc())
}

impl SourceEdit {
    /// An edit of a source that is not paused. sources-api-go stores a zero time for an
    /// unparsable date here; Keel refuses it instead.
    pub fn parse(fields: SourceEditFields) -> Result<Self, SourceEditError> {
        if fields.name.as_deref() == Some("") {
            return Err(SourceEditError::NameEmpty);
        }
        Self::parse_status_fields(fields, SourceEditError::InvalidStatus)
    }

    /// An edit of a paused source: only status fields are accepted (the request type has no
    /// others, so other keys are already refused as unknown fields).
    pub fn parse_paused(fields: SourceEditFields) -> Result<Self, SourceEditError> {
        Self::parse_status_fields(fields, SourceEditError::PausedInvalidStatus)
    }

    fn parse_status_fields(
        fields: SourceEditFields,
        invalid_status: SourceEditError,
    ) -> Result<Self, SourceEditError> {
        let availability_status = fields
            .availability_status
            .map(|s| s.parse().map_err(|()| invalid_status.clone()))
            .transpose()?;
        let date = |raw: Option<String>| {
            raw.map(|r| parse_record_time(&r).ok_or(SourceEditError::InvalidDate))
                .transpose()
        };
        Ok(Self {
            name: fields.name,
            version: fields.version,
            imported: fields.imported,
            source_ref: fields.source_ref,
            availability_status,
            last_checked_at: date(fields.last_checked_at)?,
            last_available_at: date(fields.last_available_at)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn create(
        name: Option<&str>,
        status: Option<&str>,
        type_id: Option<Value>,
    ) -> Result<NewSource, NewSourceError> {
        NewSource::parse(NewSourceFields {
            name,
            availability_status: status,
            source_type_id: type_id.as_ref(),
            ..Default::default()
        })
    }

    #[test]
    fn create_validation_in_sources_api_go_order() {
        assert_eq!(create(None, None, None), Err(NewSourceError::NameEmpty));
        assert_eq!(
            create(Some(""), Some("bad"), None),
            Err(NewSourceError::NameEmpty)
        );
        assert_eq!(
            create(Some("a"), Some("bad"), None),
            Err(NewSourceError::InvalidStatus)
        );
        assert_eq!(
            create(Some("a"), None, None),
            Err(NewSourceError::TypeIdMissing)
        );
        assert_eq!(
            create(Some("a"), None, Some(json!("x"))),
            Err(NewSourceError::TypeIdInvalid)
        );
        assert_eq!(
            create(Some("a"), None, Some(json!(true))),
            Err(NewSourceError::TypeIdInvalid)
        );
        assert_eq!(
            create(Some("a"), None, Some(json!(0))),
            Err(NewSourceError::TypeIdNotPositive)
        );
        assert_eq!(
            create(Some("a"), None, Some(json!("-3"))),
            Err(NewSourceError::TypeIdNotPositive)
        );
    }

    #[test]
    fn create_defaults() {
        let s = create(Some("a"), Some(""), Some(json!("7"))).unwrap();
        assert_eq!(s.availability_status, AvailabilityStatus::InProgress);
        assert_eq!(s.source_type_id, 7);
        assert_eq!(
            s.app_creation_workflow,
            AppCreationWorkflow::ManualConfiguration
        );
        assert_eq!(
            AppCreationWorkflow::parse_lenient(Some("account_authorization")),
            AppCreationWorkflow::AccountAuthorization
        );
        assert_eq!(
            AppCreationWorkflow::parse_lenient(Some("nonsense")),
            AppCreationWorkflow::ManualConfiguration
        );
    }

    #[test]
    fn edit_messages_differ_for_paused_sources() {
        let bad_status = || SourceEditFields {
            availability_status: Some("nope".into()),
            ..Default::default()
        };
        assert_eq!(
            SourceEdit::parse(bad_status()),
            Err(SourceEditError::InvalidStatus)
        );
        assert_eq!(
            SourceEdit::parse_paused(bad_status()),
            Err(SourceEditError::PausedInvalidStatus)
        );
        let empty_name = SourceEditFields {
            name: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(
            SourceEdit::parse(empty_name),
            Err(SourceEditError::NameEmpty)
        );
    }

    #[test]
    fn record_times_use_the_go_layout() {
        assert_eq!(
            parse_record_time("2024-05-01 10:00:00 UTC"),
            "2024-05-01T10:00:00Z".parse().ok()
        );
        assert_eq!(parse_record_time("2024-05-01T10:00:00Z"), None);
        assert_eq!(parse_record_time("2024-05-01 10:00:00 CET"), None);
        let bad_date = SourceEditFields {
            last_checked_at: Some("yesterday".into()),
            ..Default::default()
        };
        assert_eq!(
            SourceEdit::parse(bad_date),
            Err(SourceEditError::InvalidDate)
        );
    }
}
