//! The flat graph's file: its byte table, the export from a built graph, and the
//! checks a file passes before it is searched.
//!
//! Every field is a little-endian `u32` (norms are `f32` bits), so the whole file is an
//! array of 4-byte words and a mapping of it is read in place. Node ids are the rows of
//! the segment's vector file: the graph stores links and 8-bit codes, never the vectors.
//!
//! Header, 32 words (128 bytes):
//!
//! | word | field |
//! |------|-------|
//! | 0 | magic `QVFG` |
//! | 1 | format version (currently 1) |
//! | 2 | distance in bits 0..8 (0 cosine, 1 dot, 2 L2); bit 8 set when a norm table follows, bit 9 when codes follow |
//! | 3 | graph dim: the prefix of each row the graph compares |
//! | 4 | row stride: floats per row of the vector file (>= graph dim) |
//! | 5 | nodes `n` |
//! | 6 | `M` the graph was built with |
//! | 7 | `ef_construction` it was built with |
//! | 8 | `cap0`: link slots per node on level 0 |
//! | 9 | `capu`: link slots per node on levels above 0 |
//! | 10 | entry point (a node on the top level) |
//! | 11 | top level `L` (0..=15) |
//! | 12 | body length in words |
//! | 13 | CRC32 of the body's bytes |
//! | 14 | zero |
//! | 15 | CRC32 of words 0..15 and 16..32 |
//! | 16..31 | `n_l`: nodes on level `l`, for `l` = 1..=15 (zero above `L`), then zero |
//!
//! Body, in order:
//!
//! | section | words | contents |
//! |---------|-------|----------|
//! | level 0 | `n × (1 + cap0)` | per node: link count, then `cap0` slots (unused ones zero) |
//! | level `l`, for `l` = 1..=L | `n_l` | the nodes on that level, ascending |
//! | | `n_l × (1 + capu)` | their links, in the same order, like level 0 |
//! | norms (optional) | `n` | `1 / ‖row prefix‖` as `f32` (0 for a zero prefix) |
//! | codes (optional) | `2 × dim` | per dimension, the codes' offset then (after all offsets) their scale, as `f32` |
//! | | `⌈n × dim / 4⌉` | one byte per dimension per row, row after row, zero-padded to a word |
//!
//! Why this layout: level 0 holds every node and is where a search spends nearly all of
//! its time, so a node's links sit at `node × (1 + cap0)`, one multiply away, the way
//! hnswlib keeps its level 0 (without the vector, which stays in the segment's file).
//! Upper levels hold about `n / M` nodes in all and are walked greedily by a few hops
//! per query, so they are stored compactly and found by binary search. The norm table is
//! written only for cosine graphs over a Matryoshka prefix: a prefix of a unit vector is
//! not a unit vector, and renormalizing it on every comparison would cost a second pass.
//! The codes (graph dim 128 and up; `codes` says why) are what the walk compares: a
//! quarter of the bytes of the rows, whose loads are what a search waits on. Files
//! without them (smaller dims, or written before they existed) are searched over the
//! rows directly.

use std::collections::HashMap;

use quiver_core::Distance;

use super::super::graph::NodeLinks;
use super::super::DenseIndex;
use crate::{IndexError, Result};

pub(super) const MAGIC: u32 = u32::from_le_bytes(*b"QVFG");
pub(super) const VERSION: u32 = 1;
pub(super) const HEADER_WORDS: usize = 32;
/// Levels above 0 the header has room for.
pub(super) const MAX_UPPER: usize = 15;
const NORMS_FLAG: u32 = 1 << 8;
const CODES_FLAG: u32 = 1 << 9;

fn distance_code(d: Distance) -> u32 {
    match d {
        Distance::Cosine => 0,
        Distance::Dot => 1,
        Distance::L2 => 2,
    }
}

fn distance_of(code: u32) -> Option<Distance> {
    match code {
        0 => Some(Distance::Cosine),
        1 => Some(Distance::Dot),
        2 => Some(Distance::L2),
        _ => None,
    }
}

/// One level above 0: where its node list and links start, in words.
#[derive(Debug, Clone, Copy)]
pub(super) struct Upper {
    pub(super) ids: usize,
    pub(super) links: usize,
    pub(super) len: usize,
}

/// Where everything is, decoded from the header.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    pub(super) distance: Distance,
    pub(super) dim: usize,
    pub(super) stride: usize,
    pub(super) n: usize,
    pub(super) m: usize,
    pub(super) ef_construction: usize,
    pub(super) cap0: usize,
    pub(super) capu: usize,
    pub(super) entry: u32,
    pub(super) uppers: Vec<Upper>,
    pub(super) norms: Option<usize>,
    pub(super) codes: Option<usize>,
    pub(super) words: usize,
}

fn bytes_of(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn header_crc(h: &[u32]) -> u32 {
    let mut c = crc32fast::Hasher::new();
    c.update(&bytes_of(&h[..15]));
    c.update(&bytes_of(&h[16..HEADER_WORDS]));
    c.finalize()
}

fn body_crc(body: &[u32]) -> u32 {
    let mut c = crc32fast::Hasher::new();
    for chunk in body.chunks(1 << 14) {
        c.update(&bytes_of(chunk));
    }
    c.finalize()
}

impl Layout {
    /// Decodes and checks the header of a file of `total` words.
    pub(super) fn parse(h: &[u32], total: usize) -> std::result::Result<Layout, String> {
        if h.len() < HEADER_WORDS || total < HEADER_WORDS {
            return Err(format!("{total} words, shorter than the header"));
        }
        if h[0] != MAGIC {
            return Err("not a flat graph (bad magic)".into());
        }
        if header_crc(h) != h[15] {
            return Err("header checksum mismatch".into());
        }
        if h[1] != VERSION {
            return Err(format!("format version {} is not supported", h[1]));
        }
        let distance =
            distance_of(h[2] & 0xff).ok_or_else(|| format!("unknown distance {}", h[2] & 0xff))?;
        let as_usize = |w: u32| w as usize;
        let (dim, stride, n) = (as_usize(h[3]), as_usize(h[4]), as_usize(h[5]));
        let (cap0, capu, top) = (as_usize(h[8]), as_usize(h[9]), as_usize(h[11]));
        if dim == 0 || dim > stride {
            return Err(format!("graph dim {dim} with row stride {stride}"));
        }
        if top > MAX_UPPER || (n > 0 && h[10] as usize >= n) {
            return Err(format!("top level {top}, entry {} of {n} nodes", h[10]));
        }
        let mut at = HEADER_WORDS + n * (1 + cap0);
        let mut uppers = Vec::with_capacity(top);
        for l in 1..=MAX_UPPER {
            let len = as_usize(h[15 + l]);
            if l > top {
                if len != 0 {
                    return Err(format!("level {l} above the top holds nodes"));
                }
                continue;
            }
            if len == 0 || len > n {
                return Err(format!("level {l} holds {len} of {n} nodes"));
            }
            uppers.push(Upper {
                ids: at,
                links: at + len,
                len,
            });
            at += len * (2 + capu);
        }
        let norms = (h[2] & NORMS_FLAG != 0).then_some(at);
        if norms.is_some() {
            at += n;
        }
        let codes = (h[2] & CODES_FLAG != 0).then_some(at);
        if codes.is_some() {
            at += super::codes::section_words(n, dim);
        }
        if at != total || at - HEADER_WORDS != h[12] as usize {
            return Err(format!(
                "{total} words, header describes {at} (body {})",
                h[12]
            ));
        }
        Ok(Layout {
            distance,
            dim,
            stride,
            n,
            m: as_usize(h[6]),
            ef_construction: as_usize(h[7]),
            cap0,
            capu,
            entry: h[10],
            uppers,
            norms,
            codes,
            words: total,
        })
    }

    /// Checks the body's checksum and that every count and link is in range, so the
    /// search can trust them.
    pub(super) fn verify(&self, words: &[u32]) -> std::result::Result<(), String> {
        if body_crc(&words[HEADER_WORDS..]) != words[13] {
            return Err("body checksum mismatch".into());
        }
        let links_ok = |start: usize, count: usize, cap: usize| {
            (0..count).all(|i| {
                let rec = &words[start + i * (1 + cap)..start + (i + 1) * (1 + cap)];
                let k = rec[0] as usize;
                k <= cap
                    && rec[1..=k].iter().all(|&x| (x as usize) < self.n)
                    && rec[k + 1..].iter().all(|&x| x == 0)
            })
        };
        if !links_ok(HEADER_WORDS, self.n, self.cap0) {
            return Err("level 0 holds a link out of range".into());
        }
        for (i, up) in self.uppers.iter().enumerate() {
            let ids = &words[up.ids..up.ids + up.len];
            let sorted = ids.windows(2).all(|w| w[0] < w[1]);
            if !sorted || ids.last().is_some_and(|&x| x as usize >= self.n) {
                return Err(format!(
                    "level {} node list is not ascending in range",
                    i + 1
                ));
            }
            if !links_ok(up.links, up.len, self.capu) {
                return Err(format!("level {} holds a link out of range", i + 1));
            }
        }
        let top = self.uppers.last().is_none_or(|up| {
            words[up.ids..up.ids + up.len]
                .binary_search(&self.entry)
                .is_ok()
        });
        if !top {
            return Err("entry point is not on the top level".into());
        }
        Ok(())
    }
}

/// The vectors a flat graph compares: rows of `stride` floats, of which the graph uses
/// the first `dim` (its own dimension).
#[derive(Debug, Clone, Copy)]
pub struct VectorRows<'a> {
    pub data: &'a [f32],
    pub stride: usize,
}

impl<'a> VectorRows<'a> {
    /// Rows of `stride` floats.
    pub fn new(data: &'a [f32], stride: usize) -> Self {
        VectorRows { data, stride }
    }

    /// Number of whole rows.
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.stride).unwrap_or(0)
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Links of one node on one level, as exported.
type Links = Vec<u32>;

/// The links of a kept node on one level, as rows. A link to a dropped node is replaced
/// by that node's own kept links (one hop around it), so dropping the nodes of
/// overwritten versions does not cut the paths through them; the list may grow up to
/// `cap`, since pruned lists are short and one dropped node can stand between many.
fn remap_links(
    own_row: u32,
    links: &[u64],
    level: usize,
    rows: &HashMap<u64, u32>,
    dropped: &HashMap<u64, &NodeLinks>,
    cap: usize,
) -> Links {
    let mut out: Links = links.iter().filter_map(|k| rows.get(k).copied()).collect();
    if out.len() < links.len() {
        let around = links
            .iter()
            .filter_map(|k| dropped.get(k))
            .filter_map(|d| d.links.get(level))
            .flatten()
            .filter_map(|k| rows.get(k).copied());
        for row in around {
            if out.len() >= cap {
                break;
            }
            if row != own_row && !out.contains(&row) {
                out.push(row);
            }
        }
    }
    out
}

/// Writes the words of the flat file for `index`, whose nodes are the rows of `rows`:
/// `row_of` maps a node's key to its row, or to `None` for a node the file leaves out
/// (every row must be some node's). The graph holds each row's first `index.dim()`
/// floats, normalized for cosine.
pub(super) fn export(
    index: &DenseIndex,
    rows: VectorRows<'_>,
    row_of: &dyn Fn(usize) -> Option<usize>,
) -> Result<Vec<u32>> {
    let n = rows.len();
    let dim = index.dim();
    let bad = |m: String| IndexError::InvalidInput(m);
    if rows.stride < dim {
        return Err(bad(format!(
            "graph of dim {dim} over rows of stride {}",
            rows.stride
        )));
    }
    let u32_of = |v: usize, what: &str| {
        u32::try_from(v).map_err(|_| bad(format!("{what} {v} does not fit the flat format")))
    };
    let m = index.params().m;
    let nodes = index.graph().nodes();
    let read_top = nodes.iter().map(|n| n.links.len() - 1).max().unwrap_or(0);
    let mut row_by_key = HashMap::with_capacity(n);
    let mut dropped = HashMap::new();
    let mut covered = vec![false; n];
    for node in &nodes {
        match usize::try_from(node.key).ok().and_then(row_of) {
            Some(row) if row < n && !covered[row] => {
                covered[row] = true;
                row_by_key.insert(node.key, u32_of(row, "row")?);
            }
            Some(row) => return Err(bad(format!("graph row {row} repeated or out of 0..{n}"))),
            None => {
                dropped.insert(node.key, node);
            }
        }
    }
    if let Some(row) = covered.iter().position(|c| !c) {
        return Err(bad(format!("graph lacks row {row}")));
    }
    let mut level0: Vec<Links> = vec![Vec::new(); n];
    let mut uppers: Vec<Vec<(u32, Links)>> = vec![Vec::new(); read_top];
    // Nodes come top level first, so the first kept one is on the highest kept level.
    let mut entry = None;
    for node in &nodes {
        let Some(&row) = row_by_key.get(&node.key) else {
            continue;
        };
        entry.get_or_insert((row, node.links.len() - 1));
        for (level, links) in node.links.iter().enumerate() {
            let cap = if level == 0 { 2 * m } else { m };
            let links = remap_links(row, links, level, &row_by_key, &dropped, cap);
            match level {
                0 => level0[row as usize] = links,
                l => uppers[l - 1].push((row, links)),
            }
        }
    }
    let (entry, top) = entry.unwrap_or((0, 0));
    uppers.truncate(top);
    for level in &mut uppers {
        level.sort_unstable_by_key(|(node, _)| *node);
    }
    let cap0 = level0.iter().map(Vec::len).max().unwrap_or(0);
    let capu = uppers
        .iter()
        .flatten()
        .map(|(_, l)| l.len())
        .max()
        .unwrap_or(0);
    let norms = (index.distance() == Distance::Cosine && dim < rows.stride).then(|| {
        (0..n)
            .map(|r| {
                let p = &rows.data[r * rows.stride..r * rows.stride + dim];
                let norm = crate::simd::dot(p, p).sqrt();
                if norm > 0.0 {
                    (1.0 / norm).to_bits()
                } else {
                    0
                }
            })
            .collect::<Vec<u32>>()
    });

    let mut w = vec![0u32; HEADER_WORDS];
    let push_links = |w: &mut Vec<u32>, links: &[u32], cap: usize| {
        w.push(links.len() as u32);
        w.extend_from_slice(links);
        w.resize(w.len() + cap - links.len(), 0);
    };
    for links in &level0 {
        push_links(&mut w, links, cap0);
    }
    for level in &uppers {
        w.extend(level.iter().map(|(node, _)| *node));
        for (_, links) in level {
            push_links(&mut w, links, capu);
        }
    }
    if let Some(norms) = &norms {
        w.extend_from_slice(norms);
    }
    let coded = dim >= super::codes::MIN_DIM;
    if coded {
        w.extend(super::codes::encode(rows, dim, norms.as_deref()));
    }
    let p = index.params();
    let flags = distance_code(index.distance())
        | if norms.is_some() { NORMS_FLAG } else { 0 }
        | if coded { CODES_FLAG } else { 0 };
    let fields = [
        MAGIC,
        VERSION,
        flags,
        u32_of(dim, "dim")?,
        u32_of(rows.stride, "stride")?,
        u32_of(n, "nodes")?,
        u32_of(p.m, "m")?,
        u32_of(p.ef_construction, "ef_construction")?,
        u32_of(cap0, "links")?,
        u32_of(capu, "links")?,
        entry,
        top as u32,
        u32_of(w.len() - HEADER_WORDS, "body")?,
    ];
    w[..fields.len()].copy_from_slice(&fields);
    w[13] = body_crc(&w[HEADER_WORDS..]);
    for (l, level) in uppers.iter().enumerate() {
        w[16 + l] = level.len() as u32;
    }
    w[15] = header_crc(&w[..HEADER_WORDS]);
    Ok(w)
}
