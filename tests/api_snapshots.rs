//! Snapshots over HTTP against the real binary: create, list, download, upload into a
//! new name, restore by name, whole-database snapshots, survival across a restart,
//! damaged uploads refused with the live collection unchanged, and SIGKILL at random
//! moments of a restore (`QUIVER_KILL_CYCLES` cycles, default 20): after a restart the
//! collection is entirely the old or entirely the new one.

#![allow(clippy::unwrap_used)]

mod common;

use std::thread;
use std::time::Instant;

use common::{create, doc, kill_cycles, raw, spawn, upsert, Resp, Server};
use serde_json::{json, Value};

const DIM: usize = 8;

/// Sends `body` as an `application/octet-stream` POST.
fn upload(s: &Server, path: &str, body: &[u8]) -> Resp {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        s.addr,
        body.len()
    );
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    raw(&s.addr, &bytes)
}

fn fill(s: &Server, name: &str, prefix: &str, n: u64) {
    let ids: Vec<u64> = (0..n).collect();
    for chunk in ids.chunks(500) {
        let docs = chunk
            .iter()
            .map(|&i| doc(&format!("{prefix}-{i}"), i, DIM))
            .collect();
        upsert(s, name, docs);
    }
}

fn count(s: &Server, name: &str) -> u64 {
    let r = s.req("GET", &format!("/collections/{name}"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["count"].as_u64().unwrap()
}

fn has(s: &Server, name: &str, id: &str) -> bool {
    let r = s.req("GET", &format!("/collections/{name}/documents/{id}"), None);
    assert!(r.status == 200 || r.status == 404, "{}", r.text());
    r.status == 200
}

fn snapshot(s: &Server, coll: &str, name: &str) -> Value {
    let r = s.req(
        "POST",
        &format!("/collections/{coll}/snapshots"),
        Some(&json!({ "name": name })),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()
}

fn hits(s: &Server, coll: &str, body: &Value) -> Vec<String> {
    let r = s.req("POST", &format!("/collections/{coll}/query"), Some(body));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn round_trip_through_download_upload_and_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut s = spawn(&data, &[("QUIVER_STORAGE_SEAL_ROWS", "100")]);
    create(&s, "src", DIM);
    fill(&s, "src", "d", 300);
    let created = snapshot(&s, "src", "s1");
    assert_eq!(created["name"], "s1");
    assert!(created["lsn"].as_u64().unwrap() > 0);
    let size = created["size"].as_u64().unwrap();
    let listed = s.req("GET", "/collections/src/snapshots", None).json();
    assert_eq!(listed["snapshots"][0]["name"], "s1", "{listed}");
    assert_eq!(listed["snapshots"][0]["size"].as_u64(), Some(size));
    assert_eq!(listed["snapshots"][0]["lsn"], created["lsn"], "{listed}");
    assert_eq!(
        listed["snapshots"][0]["collections"],
        json!([{"name": "src", "lsn": created["lsn"]}])
    );
    // Same name twice: conflict.
    let again = s.req(
        "POST",
        "/collections/src/snapshots",
        Some(&json!({"name": "s1"})),
    );
    assert_eq!(again.expect_error(409), "conflict");

    let dl = s.req("GET", "/collections/src/snapshots/s1", None);
    assert_eq!(dl.status, 200);
    assert_eq!(dl.body.len() as u64, size);
    let archive = dl.body;

    // Writes after the snapshot are not in it.
    upsert(&s, "src", vec![doc("late", 1, DIM)]);
    let r = upload(
        &s,
        "/collections/src/snapshots/restore?target=copy",
        &archive,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["restored"][0]["name"], "copy");
    assert_eq!(r.json()["restored"][0]["documents"], 300);
    assert_eq!(count(&s, "copy"), 300);
    assert!(!has(&s, "copy", "late"));
    let q = json!({"vector": doc("q", 7, DIM)["vector"], "top_k": 5, "ef": 4096});
    assert_eq!(hits(&s, "copy", &q), hits(&s, "src", &q));

    // Damaged uploads: refused, nothing changes.
    let mut flipped = archive.clone();
    let mid = flipped.len() / 3;
    flipped[mid] ^= 0x40;
    for (what, body) in [
        ("flipped", flipped),
        ("truncated", archive[..archive.len() / 2].to_vec()),
    ] {
        let r = upload(&s, "/collections/src/snapshots/restore?target=copy", &body);
        assert_eq!(r.expect_error(400), "invalid_snapshot", "{what}");
        assert_eq!(count(&s, "copy"), 300, "{what}");
    }

    // Restore by name into the same collection (replacing it).
    let r = s.req(
        "POST",
        "/collections/src/snapshots/restore",
        Some(&json!({"snapshot": "s1"})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(count(&s, "src"), 300);
    assert!(!has(&s, "src", "late"));
    let missing = s.req(
        "POST",
        "/collections/src/snapshots/restore",
        Some(&json!({"snapshot": "nope"})),
    );
    assert_eq!(missing.expect_error(404), "not_found");
    let bad_name = s.req(
        "POST",
        "/collections/src/snapshots",
        Some(&json!({"name": "../x"})),
    );
    assert_eq!(bad_name.expect_error(400), "invalid_name");

    // Whole-database snapshot, with zstd.
    let all = s.req(
        "POST",
        "/snapshots?compress=zstd",
        Some(&json!({"name": "all"})),
    );
    assert_eq!(all.status, 201, "{}", all.text());
    assert_eq!(all.json()["collections"].as_array().unwrap().len(), 2);
    let del = s.req("DELETE", "/collections/copy", None);
    assert_eq!(del.status, 200, "{}", del.text());

    // After a restart, everything is still there and restorable.
    assert!(s.terminate().success());
    let s = spawn(&data, &[]);
    assert_eq!(count(&s, "src"), 300);
    let listed = s.req("GET", "/snapshots", None).json();
    assert_eq!(listed["snapshots"][0]["name"], "all", "{listed}");
    let names: Vec<&str> = listed["snapshots"][0]["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{listed}");
    assert!(listed["snapshots"][0]["lsn"].as_u64().unwrap() > 0);
    let r = s.req(
        "POST",
        "/snapshots/restore",
        Some(&json!({"snapshot": "all"})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(count(&s, "copy"), 300);
    let r = upload(
        &s,
        "/collections/src/snapshots/restore?target=again",
        &archive,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(count(&s, "again"), 300);
    let gone = s.req("DELETE", "/collections/src/snapshots/s1", None);
    assert_eq!(gone.status, 200, "{}", gone.text());
    let r = s.req("GET", "/collections/src/snapshots/s1", None);
    assert_eq!(r.expect_error(404), "not_found");
}

#[test]
fn upload_over_the_snapshot_limit_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let s = spawn(
        &tmp.path().join("data"),
        &[("QUIVER_LIMITS_MAX_SNAPSHOT_BYTES", "1000")],
    );
    create(&s, "c", DIM);
    let r = upload(&s, "/collections/c/snapshots/restore", &vec![0u8; 5000]);
    assert_eq!(r.expect_error(413), "too_large");
}

/// Which of the two states collection `k` is in; panics on anything else.
fn state_of(s: &Server, sizes: [(u64, &str); 2]) -> usize {
    let n = count(s, "k");
    let which = sizes
        .iter()
        .position(|(size, _)| *size == n)
        .unwrap_or_else(|| panic!("collection holds {n} documents, neither state"));
    let (size, prefix) = sizes[which];
    let (_, other) = sizes[1 - which];
    for i in [0, size / 2, size - 1] {
        assert!(
            has(s, "k", &format!("{prefix}-{i}")),
            "{prefix}-{i} missing"
        );
    }
    assert!(!has(s, "k", &format!("{other}-0")), "mixed states");
    which
}

#[test]
fn sigkill_during_restore_leaves_old_or_new() {
    let cycles = kill_cycles(20);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let env = [("QUIVER_STORAGE_SEAL_ROWS", "400")];
    let sizes = [(1500u64, "a"), (700u64, "b")];
    // Snapshot "sa" of k holds state a; snapshot "sb" of collection b holds state b.
    let restore_time = {
        let s = spawn(&data, &env);
        create(&s, "k", DIM);
        fill(&s, "k", "a", sizes[0].0);
        snapshot(&s, "k", "sa");
        create(&s, "b", DIM);
        fill(&s, "b", "b", sizes[1].0);
        snapshot(&s, "b", "sb");
        let t = Instant::now();
        let r = s.req(
            "POST",
            "/collections/b/snapshots/restore",
            Some(&json!({"snapshot": "sb", "target": "k"})),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let t = t.elapsed();
        assert_eq!(state_of(&s, sizes), 1);
        t
    };
    let mut outcomes = [0usize; 2];
    let mut expected_from = 1;
    for cycle in 0..cycles {
        let mut s = spawn(&data, &env);
        let now = state_of(&s, sizes);
        if cycle > 0 {
            outcomes[usize::from(now != expected_from)] += 1;
        }
        let (path, snap) = if now == 1 {
            ("/collections/k/snapshots/restore", "sa")
        } else {
            ("/collections/b/snapshots/restore", "sb")
        };
        let body = json!({"snapshot": snap, "target": "k"});
        let addr = s.addr.clone();
        let req = thread::spawn(move || common::request(&addr, "POST", path, Some(&body), None));
        // Spread the kills over the whole restore (and a little past it).
        let frac = ((cycle * 37) % 100) as u32;
        thread::sleep(restore_time * frac / 80);
        s.kill();
        let _ = req.join();
        expected_from = now;
    }
    let s = spawn(&data, &env);
    state_of(&s, sizes);
    let leftovers: Vec<String> = std::fs::read_dir(data.join("collections"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    eprintln!(
        "kill cycles: {} stayed old, {} became new",
        outcomes[0], outcomes[1]
    );
}
