//! The ingestion's rules and formats, with no I/O: polling, manifests, report layouts and
//! the conversion of one CSV row.

pub mod convert;
pub mod layout;
pub mod manifest;
pub mod polling;
