use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use keel_domain::listing::{Direction, Filter, FilterOp, ListError, ListQuery};
use sqlx::{FromRow, PgPool, Postgres, QueryBuilder, Row as _, postgres::PgRow};

/// How a column's filter values are parsed and bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Int,
    Text,
    Bool,
    Timestamp,
    /// JSON columns are compared as their text form.
    Json,
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: ColumnKind,
}

impl Column {
    pub const fn int(name: &'static str) -> Self {
        Self {
            name,
            kind: ColumnKind::Int,
        }
    }

    pub const fn text(name: &'static str) -> Self {
        Self {
            name,
            kind: ColumnKind::Text,
        }
    }

    pub const fn bool(name: &'static str) -> Self {
        Self {
            name,
            kind: ColumnKind::Bool,
        }
    }

    pub const fn timestamp(name: &'static str) -> Self {
        Self {
            name,
            kind: ColumnKind::Timestamp,
        }
    }

    pub const fn json(name: &'static str) -> Self {
        Self {
            name,
            kind: ColumnKind::Json,
        }
    }
}

/// A related table that can be filtered on through a foreign key of the listed table:
/// `filter[source_type][name]=amazon` on sources.
#[derive(Debug, Clone, Copy)]
pub struct Subresource {
    pub name: &'static str,
    pub table: &'static Table,
    /// The listed table's column that references `table.id`.
    pub foreign_key: &'static str,
}

/// A table's filterable and sortable columns: anything not listed is refused.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [Column],
    pub subresources: &'static [Subresource],
}

impl Table {
    fn column(&self, name: &str) -> Option<Column> {
        self.columns.iter().copied().find(|c| c.name == name)
    }
}

/// A fixed condition every listed row must meet (tenant, parent), written as
/// `{before}<bound value>{after}` against the alias `t`.
#[derive(Debug, Clone)]
pub struct Scope {
    pub before: &'static str,
    pub value: Option<Bound>,
    pub after: &'static str,
}

/// The value a [`Scope`] binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    Int(i64),
    Text(String),
}

impl Scope {
    /// `t.<column> = value`
    pub const fn eq(before: &'static str, value: i64) -> Self {
        Self::around(before, value, "")
    }

    /// `{before}<value>{after}`
    pub const fn around(before: &'static str, value: i64, after: &'static str) -> Self {
        Self {
            before,
            value: Some(Bound::Int(value)),
            after,
        }
    }

    /// `{before}<text>{after}`
    pub fn around_text(before: &'static str, text: impl Into<String>, after: &'static str) -> Self {
        Self {
            before,
            value: Some(Bound::Text(text.into())),
            after,
        }
    }

    /// A condition with no bound value.
    pub const fn raw(sql: &'static str) -> Self {
        Self {
            before: sql,
            value: None,
            after: "",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ListingError {
    #[error("{0}")]
    Query(ListError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<ListError> for ListingError {
    fn from(e: ListError) -> Self {
        Self::Query(e)
    }
}

/// One page of rows and the number of rows matching the filters.
#[derive(Debug)]
pub struct Page<T> {
    pub rows: Vec<T>,
    pub count: i64,
}

/// A list request against one table, aliased `t`.
#[derive(Debug)]
pub struct Listing<'a> {
    pub table: &'static Table,
    /// Columns to select, e.g. `t.*`.
    pub select: &'static str,
    pub scopes: Vec<Scope>,
    pub query: &'a ListQuery,
}

enum Value {
    Int(i64),
    Text(String),
    Bool(bool),
    Timestamp(DateTime<Utc>),
}

fn parse_timestamp(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(raw.trim_end_matches(" UTC"), "%Y-%m-%d %H:%M:%S")
                .ok()
                .map(|t| t.and_utc())
        })
        .or_else(|| {
            NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
}

fn parse_value(kind: ColumnKind, raw: &str) -> Result<Value, ListError> {
    let bad = || ListError::InvalidFilter;
    Ok(match kind {
        ColumnKind::Int => Value::Int(raw.parse().map_err(|_| bad())?),
        ColumnKind::Bool => Value::Bool(raw.parse().map_err(|_| bad())?),
        ColumnKind::Timestamp => Value::Timestamp(parse_timestamp(raw).ok_or_else(bad)?),
        ColumnKind::Text | ColumnKind::Json => Value::Text(raw.to_owned()),
    })
}

fn push_value(qb: &mut QueryBuilder<Postgres>, value: Value) {
    match value {
        Value::Int(v) => qb.push_bind(v),
        Value::Text(v) => qb.push_bind(v),
        Value::Bool(v) => qb.push_bind(v),
        Value::Timestamp(v) => qb.push_bind(v),
    };
}

fn like_pattern(op: FilterOp, value: &str) -> String {
    // LIKE wildcards in the value are matched literally.
    let escaped = value
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    match op {
        FilterOp::Contains | FilterOp::ContainsI => format!("%{escaped}%"),
        FilterOp::StartsWith | FilterOp::StartsWithI => format!("{escaped}%"),
        _ => format!("%{escaped}"),
    }
}

fn push_condition(
    qb: &mut QueryBuilder<Postgres>,
    qualified: &str,
    column: Column,
    filter: &Filter,
) -> Result<(), ListError> {
    let first = filter.values.first().ok_or(ListError::InvalidFilter)?;
    // Text-like operations work on the text form of any column.
    let as_text = match column.kind {
        ColumnKind::Text => qualified.to_owned(),
        _ => format!("{qualified}::text"),
    };
    let comparable = match column.kind {
        ColumnKind::Json => as_text.clone(),
        _ => qualified.to_owned(),
    };
    let compare = |qb: &mut QueryBuilder<Postgres>, sql_op: &str| -> Result<(), ListError> {
        qb.push(format!("{comparable} {sql_op} "));
        push_value(qb, parse_value(column.kind, first)?);
        Ok(())
    };
    match filter.op {
        FilterOp::Eq if filter.values.len() > 1 => {
            qb.push(format!("{comparable} IN ("));
            for (i, raw) in filter.values.iter().enumerate() {
                if i > 0 {
                    qb.push(", ");
                }
                push_value(qb, parse_value(column.kind, raw)?);
            }
            qb.push(")");
        }
        FilterOp::Eq => compare(qb, "=")?,
        FilterOp::NotEq => compare(qb, "<>")?,
        FilterOp::Gt => compare(qb, ">")?,
        FilterOp::Gte => compare(qb, ">=")?,
        FilterOp::Lt => compare(qb, "<")?,
        FilterOp::Lte => compare(qb, "<=")?,
        FilterOp::Nil => {
            qb.push(format!("{qualified} IS NULL"));
        }
        FilterOp::NotNil => {
            qb.push(format!("{qualified} IS NOT NULL"));
        }
        FilterOp::Contains | FilterOp::StartsWith | FilterOp::EndsWith => {
            qb.push(format!("{as_text} LIKE "));
            qb.push_bind(like_pattern(filter.op, first));
        }
        FilterOp::ContainsI | FilterOp::StartsWithI | FilterOp::EndsWithI => {
            qb.push(format!("{as_text} ILIKE "));
            qb.push_bind(like_pattern(filter.op, first));
        }
        FilterOp::EqI | FilterOp::NotEqI => {
            let op = if filter.op == FilterOp::EqI {
                "="
            } else {
                "<>"
            };
            qb.push(format!("LOWER({as_text}) {op} "));
            qb.push_bind(first.to_lowercase());
        }
    }
    Ok(())
}

impl Listing<'_> {
    fn push_where(&self, qb: &mut QueryBuilder<Postgres>) -> Result<(), ListError> {
        qb.push(" WHERE TRUE");
        for scope in &self.scopes {
            qb.push(" AND ");
            qb.push(scope.before);
            match &scope.value {
                Some(Bound::Int(n)) => {
                    qb.push_bind(*n);
                }
                Some(Bound::Text(text)) => {
                    qb.push_bind(text.clone());
                }
                None => {}
            }
            qb.push(scope.after);
        }
        for filter in &self.query.filters {
            qb.push(" AND ");
            match &filter.subresource {
                None => {
                    let column = self
                        .table
                        .column(&filter.field)
                        .ok_or(ListError::InvalidFilter)?;
                    push_condition(qb, &format!("t.{}", column.name), column, filter)?;
                }
                Some(name) => {
                    let sub = self
                        .table
                        .subresources
                        .iter()
                        .find(|s| s.name == name)
                        .ok_or(ListError::InvalidFilter)?;
                    let column = sub
                        .table
                        .column(&filter.field)
                        .ok_or(ListError::InvalidFilter)?;
                    qb.push(format!(
                        "t.{} IN (SELECT s.id FROM {} s WHERE ",
                        sub.foreign_key, sub.table.name
                    ));
                    push_condition(qb, &format!("s.{}", column.name), column, filter)?;
                    qb.push(")");
                }
            }
        }
        Ok(())
    }

    fn push_order(&self, qb: &mut QueryBuilder<Postgres>) -> Result<(), ListError> {
        qb.push(" ORDER BY ");
        for (i, sort) in self.query.sort.iter().enumerate() {
            let column = self
                .table
                .column(&sort.field)
                .ok_or(ListError::InvalidSort)?;
            let dir = match sort.direction {
                Direction::Asc => "ASC",
                Direction::Desc => "DESC",
            };
            if i > 0 {
                qb.push(", ");
            }
            qb.push(format!("t.{} {dir}", column.name));
        }
        // A stable order across pages even when the sort keys tie.
        if !self.query.sort.iter().any(|s| s.field == "id") {
            qb.push(", t.id ASC");
        }
        Ok(())
    }

    /// Fetches one page and the total count; the count rides on the page query as a window
    /// function, so a second query runs only when the page is empty.
    pub async fn fetch<T>(&self, pool: &PgPool) -> Result<Page<T>, ListingError>
    where
        T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        let mut qb = QueryBuilder::new(format!(
            "SELECT {}, count(*) OVER () AS keel_total FROM {} t",
            self.select, self.table.name
        ));
        self.push_where(&mut qb)?;
        self.push_order(&mut qb)?;
        qb.push(" LIMIT ");
        qb.push_bind(self.query.limit);
        qb.push(" OFFSET ");
        qb.push_bind(self.query.offset);
        let rows = qb.build().fetch_all(pool).await?;
        let count = match rows.first() {
            Some(row) => row.try_get::<i64, _>("keel_total")?,
            None => self.count(pool).await?,
        };
        let rows = rows
            .iter()
            .map(T::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page { rows, count })
    }

    async fn count(&self, pool: &PgPool) -> Result<i64, ListingError> {
        let mut qb = QueryBuilder::new(format!("SELECT count(*) FROM {} t", self.table.name));
        self.push_where(&mut qb)?;
        Ok(qb.build_query_scalar().fetch_one(pool).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_accept_rfc3339_event_and_date_forms() {
        let want = "2024-05-01T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(parse_timestamp("2024-05-01T10:00:00Z"), Some(want));
        assert_eq!(parse_timestamp("2024-05-01 10:00:00 UTC"), Some(want));
        assert_eq!(
            parse_timestamp("2024-05-01"),
            "2024-05-01T00:00:00Z".parse().ok()
        );
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern(FilterOp::Contains, "a%b_c"), "%a\\%b\\_c%");
        assert_eq!(like_pattern(FilterOp::StartsWithI, "x"), "x%");
        assert_eq!(like_pattern(FilterOp::EndsWith, "x"), "%x");
    }
}
