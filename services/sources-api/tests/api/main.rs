//! Black-box tests of sources-api: the real app on 127.0.0.1:0 against a real PostgreSQL
//! database of its own per test. One binary, so it links once.

mod helpers;

mod applications;
mod auth;
mod authentications;
mod availability;
mod bulk;
mod client_proof;
mod creates;
mod endpoints;
mod events;
mod internal;
mod listing;
mod openapi;
mod ops;
mod requests;
mod rhc_secrets;
mod sources;
mod stream;
mod types;
