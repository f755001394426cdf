use std::fmt;

/// A positive database id, parsed from a path segment the way sources-api-go's `IdValidation`
/// middleware does, with its exact messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("the provided ID must be a greater than zero, positive number")]
    NotANumber,
    #[error("the provided ID must be greater than zero")]
    Zero,
    #[error(
        "could not parse the provided ID: strconv.ParseInt: parsing \"{0}\": value out of range"
    )]
    OutOfRange(String),
}

impl Id {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::NotANumber);
        }
        let value: i64 = raw
            .parse()
            .map_err(|_| IdError::OutOfRange(raw.to_owned()))?;
        if value == 0 {
            return Err(IdError::Zero);
        }
        Ok(Self(value))
    }

    /// Wraps an id that came from the database.
    pub const fn from_db(value: i64) -> Self {
        Self(value)
    }

    pub const fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_positive_decimal_ids() {
        assert_eq!(Id::parse("42").unwrap().get(), 42);
        assert_eq!(Id::parse("007").unwrap().get(), 7);
        assert_eq!(Id::parse("9223372036854775807").unwrap().get(), i64::MAX);
    }

    #[test]
    fn rejects_what_sources_api_go_rejects() {
        for raw in ["", "abc", "-1", "+1", "1.5", " 1", "1a"] {
            assert_eq!(Id::parse(raw), Err(IdError::NotANumber), "{raw:?}");
        }
        assert_eq!(Id::parse("0"), Err(IdError::Zero));
        assert_eq!(Id::parse("000"), Err(IdError::Zero));
        let err = Id::parse("9223372036854775808").unwrap_err();
        assert_eq!(
            err.to_string(),
            "could not parse the provided ID: strconv.ParseInt: parsing \"9223372036854775808\": value out of range"
        );
    }
}
