use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::extract::ListParams;

/// `{data, meta{count,limit,offset}, links{first,last}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Collection<T> {
    pub data: Vec<T>,
    pub meta: CollectionMeta,
    pub links: CollectionLinks,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionMeta {
    /// Rows matching the filters, not the length of this page.
    pub count: i64,
    pub limit: i64,
    pub offset: i64,
}

/// Path-only links. sources-api-go sends only `first` and `last`, `last` being offset+limit.
#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionLinks {
    pub first: String,
    pub last: String,
}

impl<T> Collection<T> {
    pub fn new(data: Vec<T>, count: i64, params: &ListParams) -> Self {
        let (limit, offset) = (params.query.limit, params.query.offset);
        Self {
            data,
            meta: CollectionMeta {
                count,
                limit,
                offset,
            },
            links: CollectionLinks {
                first: link(params, limit, offset),
                last: link(params, limit, offset.saturating_add(limit)),
            },
        }
    }
}

/// Go's `url.Values.Encode()` (keys sorted, values in order) followed by `url.PathUnescape`,
/// so brackets stay literal and spaces read `+`.
fn link(params: &ListParams, limit: i64, offset: i64) -> String {
    let mut values: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (k, v) in &params.query.passthrough {
        values.entry(k).or_default().push(v.clone());
    }
    values.insert("limit", vec![limit.to_string()]);
    values.insert("offset", vec![offset.to_string()]);
    let mut encoded = form_urlencoded::Serializer::new(String::new());
    for (k, vs) in &values {
        for v in vs {
            encoded.append_pair(k, v);
        }
    }
    let query = encoded.finish();
    let query = percent_encoding::percent_decode_str(&query).decode_utf8_lossy();
    format!("{}?{query}", params.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_sort_keys_and_keep_brackets() {
        let params = ListParams::parse(
            "/api/sources/v3.1/sources",
            Some("sort_by=name&filter%5Bname%5D=a+b&limit=5"),
        )
        .unwrap();
        let c = Collection::new(Vec::<()>::new(), 0, &params);
        assert_eq!(
            c.links.first,
            "/api/sources/v3.1/sources?filter[name]=a+b&limit=5&offset=0&sort_by=name"
        );
        assert_eq!(
            c.links.last,
            "/api/sources/v3.1/sources?filter[name]=a+b&limit=5&offset=5&sort_by=name"
        );
    }
}
