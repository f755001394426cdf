// Embedded migrations must be re-read when a migration file is added or changed.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations/listener");
    println!("cargo:rerun-if-changed=../../migrations/tenant");
}
