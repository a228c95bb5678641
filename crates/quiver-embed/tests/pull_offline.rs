//! `pull` honours `HF_ENDPOINT`: pointed at a closed local port it fails at once with
//! `NotAvailable` naming the directory to fill by hand. Kept in its own test binary because
//! it sets a process-wide environment variable.

#![allow(clippy::unwrap_used)]

use quiver_embed::{resolve, EmbedError};

#[test]
fn pull_with_hf_endpoint_unreachable_fails_with_instructions() {
    std::env::set_var("HF_ENDPOINT", "http://127.0.0.1:9");
    let data = tempfile::tempdir().unwrap();
    let err = resolve::pull("sentence-transformers/all-MiniLM-L6-v2", data.path()).unwrap_err();
    let EmbedError::NotAvailable { name, reason } = &err else {
        panic!("wrong error {err:?}");
    };
    assert_eq!(name, "sentence-transformers/all-MiniLM-L6-v2");
    let dir = data
        .path()
        .join("models")
        .join("sentence-transformers--all-MiniLM-L6-v2");
    assert!(reason.contains(&dir.display().to_string()), "{reason}");
    assert!(reason.contains("127.0.0.1:9"), "{reason}");
    let shown = err.to_string();
    assert!(
        shown.contains("not available") && shown.contains("tokenizer.json"),
        "{shown}"
    );
}
