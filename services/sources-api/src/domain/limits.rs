//! How large each field sent may be. Every change is announced as an event carrying the whole
//! row, and Kafka takes messages up to about 1 MB: an unbounded field (sources-api-go bounds
//! only the host) once made one event too large to publish, which held back every tenant's
//! events behind it. With these caps the largest row announces well under that. Messages follow
//! sources-api-go's for the host: `the provided <field> is longer than <N> characters`.

use serde_json::Value;

/// Names, types, references, ids of other systems.
pub const SHORT: usize = 255;
/// Paths and usernames (an AWS role ARN may take 2,048).
pub const LONG: usize = 2048;
/// `availability_status_error`: a check's message.
pub const MESSAGE: usize = 4096;
/// Passwords: a token, a service account's key.
pub const SECRET: usize = 16 * 1024;
/// A certificate authority (a chain of PEM certificates); `extra`, serialized.
pub const DOCUMENT: usize = 64 * 1024;

/// One field of a request and its cap.
pub enum Field<'a> {
    Text(&'static str, Option<&'a str>, usize),
    /// JSON, measured serialized, in bytes.
    Json(&'static str, Option<&'a Value>, usize),
}

/// The first field over its cap, as the message a 400 carries.
pub fn check(fields: &[Field<'_>]) -> Result<(), String> {
    for field in fields {
        match *field {
            Field::Text(name, Some(value), max) if value.chars().count() > max => {
                return Err(format!(
                    "the provided {name} is longer than {max} characters"
                ));
            }
            Field::Json(name, Some(value), max) if json_len(value) > max => {
                return Err(format!("the provided {name} is larger than {max} bytes"));
            }
            _ => {}
        }
    }
    Ok(())
}

fn json_len(value: &Value) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |v| v.len())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_first_field_over_its_cap_is_named() {
        let long = "é".repeat(SHORT + 1);
        let ok = "é".repeat(SHORT);
        assert_eq!(
            check(&[
                Field::Text("name", Some(&ok), SHORT),
                Field::Text("source_ref", Some(&long), SHORT),
                Field::Text("version", Some(&long), SHORT),
            ]),
            Err("the provided source_ref is longer than 255 characters".to_owned()),
            "characters are counted, not bytes, and the first offender is named"
        );
        let extra = json!({"pad": "x".repeat(DOCUMENT)});
        assert_eq!(
            check(&[Field::Json("extra", Some(&extra), DOCUMENT)]),
            Err("the provided extra is larger than 65536 bytes".to_owned())
        );
        assert_eq!(
            check(&[
                Field::Text("name", None, SHORT),
                Field::Json("extra", Some(&json!({"a": 1})), DOCUMENT),
            ]),
            Ok(())
        );
    }
}
