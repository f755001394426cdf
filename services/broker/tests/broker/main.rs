//! The broker against the real local servers, through its HTTP API.

mod common;
mod drift;
mod kafka;
mod kubernetes;
mod lifecycle;
mod mysql;
mod nats;
mod openapi;
mod protection;
mod rabbitmq;
mod redis;
mod resilience;
