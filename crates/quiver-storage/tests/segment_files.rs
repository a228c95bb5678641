//! Black-box checks of segment files: every byte of every file is covered by a
//! checksum, and rows read back exactly as written.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;

use quiver_storage::segment::{write_segment, Segment, SegmentChunk, SegmentRow, Tombstones};
use quiver_storage::StorageError;

fn write_sample(dir: &Path, rows: usize, dim: usize) -> std::path::PathBuf {
    let ids: Vec<String> = (0..rows)
        .map(|i| format!("doc-{:04}", (i * 7919) % 10_000))
        .collect();
    let texts: Vec<String> = (0..rows)
        .map(|i| format!("text number {i} ünïcode"))
        .collect();
    let metas: Vec<String> = (0..rows).map(|i| format!("{{\"n\":{i}}}")).collect();
    let vectors: Vec<Vec<f32>> = (0..rows)
        .map(|i| (0..dim).map(|j| (i * dim + j) as f32 * 0.5 - 3.0).collect())
        .collect();
    let mut seg_rows: Vec<SegmentRow<'_>> = (0..rows)
        .map(|i| SegmentRow {
            chunks: &[],
            id: &ids[i],
            text: &texts[i],
            metadata_json: &metas[i],
            lsn: 100 + i as u64,
            vector: &vectors[i],
        })
        .collect();
    write_segment(dir, 1, dim, &mut seg_rows).unwrap()
}

#[test]
fn rows_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (rows, dim) = (300, 5);
    let seg = Segment::open(&write_sample(dir.path(), rows, dim)).unwrap();
    assert_eq!(seg.len(), rows);
    assert_eq!(seg.lsn_range(), (100, 100 + rows as u64 - 1));
    for i in 0..rows {
        let id = format!("doc-{:04}", (i * 7919) % 10_000);
        let row = seg.find(&id).unwrap();
        let doc = seg.doc(row).unwrap();
        assert_eq!(doc.id, id);
        assert_eq!(doc.text, format!("text number {i} ünïcode"));
        assert_eq!(doc.metadata_json, format!("{{\"n\":{i}}}"));
        assert_eq!(doc.lsn, 100 + i as u64);
        let want: Vec<f32> = (0..dim).map(|j| (i * dim + j) as f32 * 0.5 - 3.0).collect();
        assert_eq!(doc.vector, &want[..]);
        assert_eq!(seg.vector(row), &want[..]);
    }
    assert_eq!(seg.vectors().len(), rows * dim);
}

#[test]
fn any_flipped_byte_fails_open() {
    let dir = tempfile::tempdir().unwrap();
    let seg_dir = write_sample(dir.path(), 12, 3);
    for name in ["vectors.f32", "docs.bin", "docs.idx", "META"] {
        let path = seg_dir.join(name);
        let good = fs::read(&path).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x04;
            fs::write(&path, &bad).unwrap();
            match Segment::open(&seg_dir) {
                Err(StorageError::Corruption { .. })
                | Err(StorageError::UnsupportedVersion { .. }) => {}
                other => panic!("{name} byte {i}: {other:?}"),
            }
        }
        fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert!(Segment::open(&seg_dir).is_err(), "{name} truncated");
        fs::write(&path, &good).unwrap();
    }
    assert!(Segment::open(&seg_dir).is_ok());
}

#[test]
fn tombstones_persist_beside_segment() {
    let dir = tempfile::tempdir().unwrap();
    let seg_dir = write_sample(dir.path(), 70, 2);
    let mut t = Tombstones::load(&seg_dir, 70).unwrap();
    assert_eq!(t.deleted(), 0);
    t.delete(0);
    t.delete(69);
    t.store(&seg_dir).unwrap();
    let back = Tombstones::load(&seg_dir, 70).unwrap();
    assert_eq!(back.deleted(), 2);
    assert!(back.is_deleted(69) && !back.is_deleted(1));
    // A bitmap for another row count is refused, not silently misapplied.
    assert!(Tombstones::load(&seg_dir, 71).is_err());
    // The segment itself still opens and its checksums still hold.
    assert_eq!(Segment::open(&seg_dir).unwrap().len(), 70);
}

/// Writes `rows` rows with ids `id-<n>` (zero-padded, so byte order is numeric order)
/// for every even `n` below `2 * rows`, leaving the odd ids absent.
fn write_even_ids(dir: &Path, rows: usize, text: &str) -> std::path::PathBuf {
    let ids: Vec<String> = (0..rows).map(|i| format!("id-{:08}", 2 * i)).collect();
    let vectors: Vec<[f32; 2]> = (0..rows).map(|i| [i as f32, -(i as f32)]).collect();
    let mut seg_rows: Vec<SegmentRow<'_>> = (0..rows)
        .map(|i| SegmentRow {
            chunks: &[],
            id: &ids[i],
            text,
            metadata_json: "{}",
            lsn: 1 + i as u64,
            vector: &vectors[i],
        })
        .collect();
    write_segment(dir, 3, 2, &mut seg_rows).unwrap()
}

#[test]
fn find_in_a_big_segment() {
    let dir = tempfile::tempdir().unwrap();
    let rows = 200_000;
    let seg = Segment::open(&write_even_ids(dir.path(), rows, "t")).unwrap();
    assert_eq!(seg.len(), rows);
    for i in (0..rows).step_by(997).chain([0, 1, rows - 2, rows - 1]) {
        let id = format!("id-{:08}", 2 * i);
        assert_eq!(seg.find(&id), Some(i), "{id}");
        assert_eq!(seg.id_of(i), id);
        assert_eq!(seg.lsn_of(i), 1 + i as u64);
        assert_eq!(seg.vector(i), &[i as f32, -(i as f32)]);
        assert_eq!(seg.find(&format!("id-{:08}", 2 * i + 1)), None);
    }
    for absent in [
        "",
        "id-",
        "id-0000000",
        "a",
        "id-99999999",
        "zzz",
        "id-00000000\0",
    ] {
        assert_eq!(seg.find(absent), None, "{absent:?}");
    }
}

#[test]
fn records_longer_than_the_read_buffer() {
    let dir = tempfile::tempdir().unwrap();
    // Each record is larger than the open-time read buffer, so every record and most
    // headers straddle a buffer boundary.
    let text = "x".repeat(700_000);
    let seg = Segment::open(&write_even_ids(dir.path(), 5, &text)).unwrap();
    for i in 0..5 {
        let doc = seg.doc(i).unwrap();
        assert_eq!(doc.id, format!("id-{:08}", 2 * i));
        assert_eq!(doc.text.len(), 700_000);
        assert_eq!(seg.find(doc.id), Some(i));
    }
}

/// Resident kilobytes of this process's mapping of `file`, from `/proc/self/smaps`.
#[cfg(target_os = "linux")]
fn resident_kb(file: &Path) -> u64 {
    let smaps = fs::read_to_string("/proc/self/smaps").unwrap();
    let name = file.to_str().unwrap();
    let mut total = 0;
    let mut in_map = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            in_map = line.ends_with(name);
        } else if in_map && first == "Rss:" {
            total += line
                .split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap();
        }
    }
    total
}

#[cfg(target_os = "linux")]
#[test]
fn open_leaves_the_mappings_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let seg_dir = write_even_ids(dir.path(), 100_000, "some text");
    let seg = Segment::open(&seg_dir).unwrap();
    let files = ["vectors.f32", "docs.bin", "docs.idx"].map(|n| seg_dir.join(n));
    for f in &files {
        assert_eq!(resident_kb(f), 0, "{} resident after open", f.display());
    }
    // Reading through the segment does fault pages in, so the measure above can fail.
    assert_eq!(seg.find("id-00100000"), Some(50_000));
    assert_eq!(seg.vector(99_999)[0], 99_999.0);
    for f in &files {
        assert!(
            resident_kb(f) > 0,
            "{} not resident after reads",
            f.display()
        );
    }
}

/// Rows `a`, `b`, `c`: `a` and `c` in chunks, `b` whole.
fn write_chunked(dir: &Path) -> std::path::PathBuf {
    let v = |x: f32| vec![x, -x];
    let (va, vb, vc) = (v(1.0), v(2.0), v(3.0));
    let (a0, a1, a2, c0, c1) = (v(10.0), v(11.0), v(12.0), v(30.0), v(31.0));
    let a_chunks = [
        SegmentChunk {
            start: 0,
            end: 6,
            vector: &a0,
        },
        SegmentChunk {
            start: 4,
            end: 10,
            vector: &a1,
        },
        SegmentChunk {
            start: 8,
            end: 13,
            vector: &a2,
        },
    ];
    let c_chunks = [
        SegmentChunk {
            start: 0,
            end: 3,
            vector: &c0,
        },
        SegmentChunk {
            start: 3,
            end: 7,
            vector: &c1,
        },
    ];
    let mut rows = vec![
        SegmentRow {
            id: "c",
            text: "ccc cccc",
            metadata_json: "{}",
            lsn: 3,
            vector: &vc,
            chunks: &c_chunks,
        },
        SegmentRow {
            id: "a",
            text: "aaaa aaaa aaa",
            metadata_json: "{}",
            lsn: 1,
            vector: &va,
            chunks: &a_chunks,
        },
        SegmentRow {
            id: "b",
            text: "bb",
            metadata_json: "{}",
            lsn: 2,
            vector: &vb,
            chunks: &[],
        },
    ];
    write_segment(dir, 1, 2, &mut rows).unwrap()
}

#[test]
fn chunks_read_back_by_row_and_by_node() {
    let dir = tempfile::tempdir().unwrap();
    let seg = Segment::open(&write_chunked(dir.path())).unwrap();
    assert!(seg.has_chunks());
    // a: 3 chunks, b: one over its whole text, c: 2.
    assert_eq!((seg.len(), seg.nodes()), (3, 6));
    assert_eq!(seg.node_vectors().len(), 12);
    let rows: Vec<usize> = (0..6).map(|n| seg.node_row(n)).collect();
    assert_eq!(rows, [0, 0, 0, 1, 2, 2]);
    assert_eq!(seg.row_nodes(0), 0..3);
    assert_eq!(seg.row_nodes(1), 3..4);
    assert_eq!(seg.row_nodes(2), 4..6);
    assert_eq!(seg.node_span(1), 4..10);
    assert_eq!(seg.node_span(3), 0..2);
    assert_eq!(seg.node_vector(3), &[2.0, -2.0]);
    assert_eq!(seg.node_vector(5), &[31.0, -31.0]);
    let a = seg.chunks(0);
    assert_eq!(a.len(), 3);
    assert_eq!(
        (a[2].start, a[2].end, a[2].vector),
        (8, 13, &[12.0f32, -12.0][..])
    );
    assert!(seg.chunks(1).is_empty(), "a whole document lists no chunks");
    assert_eq!(seg.vector(1), &[2.0, -2.0]);

    // Without chunks, nodes are rows.
    let plain = Segment::open(&write_sample(&dir.path().join("p"), 4, 3)).unwrap();
    assert!(!plain.has_chunks());
    assert_eq!(
        (plain.nodes(), plain.node_row(2), plain.row_nodes(3)),
        (4, 2, 3..4)
    );
    assert!(plain.chunks(0).is_empty());
}

#[test]
fn damaged_chunk_files_fail_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_chunked(dir.path());
    for name in ["chunks.f32", "chunks.idx"] {
        let file = path.join(name);
        let good = fs::read(&file).unwrap();
        let mut bad = good.clone();
        bad[5] ^= 0x40;
        fs::write(&file, &bad).unwrap();
        assert!(Segment::open(&path).is_err(), "{name} flipped");
        fs::write(&file, &good[..good.len() - 4]).unwrap();
        assert!(Segment::open(&path).is_err(), "{name} cut short");
        fs::write(&file, &good).unwrap();
    }
    Segment::open(&path).unwrap();
}

#[test]
fn chunk_outside_its_text_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let v = [1.0f32];
    let chunks = [SegmentChunk {
        start: 0,
        end: 9,
        vector: &v,
    }];
    let mut rows = vec![SegmentRow {
        id: "a",
        text: "short",
        metadata_json: "{}",
        lsn: 1,
        vector: &v,
        chunks: &chunks,
    }];
    let err = write_segment(dir.path(), 1, 1, &mut rows).unwrap_err();
    assert!(err.to_string().contains("outside its 5-byte text"), "{err}");
}
