//! The controller against the fake Kubernetes API server on loopback: one test binary.

mod lifecycle;
mod sources;
mod storage;
mod support;
