//! Quiver's own Python packages against a real server: the client `quiver-client`
//! (clients/python) and the LangChain and LlamaIndex integrations built on it
//! (clients/langchain, clients/llamaindex). Each package's pytest suite starts the
//! `quiver` binary this test run built (through `QUIVER_BIN`, see
//! clients/testing/quiver_testing.py) and drives it over HTTP: no mocked server. The
//! suites run in the pinned environment scripts/clients/run builds, which installs the
//! packages editable from this checkout.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

/// Runs `pytest -q clients/<package>/tests`, failing with pytest's output.
fn pytest(package: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tests = root.join("clients").join(package).join("tests");
    assert!(tests.is_dir(), "{} is missing", tests.display());
    let run = Command::new(root.join("scripts/clients/run"))
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(&tests)
        .current_dir(root)
        .env("QUIVER_BIN", env!("CARGO_BIN_EXE_quiver"))
        // The suites read no other settings from the environment they inherit.
        .env_remove("QUIVER_URL")
        .env_remove("QUIVER_API_KEY")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "pytest of clients/{package} failed ({}):\n{}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn python_client() {
    pytest("python");
}

#[test]
fn langchain_integration() {
    pytest("langchain");
}

#[test]
fn llamaindex_integration() {
    pytest("llamaindex");
}
