//! Rebuilds the server when a file of the web console changes: the console is compiled
//! into the binary (`src/routes/console.rs`), and cargo would otherwise not notice an
//! asset that was added, edited or removed.

fn main() {
    println!("cargo:rerun-if-changed=console");
}
