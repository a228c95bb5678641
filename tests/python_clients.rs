//! Quiver's own Python packages against a real server: the client `quiver-client`
//! (clients/python) and the LangChain and LlamaIndex integrations built on it
//! (clients/langchain, clients/llamaindex). Each package's pytest suite starts the
//! `quiver` binary this test run built (through `QUIVER_BIN`, see
//! clients/testing/quiver_testing.py) and drives it over HTTP: no mocked server. The
//! suites run in the pinned environment scripts/clients/run builds, which installs the
//! packages editable from this checkout.

mod common;

#[test]
fn python_client() {
    common::pytest("clients/python/tests");
}

#[test]
fn langchain_integration() {
    common::pytest("clients/langchain/tests");
}

#[test]
fn llamaindex_integration() {
    common::pytest("clients/llamaindex/tests");
}
