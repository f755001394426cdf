//! JSON values as PostgreSQL's `jsonb` gives them back: object keys shortest first, then in
//! byte order, one value per key (the last one given). What a write renders in advance for
//! its event must read as the stored row would.

use serde_json::{Map, Value};

/// `value` as `jsonb` stores it.
pub fn stored(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, Value)> =
                map.iter().map(|(k, v)| (k, stored(v))).collect();
            entries.sort_by(|(a, _), (b, _)| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), v))
                    .collect::<Map<_, _>>(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(stored).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_shortest_first_then_in_byte_order_at_every_depth() {
        let given: Value = serde_json::from_str(
            r#"{"zz": 1, "a": {"yy": [{"bb": 1, "b": 2}], "c": null}, "bucket": "x", "B": 0}"#,
        )
        .unwrap();
        assert_eq!(
            stored(&given).to_string(),
            r#"{"B":0,"a":{"c":null,"yy":[{"b":2,"bb":1}]},"zz":1,"bucket":"x"}"#
        );
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value() {
        let given: Value = serde_json::from_str(r#"{"k": 1, "a": 2, "k": 3}"#).unwrap();
        assert_eq!(stored(&given).to_string(), r#"{"a":2,"k":3}"#);
    }
}
