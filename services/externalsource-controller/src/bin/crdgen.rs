//! Prints the ExternalSource CRD (`cargo run --bin crdgen > deploy/crds/…`).

fn main() {
    print!("{}", externalsource_controller::crd::crd_yaml());
}
