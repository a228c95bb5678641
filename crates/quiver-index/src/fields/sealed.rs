//! The metadata index of a sealed segment: built once from the segment's documents,
//! saved in the segment's directory, loaded whole into memory when the segment opens.
//!
//! File layout (`fields.qvf`), little-endian:
//!
//! | bytes | field                                        |
//! |------:|----------------------------------------------|
//! | 8     | magic `QVFIELD1`                             |
//! | 4     | crc32 of the body                            |
//! | 8     | body length in bytes                         |
//! | n     | body: bincode (standard configuration)       |
//!
//! The body holds the segment's row count and, per field path in byte order: its
//! distinct strings in byte order, each with its rows ascending; the rows holding
//! `false` and `true`; and its numbers as two parallel arrays, values ascending (rows
//! ascending within a value) and their rows. A file that fails any check is reported
//! as corrupt; the caller rebuilds it from the documents.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::ops::Bound;
use std::path::Path;

use quiver_core::Metadata;
use serde::{Deserialize, Serialize};

use super::{flatten, NumRange, Postings, Scalar};
use crate::{IndexError, Result, RowSet};

const MAGIC: &[u8; 8] = b"QVFIELD1";
const HEADER: usize = 8 + 4 + 8;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Field {
    strings: Vec<(String, Vec<u32>)>,
    bools: [Vec<u32>; 2],
    num_values: Vec<f64>,
    num_rows: Vec<u32>,
}

#[derive(Debug, Default, Deserialize)]
struct Body {
    rows: u64,
    fields: Vec<(String, Field)>,
}

/// [`Body`] as it is written, borrowing the fields.
#[derive(Serialize)]
struct BodyRef<'a> {
    rows: u64,
    fields: Vec<(&'a String, &'a Field)>,
}

/// A sealed segment's metadata index, rows being segment rows.
#[derive(Debug, Default)]
pub struct SealedFields {
    rows: u64,
    fields: HashMap<String, Loaded>,
}

/// A field as queries read it: its saved postings, plus a bitset for every string or
/// boolean list holding at least one row in [`DENSE`]. Such a bitset is no larger
/// than its list, and a query unites it word by word instead of setting a bit per row
/// (a boolean that half the rows hold costs 64 times less to read).
#[derive(Debug)]
struct Loaded {
    field: Field,
    string_bits: Vec<Option<RowSet>>,
    bool_bits: [Option<RowSet>; 2],
}

/// Lists holding at least one in this many rows are kept as bitsets too.
const DENSE: u64 = 32;

impl Loaded {
    fn new(field: Field, rows: u64) -> Self {
        let bits = |list: &[u32]| {
            (list.len() as u64 * DENSE >= rows).then(|| {
                let mut set = RowSet::new();
                set.add_rows(list);
                set
            })
        };
        Loaded {
            string_bits: field.strings.iter().map(|(_, l)| bits(l)).collect(),
            bool_bits: [bits(&field.bools[0]), bits(&field.bools[1])],
            field,
        }
    }
}

/// Adds a list's rows to `out`, from its bitset when it has one.
fn add(out: &mut RowSet, list: &[u32], bits: Option<&RowSet>) {
    match bits {
        Some(bits) => out.union(bits),
        None => out.add_rows(list),
    }
}

/// A field while it is being built.
#[derive(Default)]
struct Builder {
    strings: HashMap<String, Vec<u32>>,
    bools: [Vec<u32>; 2],
    numbers: Vec<(f64, u32)>,
}

impl Builder {
    fn finish(self) -> Field {
        let mut strings: Vec<(String, Vec<u32>)> = self.strings.into_iter().collect();
        strings.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut numbers = self.numbers;
        numbers.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        Field {
            strings,
            bools: self.bools,
            num_values: numbers.iter().map(|n| n.0).collect(),
            num_rows: numbers.iter().map(|n| n.1).collect(),
        }
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> IndexError {
    IndexError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl SealedFields {
    /// Indexes `docs`, given in row order as `(row, metadata)`, rows below `rows`.
    pub fn build<'a>(rows: u64, docs: impl IntoIterator<Item = (u32, &'a Metadata)>) -> Self {
        let mut building: HashMap<String, Builder> = HashMap::new();
        for (row, metadata) in docs {
            flatten(metadata, |path, value| {
                let field = match building.get_mut(path) {
                    Some(f) => f,
                    None => building.entry(path.to_string()).or_default(),
                };
                match value {
                    Scalar::Str(s) => match field.strings.get_mut(s) {
                        Some(list) => list.push(row),
                        None => {
                            field.strings.insert(s.to_string(), vec![row]);
                        }
                    },
                    Scalar::Bool(b) => field.bools[usize::from(b)].push(row),
                    Scalar::Num(x) => field.numbers.push((x, row)),
                }
            });
        }
        SealedFields {
            rows,
            fields: building
                .into_iter()
                .map(|(path, b)| (path, Loaded::new(b.finish(), rows)))
                .collect(),
        }
    }

    /// Rows the index was built over.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes the index to `path` (through a temporary file, fsynced, then renamed).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut fields: Vec<(&String, &Field)> =
            self.fields.iter().map(|(k, l)| (k, &l.field)).collect();
        fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let body = BodyRef {
            rows: self.rows,
            fields,
        };
        let body = bincode::serde::encode_to_vec(&body, bincode::config::standard())
            .map_err(|e| IndexError::InvalidInput(format!("metadata index: {e}")))?;
        let mut bytes = Vec::with_capacity(HEADER + body.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&body);
        let tmp = path.with_extension("tmp");
        let mut file = File::create(&tmp).map_err(|e| IndexError::io(&tmp, e))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| IndexError::io(&tmp, e))?;
        drop(file);
        fs::rename(&tmp, path).map_err(|e| IndexError::io(path, e))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| IndexError::io(dir, e))
    }

    /// Reads and checks the index at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = fs::read(path).map_err(|e| IndexError::io(path, e))?;
        if bytes.len() < HEADER || &bytes[..8] != MAGIC {
            return Err(corrupt(path, "not a metadata index file"));
        }
        let crc = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
        let len = u64::from_le_bytes(bytes[12..20].try_into().unwrap_or_default());
        let body = &bytes[HEADER..];
        if body.len() as u64 != len {
            return Err(corrupt(
                path,
                format!("body is {} bytes, header says {len}", body.len()),
            ));
        }
        if crc32fast::hash(body) != crc {
            return Err(corrupt(path, "checksum mismatch"));
        }
        let (decoded, _): (Body, usize) =
            bincode::serde::decode_from_slice(body, bincode::config::standard())
                .map_err(|e| corrupt(path, e.to_string()))?;
        let rows = decoded.rows;
        for (name, f) in &decoded.fields {
            let lists = f.strings.iter().map(|s| &s.1).chain(&f.bools);
            let in_range = lists
                .flatten()
                .chain(&f.num_rows)
                .all(|&r| u64::from(r) < rows);
            if !in_range || f.num_values.len() != f.num_rows.len() {
                return Err(corrupt(path, format!("field {name:?} is inconsistent")));
            }
        }
        Ok(SealedFields {
            rows,
            fields: decoded
                .fields
                .into_iter()
                .map(|(path, f)| (path, Loaded::new(f, rows)))
                .collect(),
        })
    }
}

impl Postings for SealedFields {
    fn strings(&self, path: &str, value: &str, out: &mut RowSet) {
        let Some(l) = self.fields.get(path) else {
            return;
        };
        if let Ok(i) = l
            .field
            .strings
            .binary_search_by(|s| s.0.as_str().cmp(value))
        {
            add(out, &l.field.strings[i].1, l.string_bits[i].as_ref());
        }
    }

    fn bools(&self, path: &str, value: bool, out: &mut RowSet) {
        if let Some(l) = self.fields.get(path) {
            let v = usize::from(value);
            add(out, &l.field.bools[v], l.bool_bits[v].as_ref());
        }
    }

    fn numbers(&self, path: &str, range: &NumRange, out: &mut RowSet) {
        let Some(f) = self.fields.get(path).map(|l| &l.field) else {
            return;
        };
        let v = &f.num_values;
        let start = match range.lower {
            Bound::Included(x) => v.partition_point(|&y| y < x),
            Bound::Excluded(x) => v.partition_point(|&y| y <= x),
            Bound::Unbounded => 0,
        };
        let end = match range.upper {
            Bound::Included(x) => v.partition_point(|&y| y <= x),
            Bound::Excluded(x) => v.partition_point(|&y| y < x),
            Bound::Unbounded => v.len(),
        };
        let rows = f.num_rows.get(start..end).unwrap_or_default();
        out.add_rows(rows);
    }
}
