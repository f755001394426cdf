//! Label selectors (`a=b,c!=d,e in (x,y),f,!g`) and field selectors (`metadata.name=x`,
//! `involvedObject.uid=…`) as list and watch requests send them.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    Absent(String),
}

/// A parsed selector; empty selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    labels: Vec<Term>,
    fields: Vec<Term>,
}

/// Splits on commas outside parentheses.
fn terms(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out.into_iter().filter(|t| !t.is_empty()).collect()
}

fn values(list: &str) -> Option<Vec<String>> {
    let inner = list.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_owned()).collect())
}

fn parse(s: &str) -> Result<Vec<Term>, String> {
    terms(s)
        .into_iter()
        .map(|t| {
            if let Some((k, v)) = t.split_once("!=") {
                return Ok(Term::NotEquals(k.trim().into(), v.trim().into()));
            }
            if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                return Ok(Term::Equals(k.trim().into(), v.trim().into()));
            }
            if let Some((k, v)) = t.split_once(" notin ") {
                let v = values(v).ok_or_else(|| format!("bad selector term {t:?}"))?;
                return Ok(Term::NotIn(k.trim().into(), v));
            }
            if let Some((k, v)) = t.split_once(" in ") {
                let v = values(v).ok_or_else(|| format!("bad selector term {t:?}"))?;
                return Ok(Term::In(k.trim().into(), v));
            }
            match t.strip_prefix('!') {
                Some(k) => Ok(Term::Absent(k.trim().into())),
                None => Ok(Term::Exists(t.into())),
            }
        })
        .collect()
}

fn holds(term: &Term, lookup: impl Fn(&str) -> Option<String>) -> bool {
    match term {
        Term::Equals(k, v) => lookup(k).as_deref() == Some(v),
        Term::NotEquals(k, v) => lookup(k).as_deref() != Some(v),
        Term::In(k, vs) => lookup(k).is_some_and(|x| vs.contains(&x)),
        Term::NotIn(k, vs) => lookup(k).is_none_or(|x| !vs.contains(&x)),
        Term::Exists(k) => lookup(k).is_some(),
        Term::Absent(k) => lookup(k).is_none(),
    }
}

/// The value at a dotted path, as text.
fn field(o: &Value, path: &str) -> Option<String> {
    let v = path.split('.').try_fold(o, |v, k| v.get(k))?;
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

impl Selector {
    pub fn new(labels: Option<&str>, fields: Option<&str>) -> Result<Self, String> {
        Ok(Self {
            labels: parse(labels.unwrap_or_default())?,
            fields: parse(fields.unwrap_or_default())?,
        })
    }

    pub fn matches(&self, o: &Value) -> bool {
        let labels = &o["metadata"]["labels"];
        self.labels
            .iter()
            .all(|t| holds(t, |k| labels[k].as_str().map(str::to_owned)))
            && self.fields.iter().all(|t| holds(t, |k| field(o, k)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_as_kubernetes_reads_them() {
        let o = json!({"metadata": {"name": "db", "namespace": "team", "labels": {"app": "pg", "tier": "data"}}});
        let table = [
            ("app=pg", None, true),
            ("app==pg,tier=data", None, true),
            ("app!=pg", None, false),
            ("app in (mysql, pg)", None, true),
            ("app notin (pg)", None, false),
            ("tier,!gone", None, true),
            ("gone", None, false),
            ("", Some("metadata.name=db"), true),
            ("", Some("metadata.name=db,metadata.namespace!=team"), false),
        ];
        for (labels, fields, want) in table {
            let s = Selector::new(Some(labels), fields).unwrap();
            assert_eq!(s.matches(&o), want, "{labels:?} {fields:?}");
        }
        assert!(Selector::new(Some("app in pg"), None).is_err());
    }
}
