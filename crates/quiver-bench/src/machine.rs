//! What machine a run measured: CPU model, cores, memory, OS, kernel and build, so a
//! figure is never read without knowing where it came from.

use serde_json::{json, Value};

fn first_line_with(path: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| std::env::consts::OS.to_string())
}

/// Total memory in bytes (Linux), if known.
pub fn memory_bytes() -> Option<u64> {
    let kb = first_line_with("/proc/meminfo", "MemTotal")?;
    kb.split_whitespace()
        .next()?
        .parse::<u64>()
        .ok()
        .map(|k| k * 1024)
}

/// Cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Peak resident memory of this process so far, bytes (Linux `VmHWM`).
pub fn peak_rss_bytes() -> Option<u64> {
    proc_status_kb("VmHWM")
}

/// Current resident memory, bytes (Linux `VmRSS`).
pub fn rss_bytes() -> Option<u64> {
    proc_status_kb("VmRSS")
}

fn proc_status_kb(key: &str) -> Option<u64> {
    let v = first_line_with("/proc/self/status", key)?;
    v.split_whitespace()
        .next()?
        .parse::<u64>()
        .ok()
        .map(|k| k * 1024)
}

/// The machine and build as a JSON object.
pub fn info() -> Value {
    json!({
        "cpu": first_line_with("/proc/cpuinfo", "model name").unwrap_or_else(|| std::env::consts::ARCH.to_string()),
        "cores": cores(),
        "memory_bytes": memory_bytes(),
        "os": os_name(),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).ok(),
        "quiver_version": env!("CARGO_PKG_VERSION"),
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
    })
}

/// One line naming the machine, for report headers.
pub fn summary(info: &Value) -> String {
    let gib = info["memory_bytes"]
        .as_u64()
        .map_or(0.0, |b| b as f64 / (1u64 << 30) as f64);
    format!(
        "{} ({} cores), {gib:.0} GiB, {}, quiver {} {} build",
        info["cpu"].as_str().unwrap_or("?"),
        info["cores"],
        info["os"].as_str().unwrap_or("?"),
        info["quiver_version"].as_str().unwrap_or("?"),
        info["build"].as_str().unwrap_or("?"),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn info_names_cores_and_build() {
        let i = info();
        assert!(i["cores"].as_u64().unwrap() >= 1);
        assert!(summary(&i).contains("cores"));
        if cfg!(target_os = "linux") {
            assert!(peak_rss_bytes().unwrap() >= rss_bytes().unwrap() / 2);
        }
    }
}
