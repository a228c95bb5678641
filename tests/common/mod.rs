//! Shared helpers for the black-box tests: spawn the real `quiver` binary on port 0
//! with a temporary data directory, and speak HTTP/1.1 to it over a raw socket (raw, so
//! tests can send exactly the bytes they mean: bad UTF-8, odd paths, lying headers).

#![allow(dead_code, clippy::unwrap_used)]

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

/// A running server process. Killed (SIGKILL) when dropped.
pub struct Server {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    pub addr: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

/// Starts `quiver serve` on 127.0.0.1:0 over `data_dir`, with extra `QUIVER_*`
/// settings in `env`; waits for the "listening on" line.
pub fn spawn(data_dir: &Path, env: &[(&str, &str)]) -> Server {
    let log = data_dir.with_extension(format!("log{}", next_log_id()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quiver"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        // No server.toml in the working directory: settings come from `env` only.
        .current_dir(data_dir.parent().unwrap())
        .env("RUST_LOG", "info")
        .env("QUIVER_STORAGE_WAL_SYNC", "always")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(File::create(&log).unwrap()));
    for (k, _) in std::env::vars() {
        if k.starts_with("QUIVER_") && k != "QUIVER_STORAGE_WAL_SYNC" {
            cmd.env_remove(&k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let Some(addr) = line.trim().strip_prefix("listening on http://") else {
        let _ = child.wait();
        panic!(
            "server did not start (stdout {line:?}); log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    };
    Server {
        addr: addr.to_string(),
        child,
        _stdout: stdout,
        data_dir: data_dir.to_path_buf(),
        log,
    }
}

fn next_log_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

impl Server {
    /// SIGKILL, no chance to sync.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(ok.success());
        self.child.wait().unwrap()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn req(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        request(&self.addr, method, path, body, None)
    }

    pub fn req_key(&self, method: &str, path: &str, body: Option<&Value>, key: &str) -> Resp {
        request(&self.addr, method, path, body, Some(key))
    }

    /// Asserts the server answers `/health` and still holds `count` documents in
    /// `collection`.
    pub fn assert_healthy(&self, collection: &str, count: u64) {
        let h = self.req("GET", "/health", None);
        assert_eq!(h.status, 200, "{}", h.text());
        let c = self.req("GET", &format!("/collections/{collection}"), None);
        assert_eq!(c.status, 200, "{}", c.text());
        assert_eq!(c.json()["count"], json!(count), "{}", c.text());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts the status and the error shape, and returns the error code.
    pub fn expect_error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "body: {}", self.text());
        let v = self.json();
        let code = v["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code: {v}"));
        assert!(v["error"]["message"].is_string(), "no message: {v}");
        code.to_string()
    }
}

/// A JSON request (or none) with an optional bearer key.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
    key: Option<&str>,
) -> Resp {
    let body = body.map(|b| serde_json::to_vec(b).unwrap());
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(k) = key {
        head.push_str(&format!("Authorization: Bearer {k}\r\n"));
    }
    if let Some(b) = &body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_deref().unwrap_or_default());
    raw(addr, &bytes)
}

/// Sends `bytes` as they are and reads the response (the request must ask for
/// `Connection: close`). Returns status 0 when the connection failed outright.
pub fn raw(addr: &str, bytes: &[u8]) -> Resp {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return Resp {
            status: 0,
            headers: Vec::new(),
            body: Vec::new(),
        };
    };
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    // The server may answer (413, 401) and close before reading everything; the
    // response is still there to read.
    let _ = s.write_all(bytes);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    parse(&buf)
}

fn parse(buf: &[u8]) -> Resp {
    let empty = Resp {
        status: 0,
        headers: Vec::new(),
        body: Vec::new(),
    };
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return empty;
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = buf[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&b[..eol]);
        let size =
            usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&b[start..(start + size).min(b.len())]);
        b = &b[(start + size + 2).min(b.len())..];
    }
    out
}

/// A document with a small vector derived from `i`.
pub fn doc(id: &str, i: u64, dim: usize) -> Value {
    let vector: Vec<f32> = (0..dim)
        .map(|j| (((i * 31 + j as u64 * 17) % 97) as f32 + 1.0) / 97.0)
        .collect();
    json!({"id": id, "text": format!("document number {i}"), "metadata": {"n": i, "tag": if i.is_multiple_of(2) { "even" } else { "odd" }}, "vector": vector})
}

/// Creates collection `name` with `dim` on `s`, asserting 201.
pub fn create(s: &Server, name: &str, dim: usize) {
    let r = s.req(
        "PUT",
        &format!("/collections/{name}"),
        Some(&json!({"dim": dim})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
}

/// Upserts `docs` and returns the LSN, asserting 200.
pub fn upsert(s: &Server, name: &str, docs: Vec<Value>) -> u64 {
    let r = s.req(
        "POST",
        &format!("/collections/{name}/documents"),
        Some(&json!({ "documents": docs })),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["lsn"].as_u64().unwrap()
}

/// The number of cycles for kill tests: `QUIVER_KILL_CYCLES`, else `default`.
pub fn kill_cycles(default: usize) -> usize {
    std::env::var("QUIVER_KILL_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn gunzip(src: &Path, dst: &Path) {
    let mut input = flate2::read::GzDecoder::new(BufReader::new(File::open(src).unwrap()));
    let mut output = BufWriter::new(File::create(dst).unwrap());
    std::io::copy(&mut input, &mut output).unwrap();
}

/// Places the quiver-embed test fixture `fixture` in `<data>/models/test--<fixture>`.
pub fn install(data: &Path, fixture: &str) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/quiver-embed/tests/fixtures");
    let src = fixtures.join(fixture);
    let dest = data.join("models").join(format!("test--{fixture}"));
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::copy(src.join("config.json"), dest.join("config.json")).unwrap();
    gunzip(
        &src.join("model.safetensors.gz"),
        &dest.join("model.safetensors"),
    );
    let tok = if fixture == "bert" {
        src.join("tokenizer.json.gz")
    } else {
        fixtures.join("qwen3-tokenizer.json.gz")
    };
    gunzip(&tok, &dest.join("tokenizer.json"));
}

/// Runs `quiver bench <bench> <args> --out FILE` from the repository root; returns the
/// JSON report and the printed Markdown, failing with both outputs when the run fails.
pub fn run_bench(bench: &str, args: &[&std::ffi::OsStr]) -> (Value, String) {
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("report.json");
    let run = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["bench", bench])
        .args(args)
        .arg("--out")
        .arg(&json)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "quiver bench {bench} {args:?} failed: {}\n{stdout}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let report = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (report, stdout)
}

/// Runs the pytest suite at `tests` (a path under the repository) in the pinned Python
/// environment of scripts/clients/run, against the `quiver` binary this test run built
/// (`QUIVER_BIN`), failing with pytest's output. Settings the suites would otherwise
/// inherit from a developer's shell (a server URL or key, another console origin) are
/// cleared so they always start their own servers.
pub fn pytest(tests: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join(tests);
    assert!(dir.is_dir(), "{} is missing", dir.display());
    let run = Command::new(root.join("scripts/clients/run"))
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(&dir)
        .current_dir(root)
        .env("QUIVER_BIN", env!("CARGO_BIN_EXE_quiver"))
        .env_remove("QUIVER_URL")
        .env_remove("QUIVER_API_KEY")
        .env_remove("QUIVER_CONSOLE_ORIGIN")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "pytest {tests} failed ({}):\n{}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}
