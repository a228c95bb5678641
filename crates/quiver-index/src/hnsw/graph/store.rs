//! Where a growing graph keeps its nodes: chunks of fixed-stride arrays that never move.
//!
//! A memtable's graph grows while it is searched, so its storage can neither be
//! reallocated (a search would read freed memory) nor sit behind a lock every distance
//! would take. Nodes live in chunks whose sizes double (1,024 nodes, then 2,048, ...);
//! a chunk is allocated once, the first time a node in it is created, and stays where it
//! is until the graph is dropped. Finding a node's chunk is a leading-zero count, and
//! inside a chunk every array has a fixed stride, as in hnswlib's single level-0 block:
//! the vector at `slot × dim`, the level-0 link record at `slot × (1 + 2M)`, and, when
//! the graph keeps codes, the node's code record at `slot × code_stride` (see `codes`).
//!
//! Concurrency: a node's vector, key and level are written once, by the inserting
//! thread, before any link to the node exists. Link records are atomics: writers hold
//! the node's lock and store with release ordering; readers take no lock and load with
//! acquire ordering, so a reader that finds a node's id in a link also sees its vector.
//! A reader racing a rewrite may see a mix of old and new links, every one of them a
//! node that exists, which a walk tolerates (hnswlib's walks race the same way).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;

use parking_lot::{Mutex, MutexGuard};

use super::codes::{self, CodeRecord};
use crate::simd::prefetch;

/// log2 of the first chunk's node count.
const FIRST_SHIFT: u32 = 10;
/// Chunks enough for every `u32` node id.
const CHUNKS: usize = (32 - FIRST_SHIFT) as usize + 1;

/// Chunk holding `node`, and the node's slot in it.
#[inline]
fn locate(node: u32) -> (usize, usize) {
    let x = (node as usize >> FIRST_SHIFT) + 1;
    let chunk = (usize::BITS - 1 - x.leading_zeros()) as usize;
    let first = ((1usize << chunk) - 1) << FIRST_SHIFT;
    (chunk, node as usize - first)
}

/// A zero-filled boxed slice of `T`, from the allocator's zeroed pages (untouched pages
/// cost no memory until written).
///
/// # Safety
/// `T` must have the size and alignment of `Z`, and all-zero bits must be a valid `T`.
unsafe fn zeroed<Z: Clone + Default, T>(len: usize) -> Box<[T]> {
    let plain = vec![Z::default(); len].into_boxed_slice();
    // SAFETY: the caller guarantees `T` and `Z` share size, alignment and the zero value.
    unsafe { Box::from_raw(Box::into_raw(plain) as *mut [T]) }
}

struct Chunk {
    vectors: Box<[UnsafeCell<f32>]>,
    /// Per node: its code record (empty when the graph keeps no codes).
    codes: Box<[UnsafeCell<u8>]>,
    keys: Box<[AtomicU64]>,
    /// Per node: link count, then `cap0` slots.
    links0: Box<[AtomicU32]>,
    /// Per node on level 1 and up: for each of its levels, a count and `capu` slots.
    upper: Box<[OnceLock<Box<[AtomicU32]>>]>,
    locks: Box<[Mutex<()>]>,
}

impl Chunk {
    fn new(len: usize, dim: usize, cap0: usize, code_stride: usize) -> Chunk {
        // SAFETY: UnsafeCell<T> is repr(transparent) over T, AtomicU64 and AtomicU32
        // have the layout of u64 and u32; zero is a valid value of each.
        unsafe {
            Chunk {
                vectors: zeroed::<f32, _>(len * dim),
                codes: zeroed::<u8, _>(len * code_stride),
                keys: zeroed::<u64, _>(len),
                links0: zeroed::<u32, _>(len * (1 + cap0)),
                upper: (0..len).map(|_| OnceLock::new()).collect(),
                locks: (0..len).map(|_| Mutex::new(())).collect(),
            }
        }
    }
}

// SAFETY: the only non-Sync fields are `vectors` and `codes`; each node's vector and
// codes are written once, by the thread that created the node, before the node's id is
// published (see the module docs), and only read afterwards.
unsafe impl Sync for Chunk {}

/// The nodes of one graph.
pub(super) struct Store {
    dim: usize,
    cap0: usize,
    capu: usize,
    /// Bytes of a node's code record; 0 when the graph keeps no codes.
    code_stride: usize,
    chunks: [OnceLock<Chunk>; CHUNKS],
}

impl Store {
    pub(super) fn new(dim: usize, cap0: usize, capu: usize, coded: bool) -> Store {
        Store {
            dim,
            cap0,
            capu,
            code_stride: if coded { codes::stride(dim) } else { 0 },
            chunks: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// Whether nodes carry code records.
    pub(super) fn coded(&self) -> bool {
        self.code_stride > 0
    }

    #[inline]
    fn chunk(&self, node: u32) -> (&Chunk, usize) {
        let (c, slot) = locate(node);
        let chunk = self.chunks[c]
            .get()
            .unwrap_or_else(|| panic!("graph node {node} was never created"));
        (chunk, slot)
    }

    /// Creates node `node` (ids come from one counter, so each is created once): writes
    /// its vector and key and gives it link records up to `level`.
    pub(super) fn create(&self, node: u32, key: u64, vector: &[f32], level: usize) {
        let (c, slot) = locate(node);
        let len = (1usize << FIRST_SHIFT) << c;
        let chunk =
            self.chunks[c].get_or_init(|| Chunk::new(len, self.dim, self.cap0, self.code_stride));
        let at = slot * self.dim;
        for (cell, &x) in chunk.vectors[at..at + self.dim].iter().zip(vector) {
            // SAFETY: node ids are handed out once, so no other thread writes this
            // vector, and none reads it before the node is linked (after this returns).
            unsafe { *cell.get() = x };
        }
        if self.coded() {
            let cells = &chunk.codes[slot * self.code_stride..(slot + 1) * self.code_stride];
            // SAFETY: as for the vector above; UnsafeCell<u8> has u8's layout.
            let record = unsafe {
                std::slice::from_raw_parts_mut(UnsafeCell::raw_get(cells.as_ptr()), cells.len())
            };
            codes::encode(vector, record);
        }
        chunk.keys[slot].store(key, Ordering::Relaxed);
        if level > 0 {
            let words = level * (1 + self.capu);
            let upper = (0..words).map(|_| AtomicU32::new(0)).collect();
            let _ = chunk.upper[slot].set(upper);
        }
    }

    /// The vector of a created node.
    #[inline]
    pub(super) fn vector(&self, node: u32) -> &[f32] {
        let (chunk, slot) = self.chunk(node);
        let cells = &chunk.vectors[slot * self.dim..(slot + 1) * self.dim];
        // SAFETY: UnsafeCell<f32> has f32's layout, and the vector is no longer written
        // once the node can be reached (see `create`).
        unsafe { std::slice::from_raw_parts(cells.as_ptr().cast::<f32>(), self.dim) }
    }

    /// The code record of a created node, in a graph that keeps codes.
    #[inline]
    pub(super) fn codes(&self, node: u32) -> CodeRecord<'_> {
        let (chunk, slot) = self.chunk(node);
        let cells = &chunk.codes[slot * self.code_stride..(slot + 1) * self.code_stride];
        // SAFETY: UnsafeCell<u8> has u8's layout, and the record is no longer written
        // once the node can be reached (see `create`).
        CodeRecord::new(unsafe {
            std::slice::from_raw_parts(cells.as_ptr().cast::<u8>(), cells.len())
        })
    }

    /// A pointer to the vector, for prefetching (no bounds or creation checks needed:
    /// the node is one the caller found in a link).
    #[inline]
    pub(super) fn vector_ptr(&self, node: u32) -> *const f32 {
        self.vector(node).as_ptr()
    }

    pub(super) fn key(&self, node: u32) -> u64 {
        let (chunk, slot) = self.chunk(node);
        chunk.keys[slot].load(Ordering::Relaxed)
    }

    /// Top level of a created node.
    pub(super) fn level(&self, node: u32) -> usize {
        let (chunk, slot) = self.chunk(node);
        chunk.upper[slot]
            .get()
            .map_or(0, |u| u.len() / (1 + self.capu))
    }

    /// The link record of `node` on `level`: a count, then the slots.
    #[inline]
    fn record(&self, node: u32, level: usize) -> &[AtomicU32] {
        let (chunk, slot) = self.chunk(node);
        if level == 0 {
            let rec = 1 + self.cap0;
            &chunk.links0[slot * rec..(slot + 1) * rec]
        } else {
            let rec = 1 + self.capu;
            let upper = chunk.upper[slot].get().map_or(&[][..], |u| &u[..]);
            upper.get((level - 1) * rec..level * rec).unwrap_or(&[])
        }
    }

    /// Appends the links of `node` on `level` to `out` (nothing when the node is not on
    /// that level). Takes no lock: see the module docs for what a racing reader sees.
    #[inline]
    pub(super) fn links_into(&self, node: u32, level: usize, out: &mut Vec<u32>) {
        let rec = self.record(node, level);
        let Some((count, slots)) = rec.split_first() else {
            return;
        };
        let n = (count.load(Ordering::Acquire) as usize).min(slots.len());
        out.extend(slots[..n].iter().map(|s| s.load(Ordering::Acquire)));
    }

    /// Starts loading the level-0 link record of `node`, which a walk reads when it
    /// expands the node.
    #[inline]
    pub(super) fn warm_links0(&self, node: u32) {
        let (chunk, slot) = self.chunk(node);
        prefetch(chunk.links0[slot * (1 + self.cap0)..].as_ptr());
    }

    /// Replaces the links of `node` on `level`; the caller holds the node's lock.
    pub(super) fn set_links(
        &self,
        _held: &MutexGuard<'_, ()>,
        node: u32,
        level: usize,
        links: &[u32],
    ) {
        let rec = self.record(node, level);
        let Some((count, slots)) = rec.split_first() else {
            return;
        };
        let n = links.len().min(slots.len());
        // Shrink first so a reader never counts a slot not yet rewritten as new.
        if (count.load(Ordering::Relaxed) as usize) > n {
            count.store(n as u32, Ordering::Release);
        }
        for (slot, &l) in slots.iter().zip(&links[..n]) {
            slot.store(l, Ordering::Release);
        }
        count.store(n as u32, Ordering::Release);
    }

    /// Appends one link to `node` on `level` if its record has room; the caller holds
    /// the node's lock. Returns false when the record is full.
    pub(super) fn push_link(
        &self,
        _held: &MutexGuard<'_, ()>,
        node: u32,
        level: usize,
        link: u32,
    ) -> bool {
        let rec = self.record(node, level);
        let Some((count, slots)) = rec.split_first() else {
            return true;
        };
        let n = count.load(Ordering::Relaxed) as usize;
        if n >= slots.len() {
            return false;
        }
        slots[n].store(link, Ordering::Release);
        count.store(n as u32 + 1, Ordering::Release);
        true
    }

    /// Locks `node`'s link records against other writers.
    pub(super) fn lock(&self, node: u32) -> MutexGuard<'_, ()> {
        let (chunk, slot) = self.chunk(node);
        chunk.locks[slot].lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_map_to_doubling_chunks() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(1023), (0, 1023));
        assert_eq!(locate(1024), (1, 0));
        assert_eq!(locate(3071), (1, 2047));
        assert_eq!(locate(3072), (2, 0));
        assert_eq!(locate(u32::MAX).0, CHUNKS - 1);
    }
}
