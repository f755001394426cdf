// Embedded migrations must be re-read when a migration file is added or changed.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations/sources");
}
