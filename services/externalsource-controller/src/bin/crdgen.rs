//! Prints the ExternalSource CRD (`cargo run --bin crdgen > deploy/crds/…`).

use std::io::Write as _;

fn main() -> std::io::Result<()> {
    std::io::stdout().write_all(externalsource_controller::crd::crd_yaml().as_bytes())
}
