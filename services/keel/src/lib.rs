//! `keel`: Keel's services composed in one process (`keel up`), the migrations, and the
//! benchmarks. [`stack`] is the one place the services are wired together, for `keel up`, the
//! benchmarks and the end-to-end tests alike.

mod bench;
mod chaos;
/// The command line.
pub mod cli;
/// Services composed in one process.
pub mod stack;
