//! The list query language of the Sources API: `filter[field][op]=v`, bare `field=v`,
//! `filter[subresource][field][op]=v`, repeatable `sort_by=col [asc|desc]`, `limit` and `offset`.

use std::fmt;

/// Page size when the client sends no `limit`. There is no maximum, as in sources-api-go.
pub const DEFAULT_LIMIT: i64 = 100;

/// Subresources that may be filtered on: `filter[source_type][name]=amazon`.
pub const SUBRESOURCES: [&str; 2] = ["source_type", "application_type"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    Eq,
    NotEq,
    Gt,
    Gte,
    Lt,
    Lte,
    Nil,
    NotNil,
    Contains,
    StartsWith,
    EndsWith,
    EqI,
    NotEqI,
    ContainsI,
    StartsWithI,
    EndsWithI,
}

impl FilterOp {
    /// Parses an operation name; the empty name (no operation given) means `eq`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "" | "eq" => Self::Eq,
            "not_eq" => Self::NotEq,
            "gt" => Self::Gt,
            "gte" => Self::Gte,
            "lt" => Self::Lt,
            "lte" => Self::Lte,
            "nil" => Self::Nil,
            "not_nil" => Self::NotNil,
            "contains" => Self::Contains,
            "starts_with" => Self::StartsWith,
            "ends_with" => Self::EndsWith,
            "eq_i" => Self::EqI,
            "not_eq_i" => Self::NotEqI,
            "contains_i" => Self::ContainsI,
            "starts_with_i" => Self::StartsWithI,
            "ends_with_i" => Self::EndsWithI,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub subresource: Option<String>,
    pub field: String,
    pub op: FilterOp,
    /// At least one value; several values of `eq` mean `IN (...)`.
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortBy {
    pub field: String,
    pub direction: Direction,
}

/// A parsed list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub filters: Vec<Filter>,
    /// Never empty: `id ASC` when the client sent no `sort_by`.
    pub sort: Vec<SortBy>,
    pub limit: i64,
    pub offset: i64,
    /// Every parameter except `limit` and `offset`, in request order, for the collection links.
    pub passthrough: Vec<(String, String)>,
}

/// Errors carry sources-api-go's messages (rendered after `bad request: `).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListError {
    Limit,
    Offset,
    LimitTooSmall,
    OffsetTooSmall,
    InvalidFilter,
    UnsupportedOperation(String),
    InvalidSort,
    /// PostgreSQL text cannot hold NUL: refused here, not by the database.
    NulCharacter,
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Limit => f.write_str("error parsing limit"),
            Self::Offset => f.write_str("error parsing offset"),
            Self::LimitTooSmall => f.write_str("limit is less than 1"),
            Self::OffsetTooSmall => f.write_str("offset is less than 0"),
            Self::InvalidFilter => f.write_str("invalid filter parameter"),
            Self::UnsupportedOperation(op) => write!(f, "unsupported operation {op}"),
            Self::InvalidSort => f.write_str("invalid sort_by parameter"),
            Self::NulCharacter => f.write_str("query parameters cannot contain NUL characters"),
        }
    }
}

impl std::error::Error for ListError {}

/// Splits a key like `filter[source_type][name][eq]` into its word tokens, as the `\w+` regex
/// of sources-api-go does.
fn word_tokens(key: &str) -> Vec<&str> {
    key.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|t| !t.is_empty())
        .collect()
}

fn is_column_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn parse_filter(key: &str, values: Vec<String>) -> Result<Filter, ListError> {
    let tokens = word_tokens(key);
    let (subresource, field, op) = match tokens.as_slice() {
        [_, sub, field] if SUBRESOURCES.contains(sub) => (Some(*sub), *field, ""),
        [_, sub, field, op] if SUBRESOURCES.contains(sub) => (Some(*sub), *field, *op),
        [_, field] => (None, *field, ""),
        [_, field, op] => (None, *field, *op),
        _ => return Err(ListError::InvalidFilter),
    };
    if !is_column_name(field) {
        return Err(ListError::InvalidFilter);
    }
    let op = FilterOp::parse(op).ok_or_else(|| ListError::UnsupportedOperation(op.to_owned()))?;
    Ok(Filter {
        subresource: subresource.map(str::to_owned),
        field: field.to_owned(),
        op,
        values,
    })
}

fn parse_sort(value: &str) -> Result<SortBy, ListError> {
    let mut parts = value.split_whitespace();
    let field = parts.next().ok_or(ListError::InvalidSort)?;
    let direction = match parts.next().map(str::to_ascii_uppercase).as_deref() {
        None | Some("ASC") => Direction::Asc,
        Some("DESC") => Direction::Desc,
        Some(_) => return Err(ListError::InvalidSort),
    };
    if parts.next().is_some() || !is_column_name(field) {
        return Err(ListError::InvalidSort);
    }
    Ok(SortBy {
        field: field.to_owned(),
        direction,
    })
}

fn parse_count(
    pairs: &[(String, String)],
    key: &str,
    err: ListError,
) -> Result<Option<i64>, ListError> {
    // The first value wins, as with Go's `QueryParam`.
    match pairs.iter().find(|(k, _)| k == key) {
        Some((_, v)) => v.parse().map(Some).map_err(|_| err),
        None => Ok(None),
    }
}

impl ListQuery {
    /// Parses decoded query pairs in request order.
    pub fn parse(pairs: Vec<(String, String)>) -> Result<Self, ListError> {
        if pairs
            .iter()
            .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(ListError::NulCharacter);
        }
        let limit = parse_count(&pairs, "limit", ListError::Limit)?.unwrap_or(DEFAULT_LIMIT);
        let offset = parse_count(&pairs, "offset", ListError::Offset)?.unwrap_or(0);
        if limit < 1 {
            return Err(ListError::LimitTooSmall);
        }
        if offset < 0 {
            return Err(ListError::OffsetTooSmall);
        }

        // Values are grouped by key, keys kept in first-seen order (indexed: a query of many
        // distinct keys groups in linear time).
        let mut grouped: Vec<(String, Vec<String>)> = Vec::new();
        let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        let mut sort = Vec::new();
        for (key, value) in &pairs {
            match key.as_str() {
                "limit" | "offset" => {}
                "sort_by" => sort.push(parse_sort(value)?),
                _ => match index.get(key.as_str()) {
                    Some(&i) => grouped[i].1.push(value.clone()),
                    None => {
                        index.insert(key, grouped.len());
                        grouped.push((key.clone(), vec![value.clone()]));
                    }
                },
            }
        }
        let filters = grouped
            .into_iter()
            .map(|(key, values)| {
                if key.starts_with("filter") {
                    parse_filter(&key, values)
                } else if is_column_name(&key) {
                    // Bare parameters are filters, for compatibility with the Rails API.
                    Ok(Filter {
                        subresource: None,
                        field: key,
                        op: FilterOp::Eq,
                        values,
                    })
                } else {
                    Err(ListError::InvalidFilter)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if sort.is_empty() {
            sort.push(SortBy {
                field: "id".to_owned(),
                direction: Direction::Asc,
            });
        }
        let passthrough = pairs
            .into_iter()
            .filter(|(k, _)| k != "limit" && k != "offset")
            .collect();
        Ok(Self {
            filters,
            sort,
            limit,
            offset,
            passthrough,
        })
    }

    /// A query that takes everything at the defaults.
    pub fn all() -> Self {
        Self::parse(Vec::new()).unwrap_or_else(|_| unreachable!("defaults always parse"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Result<ListQuery, ListError> {
        ListQuery::parse(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn defaults_are_limit_100_offset_0_sorted_by_id() {
        let query = q(&[]).unwrap();
        assert_eq!((query.limit, query.offset), (100, 0));
        assert_eq!(
            query.sort,
            vec![SortBy {
                field: "id".into(),
                direction: Direction::Asc
            }]
        );
        assert!(query.filters.is_empty());
    }

    #[test]
    fn parses_every_filter_form() {
        let query = q(&[
            ("filter[name]", "a"),
            ("filter[name][contains_i]", "b"),
            ("filter[source_type][name]", "amazon"),
            ("filter[application_type][id][gt]", "3"),
            ("filter[id][]", "1"),
            ("filter[id][]", "2"),
            ("uid", "u"),
        ])
        .unwrap();
        let f = &query.filters;
        assert_eq!(f.len(), 6);
        assert_eq!((f[0].field.as_str(), f[0].op), ("name", FilterOp::Eq));
        assert_eq!(f[1].op, FilterOp::ContainsI);
        assert_eq!(f[2].subresource.as_deref(), Some("source_type"));
        assert_eq!((f[3].field.as_str(), f[3].op), ("id", FilterOp::Gt));
        assert_eq!(f[4].values, vec!["1", "2"]);
        assert_eq!((f[5].field.as_str(), f[5].op), ("uid", FilterOp::Eq));
    }

    #[test]
    fn rejects_bad_paging_with_sources_messages() {
        assert_eq!(q(&[("limit", "x")]), Err(ListError::Limit));
        assert_eq!(q(&[("offset", "x")]), Err(ListError::Offset));
        assert_eq!(q(&[("limit", "0")]), Err(ListError::LimitTooSmall));
        assert_eq!(q(&[("offset", "-1")]), Err(ListError::OffsetTooSmall));
        assert_eq!(ListError::LimitTooSmall.to_string(), "limit is less than 1");
        assert_eq!(q(&[("filter[name]", "a\0b")]), Err(ListError::NulCharacter));
        assert_eq!(q(&[("name\0", "x")]), Err(ListError::NulCharacter));
    }

    #[test]
    fn rejects_unknown_operations_and_bad_sorts() {
        assert_eq!(
            q(&[("filter[name][like]", "x")]).unwrap_err().to_string(),
            "unsupported operation like"
        );
        assert_eq!(q(&[("filter", "x")]), Err(ListError::InvalidFilter));
        assert_eq!(
            q(&[("sort_by", "name sideways")]),
            Err(ListError::InvalidSort)
        );
        assert_eq!(q(&[("sort_by", "name; drop")]), Err(ListError::InvalidSort));
        let sorted = q(&[("sort_by", "name desc"), ("sort_by", "id")]).unwrap();
        assert_eq!(sorted.sort[0].direction, Direction::Desc);
        assert_eq!(sorted.sort[1].field, "id");
    }

    #[test]
    fn passthrough_keeps_everything_but_paging() {
        let query = q(&[
            ("limit", "5"),
            ("b", "1"),
            ("sort_by", "id"),
            ("offset", "2"),
        ])
        .unwrap();
        assert_eq!(
            query.passthrough,
            vec![("b".into(), "1".into()), ("sort_by".into(), "id".into())]
        );
    }
}
