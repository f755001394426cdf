//! Property tests of the parsers that read what callers send: the identity header and the list
//! query (filters, sort, paging). Arbitrary input must come back as a value or an error, never a
//! panic, and what is accepted must keep the invariants the stores build SQL on.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use keel_domain::identity::{
    Identity, IdentityError, IdentityHeaders, Internal, RequestIdentity, System, User, XRhIdentity,
};
use keel_domain::listing::{FilterOp, ListError, ListQuery, SUBRESOURCES};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(any::<String>())
}

fn identity() -> impl Strategy<Value = Identity> {
    (text(), text(), text(), text(), text(), text(), text()).prop_map(
        |(account_number, org_id, kind, user_id, cn, cluster_id, internal_org)| Identity {
            account_number,
            org_id,
            kind,
            user: user_id.map(|u| User { user_id: Some(u) }),
            system: cn.map(|cn| System {
                cn: Some(cn),
                cluster_id,
            }),
            internal: internal_org.map(|o| Internal { org_id: Some(o) }),
        },
    )
}

/// Names the stores accept as columns: lower-case ASCII words. A field named like a
/// subresource reads as that subresource (sources-api-go tokenizes keys the same way).
fn column() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,15}"
        .prop_filter("not a subresource", |c| !SUBRESOURCES.contains(&c.as_str()))
}

const OPS: [(&str, FilterOp); 16] = [
    ("eq", FilterOp::Eq),
    ("not_eq", FilterOp::NotEq),
    ("gt", FilterOp::Gt),
    ("gte", FilterOp::Gte),
    ("lt", FilterOp::Lt),
    ("lte", FilterOp::Lte),
    ("nil", FilterOp::Nil),
    ("not_nil", FilterOp::NotNil),
    ("contains", FilterOp::Contains),
    ("starts_with", FilterOp::StartsWith),
    ("ends_with", FilterOp::EndsWith),
    ("eq_i", FilterOp::EqI),
    ("not_eq_i", FilterOp::NotEqI),
    ("contains_i", FilterOp::ContainsI),
    ("starts_with_i", FilterOp::StartsWithI),
    ("ends_with_i", FilterOp::EndsWithI),
];

/// Query keys and values from the characters that matter to the parser, so that arbitrary
/// pairs often look like filters, sorts and counts.
fn query_word() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("limit".to_owned()),
        Just("offset".to_owned()),
        Just("sort_by".to_owned()),
        "filter(\\[[a-z_A-Z0-9 .\\-]{0,12}\\]){0,4}",
        "[a-zA-Z0-9_\\[\\] \\-+.\u{0}é]{0,16}",
    ]
}

fn query_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec((query_word(), query_word()), 0..12)
}

fn is_column(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

proptest! {
    #[test]
    fn identities_survive_encoding(identity in identity()) {
        let doc = XRhIdentity { identity };
        prop_assert_eq!(XRhIdentity::decode(&doc.encode()), Ok(doc));
    }

    #[test]
    fn fields_the_platform_adds_are_ignored(
        identity in identity(),
        extra in proptest::collection::btree_map("x_[a-z]{1,8}", any::<String>(), 0..4),
        outer in proptest::collection::btree_map("x_[a-z]{1,8}", any::<i64>(), 0..3),
    ) {
        let mut doc = serde_json::to_value(XRhIdentity { identity: identity.clone() }).unwrap();
        for (k, v) in extra {
            doc["identity"][k] = v.into();
        }
        for (k, v) in outer {
            doc[k] = v.into();
        }
        let raw = STANDARD.encode(doc.to_string());
        prop_assert_eq!(XRhIdentity::decode(&raw).map(|d| d.identity), Ok(identity));
    }

    #[test]
    fn any_header_decodes_to_a_value_that_encodes_back_or_to_an_error(
        raw in prop_oneof![
            any::<String>(),
            any::<Vec<u8>>().prop_map(|b| STANDARD.encode(b)),
            "\\{\"identity\": ?\\{(\"(org_id|account_number|type|user)\": ?(\"[a-z0-9]{0,4}\"|[0-9]{1,3}|null|\\{\\}),?){0,3}\\}\\}"
                .prop_map(|j| STANDARD.encode(j)),
        ]
    ) {
        if let Ok(doc) = XRhIdentity::decode(&raw) {
            prop_assert_eq!(XRhIdentity::decode(&doc.encode()), Ok(doc));
        }
    }

    #[test]
    fn text_outside_the_base64_alphabet_is_not_base64(
        head in "[A-Za-z0-9+/]{0,8}", bad in "[!#$%&*,.:;<>?@^`|~]", tail in "[A-Za-z0-9+/=]{0,8}"
    ) {
        prop_assert_eq!(
            XRhIdentity::decode(&format!("{head}{bad}{tail}")),
            Err(IdentityError::NotBase64)
        );
    }

    #[test]
    fn the_identity_document_wins_and_headers_fill_the_gaps(
        identity in identity(), account in text(), org in text(), user in text(),
    ) {
        let raw = XRhIdentity { identity: identity.clone() }.encode();
        let read = RequestIdentity::from_headers(IdentityHeaders {
            x_rh_identity: Some(&raw),
            account_number: account.as_deref(),
            org_id: org.as_deref(),
            user_id: user.as_deref(),
        })
        .expect("an encoded identity decodes");
        let pick = |doc: Option<&str>, header: Option<&str>| {
            [doc, header]
                .into_iter()
                .flatten()
                .map(str::trim)
                .find(|v| !v.is_empty())
                .map(str::to_owned)
        };
        prop_assert_eq!(read.account_number, pick(identity.account_number.as_deref(), account.as_deref()));
        prop_assert_eq!(read.org_id, pick(identity.org_id.as_deref(), org.as_deref()));
        let doc_user = identity.user.as_ref().and_then(|u| u.user_id.as_deref());
        prop_assert_eq!(read.user_id, pick(doc_user, user.as_deref()));
        // The header is forwarded as sent.
        prop_assert_eq!(read.header, raw);
    }

    #[test]
    fn without_an_identity_one_is_generated_from_the_tenancy_headers(
        account in "[0-9]{1,10}", org in "[0-9a-z]{1,12}"
    ) {
        let read = RequestIdentity::from_headers(IdentityHeaders {
            account_number: Some(&account),
            org_id: Some(&org),
            ..IdentityHeaders::default()
        })
        .expect("headers alone are an identity");
        let generated = XRhIdentity::decode(&read.header).expect("the generated header decodes");
        prop_assert_eq!(generated.identity.account_number.as_deref(), Some(account.as_str()));
        prop_assert_eq!(generated.identity.org_id.as_deref(), Some(org.as_str()));
    }

    #[test]
    fn accepted_queries_keep_the_invariants_sql_is_built_on(pairs in query_pairs()) {
        let has_nul = pairs.iter().any(|(k, v)| k.contains('\0') || v.contains('\0'));
        match ListQuery::parse(pairs.clone()) {
            Ok(query) => {
                prop_assert!(!has_nul);
                prop_assert!(query.limit >= 1 && query.offset >= 0);
                prop_assert!(!query.sort.is_empty());
                for filter in &query.filters {
                    prop_assert!(is_column(&filter.field), "filter field {:?}", filter.field);
                    if let Some(sub) = &filter.subresource {
                        prop_assert!(SUBRESOURCES.contains(&sub.as_str()));
                    }
                    prop_assert!(!filter.values.is_empty());
                }
                for sort in &query.sort {
                    prop_assert!(is_column(&sort.field), "sort field {:?}", sort.field);
                }
                let kept: Vec<_> = pairs
                    .into_iter()
                    .filter(|(k, _)| k != "limit" && k != "offset")
                    .collect();
                prop_assert_eq!(query.passthrough, kept);
            }
            Err(ListError::NulCharacter) => prop_assert!(has_nul),
            Err(_) => prop_assert!(!has_nul),
        }
    }

    #[test]
    fn filters_are_read_back_as_written(
        filters in proptest::collection::vec(
            (proptest::option::of(0..SUBRESOURCES.len()), column(), 0..OPS.len(),
             proptest::collection::vec("[^\u{0}]{0,8}", 1..4)),
            1..6,
        )
    ) {
        // One filter per distinct key: values of a repeated key are grouped, which the
        // generator leaves out by deduplicating.
        let mut seen = std::collections::HashSet::new();
        let filters: Vec<_> = filters
            .into_iter()
            .filter(|(sub, field, op, _)| seen.insert((*sub, field.clone(), *op)))
            .collect();
        let pairs = filters
            .iter()
            .flat_map(|(sub, field, op, values)| {
                let key = match sub {
                    Some(s) => format!("filter[{}][{field}][{}]", SUBRESOURCES[*s], OPS[*op].0),
                    None => format!("filter[{field}][{}]", OPS[*op].0),
                };
                values.iter().map(move |v| (key.clone(), v.clone()))
            })
            .collect();
        let query = ListQuery::parse(pairs).expect("well-formed filters parse");
        prop_assert_eq!(query.filters.len(), filters.len());
        for (read, (sub, field, op, values)) in query.filters.iter().zip(&filters) {
            prop_assert_eq!(read.subresource.as_deref(), sub.map(|s| SUBRESOURCES[s]));
            prop_assert_eq!(&read.field, field);
            prop_assert_eq!(read.op, OPS[*op].1);
            prop_assert_eq!(&read.values, values);
        }
    }

    #[test]
    fn paging_is_accepted_exactly_when_in_range(limit in any::<i64>(), offset in any::<i64>()) {
        let query = ListQuery::parse(vec![
            ("limit".to_owned(), limit.to_string()),
            ("offset".to_owned(), offset.to_string()),
        ]);
        match (limit >= 1, offset >= 0) {
            (true, true) => {
                let query = query.expect("in range");
                prop_assert_eq!((query.limit, query.offset), (limit, offset));
            }
            (false, _) => prop_assert_eq!(query.err(), Some(ListError::LimitTooSmall)),
            (true, false) => prop_assert_eq!(query.err(), Some(ListError::OffsetTooSmall)),
        }
    }
}
