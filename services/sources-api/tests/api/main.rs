//! Black-box tests of sources-api: the real app on 127.0.0.1:0 against a real PostgreSQL
//! database of its own per test. One binary, so it links once.

mod helpers;

mod auth;
mod listing;
mod openapi;
mod ops;
mod sources;
mod types;
