//! One CSV row turned into one COPY row (CSV format: an unquoted empty field is NULL).

use super::layout::{Convert, Plan};

/// The value as COPY should read it; empty for NULL.
pub fn value<'a>(raw: &'a [u8], how: Convert, scratch: &'a mut String) -> &'a [u8] {
    match how {
        Convert::Text => raw,
        Convert::Number => match raw {
            b"None" | b"none" | b"nan" | b"NaN" | b"null" => b"",
            _ => raw,
        },
        Convert::OperatorTime => raw.strip_suffix(b" UTC").unwrap_or(raw),
        Convert::Labels => {
            scratch.clear();
            labels(&String::from_utf8_lossy(raw), scratch);
            scratch.as_bytes()
        }
    }
}

/// `label_a:x|label_b:y` as `{"a":"x","b":"y"}` (Koku's `process_openshift_labels`): pairs
/// split at their first `:`, the `label_` prefix dropped, empty pairs skipped. Written
/// straight into `out` (no map per row); a repeated key is kept twice, and jsonb keeps the
/// last, as a map would.
pub fn labels(raw: &str, out: &mut String) {
    out.push('{');
    let mut first = true;
    for pair in raw.split('|').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once(':').unwrap_or((pair, ""));
        let key = key.strip_prefix("label_").unwrap_or(key);
        if key.is_empty() {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        json_string(key, out);
        out.push(':');
        json_string(value, out);
    }
    out.push('}');
}

/// `s` as a JSON string literal.
fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The fold's non-empty values as a JSON object.
fn fold(record: &csv::ByteRecord, columns: &[(usize, String)], out: &mut String) {
    out.clear();
    out.push('{');
    let mut first = true;
    for (i, key) in columns {
        if let Some(v) = record.get(*i).filter(|v| !v.is_empty()) {
            if !first {
                out.push(',');
            }
            first = false;
            json_string(key, out);
            out.push(':');
            json_string(&String::from_utf8_lossy(v), out);
        }
    }
    out.push('}');
}

/// Writes one row: the fixed values, the mapped columns, the folds.
pub fn write_row<W: std::io::Write>(
    out: &mut csv::Writer<W>,
    fixed: &[String],
    plan: &Plan,
    record: &csv::ByteRecord,
    scratch: &mut String,
) -> csv::Result<()> {
    for f in fixed {
        out.write_field(f)?;
    }
    for (i, how) in &plan.mapped {
        let raw = record.get(*i).unwrap_or_default();
        out.write_field(value(raw, *how, scratch))?;
    }
    for columns in &plan.folds {
        fold(record, columns, scratch);
        out.write_field(scratch.as_bytes())?;
    }
    out.write_record(None::<&[u8]>)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::layout::AWS_CUR;

    #[test]
    fn operator_labels_become_json() {
        let mut s = String::new();
        labels(
            "label_app:web|label_node-role.kubernetes.io/master:|label_x:a:b",
            &mut s,
        );
        assert_eq!(
            s,
            r#"{"app":"web","node-role.kubernetes.io/master":"","x":"a:b"}"#
        );
        s.clear();
        labels("", &mut s);
        assert_eq!(s, "{}");
        s.clear();
        labels("label_q:say \"hi\"\\\u{1}|label_n:a\nb", &mut s);
        assert_eq!(s, r#"{"q":"say \"hi\"\\\u0001","n":"a\nb"}"#);
        // What it writes is JSON, read back to the same strings.
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["q"], "say \"hi\"\\\u{1}");
    }

    #[test]
    fn values_for_copy() {
        let mut s = String::new();
        assert_eq!(value(b"None", Convert::Number, &mut s), b"");
        assert_eq!(value(b"0.5", Convert::Number, &mut s), b"0.5");
        assert_eq!(
            value(
                b"2026-11-01 00:59:59 +0000 UTC",
                Convert::OperatorTime,
                &mut s
            ),
            b"2026-11-01 00:59:59 +0000"
        );
    }

    #[test]
    fn a_row_with_quotes_commas_and_tags() {
        let header: Vec<String> = [
            "lineItem/UsageStartDate",
            "lineItem/UnblendedCost",
            "product/ProductName",
            "resourceTags/user:app",
            "resourceTags/user:env",
        ]
        .map(str::to_owned)
        .to_vec();
        let plan = AWS_CUR.plan(&header).unwrap();
        let record = csv::ByteRecord::from(vec![
            "2026-11-01T00:00:00Z",
            "None",
            "Amazon \"Web\", Services",
            "web",
            "",
        ]);
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut scratch = String::new();
        write_row(&mut w, &["7".to_owned()], &plan, &record, &mut scratch).unwrap();
        let out = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(
            out,
            "7,2026-11-01T00:00:00Z,,\"Amazon \"\"Web\"\", Services\",\"{\"\"app\"\":\"\"web\"\"}\",{}\n"
        );
    }
}
