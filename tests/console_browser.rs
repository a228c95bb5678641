//! The web console in a real browser: tests/console drives headless Chromium (Selenium,
//! pinned in scripts/clients/requirements.txt) against the `/console` of the `quiver`
//! binary this test run built, through every page and form, failing on any browser
//! console error, and saves the screenshots under docs/console/. Chromium and its driver
//! come from the system's packages (the suite's conftest runs scripts/console/browser,
//! which installs them when missing).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

#[test]
fn console_in_headless_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = Command::new(root.join("scripts/clients/run"))
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(root.join("tests/console"))
        .current_dir(root)
        .env("QUIVER_BIN", env!("CARGO_BIN_EXE_quiver"))
        .env_remove("QUIVER_CONSOLE_ORIGIN")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "console tests failed ({}):\n{}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}
