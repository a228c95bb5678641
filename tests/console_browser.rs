//! The web console in a real browser: tests/console drives headless Chromium (Selenium,
//! pinned in scripts/clients/requirements.txt) against the `/console` of the `quiver`
//! binary this test run built, through every page and form, failing on any browser
//! console error, and saves the screenshots under docs/console/. Chromium and its driver
//! come from the system's packages (the suite's conftest runs scripts/console/browser,
//! which installs them when missing).

mod common;

#[test]
fn console_in_headless_chromium() {
    common::pytest("tests/console");
}
