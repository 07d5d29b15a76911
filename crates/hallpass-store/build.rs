//! Rebuild when a migration is added: `sqlx::migrate!` embeds the folder at compile time, and
//! stable Rust does not track the files it reads.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
