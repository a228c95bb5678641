//! SIGKILL under HTTP write load: writers record every acknowledged document; the
//! server is killed mid-stream, restarted on the same data directory, and every
//! acknowledged document must be there. `QUIVER_KILL_CYCLES` sets the cycles
//! (default 5 here).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{create, doc, kill_cycles, request, spawn};
use serde_json::json;

const WRITERS: usize = 4;
const DIM: usize = 4;

#[test]
fn every_acknowledged_write_survives_sigkill() {
    let cycles = kill_cycles(5);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Small seals so kills also land during seals and compactions.
    let env = [("QUIVER_STORAGE_SEAL_ROWS", "300")];
    let mut all_acked: Vec<String> = Vec::new();
    {
        let s = spawn(&data, &env);
        create(&s, "k", DIM);
    }
    for cycle in 0..cycles {
        let mut s = spawn(&data, &env);
        // Everything acknowledged in earlier cycles is back (plus, possibly, batches
        // that were durable but whose answer the kill cut off).
        let info = s.req("GET", "/collections/k", None).json();
        let count = info["count"].as_u64().unwrap();
        assert!(count >= all_acked.len() as u64, "cycle {cycle}: {info}");
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (addr, stop) = (s.addr.clone(), Arc::clone(&stop));
                thread::spawn(move || {
                    let mut acked = Vec::new();
                    let mut batch = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let ids: Vec<String> = (0..5)
                            .map(|k| format!("y{cycle}-w{w}-b{batch}-{k}"))
                            .collect();
                        let docs: Vec<_> = ids
                            .iter()
                            .enumerate()
                            .map(|(k, id)| doc(id, batch * 5 + k as u64, DIM))
                            .collect();
                        let r = request(
                            &addr,
                            "POST",
                            "/collections/k/documents",
                            Some(&json!({ "documents": docs })),
                            None,
                        );
                        match r.status {
                            200 => acked.extend(ids),
                            // The connection died with the server: not acknowledged.
                            0 => break,
                            other => panic!("upsert answered {other}: {}", r.text()),
                        }
                        batch += 1;
                    }
                    acked
                })
            })
            .collect();
        // Kill at a different point of the load each cycle.
        thread::sleep(Duration::from_millis(60 + (cycle as u64 * 37) % 240));
        s.kill();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            all_acked.extend(w.join().unwrap());
        }
    }
    let s = spawn(&data, &env);
    let info = s.req("GET", "/collections/k", None).json();
    assert!(
        info["count"].as_u64().unwrap() >= all_acked.len() as u64,
        "{info} vs {} acked",
        all_acked.len()
    );
    for id in &all_acked {
        let r = s.req("GET", &format!("/collections/k/documents/{id}"), None);
        assert_eq!(r.status, 200, "acknowledged {id} lost: {}", r.text());
    }
    assert!(!all_acked.is_empty(), "no write was acknowledged at all");
}
