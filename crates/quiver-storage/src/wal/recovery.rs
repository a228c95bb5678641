//! Recovery: reads a log directory in LSN order, tells a torn tail from corruption,
//! and leaves the directory ready for appending.
//!
//! The rules, in the order they are applied per file:
//!
//! - A file's header must verify and its first LSN must equal both its name and the
//!   LSN after the previous file's last record. The last file may be shorter than a
//!   header (a crash while it was being created): it is deleted.
//! - Records must verify and carry consecutive LSNs. A record that verifies but has the
//!   wrong LSN is corruption (a gap or a duplicate), never a torn write.
//! - At the first record that does not verify, recovery asks whether anything valid
//!   follows: a later file with a valid header, or a position further on in this file
//!   that parses as a record of this file's seed with a larger LSN. If nothing does, the
//!   bad bytes are a torn write: the file is truncated there with a warning. If
//!   something does, acknowledged data sits behind damage: open fails with
//!   [`StorageError::Corruption`] naming the file and offset, unless `repair` is set, in
//!   which case the file is truncated there and every later file is deleted.
//!
//! Rotation syncs a file before creating the next one, so a torn tail can only be in
//! the last file; damage at the end of an earlier file is therefore corruption.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use super::format::{self, FileHeader, HEADER_LEN, RECORD_HEADER_LEN};
use super::WalRecord;
use crate::fsutil;
use crate::{Result, StorageError};

/// One log file that survived recovery.
#[derive(Debug, Clone)]
pub(crate) struct LogFile {
    pub first_lsn: u64,
    pub path: PathBuf,
}

/// The state of a log directory after recovery.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// Files kept, in LSN order.
    pub files: Vec<LogFile>,
    /// The last file's header and length, if any file is left.
    pub tail: Option<(FileHeader, u64)>,
    /// LSN of the last record in the log (`first_lsn - 1` of an empty last file), or
    /// `None` for an empty directory.
    pub last_lsn: Option<u64>,
    /// Records with `lsn > after_lsn`, in order.
    pub records: Vec<WalRecord>,
}

/// The `*.wal` files of `dir`, sorted by first LSN.
pub(crate) fn list_files(dir: &Path) -> Result<Vec<LogFile>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))? {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        let name = entry.file_name();
        if let Some(first_lsn) = format::parse_file_name(&name.to_string_lossy()) {
            files.push(LogFile {
                first_lsn,
                path: entry.path(),
            });
        }
    }
    files.sort_by_key(|f| f.first_lsn);
    Ok(files)
}

/// Recovers the log in `dir` (which must exist).
pub(crate) fn recover(dir: &Path, repair: bool, after_lsn: u64) -> Result<Recovered> {
    let listed = list_files(dir)?;
    let mut out = Recovered {
        files: Vec::new(),
        tail: None,
        last_lsn: None,
        records: Vec::new(),
    };
    for (idx, file) in listed.iter().enumerate() {
        let later = &listed[idx + 1..];
        let buf = fs::read(&file.path).map_err(|e| StorageError::io(&file.path, e))?;
        let header = match FileHeader::decode(&buf, &file.path) {
            Ok(h) => h,
            Err(StorageError::Corruption { .. }) if later.is_empty() && buf.len() <= HEADER_LEN => {
                tracing::warn!(
                    file = %file.path.display(),
                    bytes = buf.len(),
                    "removing WAL file whose creation was interrupted"
                );
                fsutil::remove_file_durable(&file.path)?;
                break;
            }
            Err(StorageError::Corruption { reason, .. }) => {
                damaged(repair, file, later, 0, &reason)?;
                break;
            }
            Err(e) => return Err(e),
        };
        if header.first_lsn != file.first_lsn || header.first_lsn == 0 {
            // LSN 0 is never written: it means "nothing" to callers.
            let reason = format!(
                "header says first lsn {} and the file name says {}",
                header.first_lsn, file.first_lsn
            );
            damaged(repair, file, later, 0, &reason)?;
            break;
        }
        match out.last_lsn {
            Some(last) if header.first_lsn != last.wrapping_add(1) => {
                let reason = format!(
                    "file starts at lsn {} but the previous file ends at lsn {last}",
                    header.first_lsn
                );
                damaged(repair, file, later, 0, &reason)?;
                break;
            }
            None if header.first_lsn > after_lsn.saturating_add(1) => {
                // Records between the caller's checkpoint and this file are gone.
                let reason = format!(
                    "log starts at lsn {} but records after lsn {after_lsn} are needed",
                    header.first_lsn
                );
                return Err(corruption(&file.path, 0, reason));
            }
            _ => {}
        }
        let scan = scan_file(
            &buf,
            header,
            file,
            later,
            repair,
            after_lsn,
            &mut out.records,
        )?;
        out.files.push(file.clone());
        out.tail = Some((header, scan.end as u64));
        out.last_lsn = Some(scan.last_lsn);
        if scan.repaired {
            // Every later file was deleted with the damage.
            break;
        }
    }
    Ok(out)
}

/// What [`scan_file`] found.
struct Scan {
    /// End of the valid data (the file's length after any truncation).
    end: usize,
    /// LSN of the last valid record (`first_lsn - 1` if none).
    last_lsn: u64,
    /// Damage was repaired: the file was cut and every later file deleted.
    repaired: bool,
}

/// Reads the records of one file, truncating a torn tail or handling damage.
fn scan_file(
    buf: &[u8],
    header: FileHeader,
    file: &LogFile,
    later: &[LogFile],
    repair: bool,
    after_lsn: u64,
    records: &mut Vec<WalRecord>,
) -> Result<Scan> {
    let mut at = HEADER_LEN;
    let mut last = header.first_lsn.wrapping_sub(1);
    while at < buf.len() {
        match format::decode_record(buf, at, header.seed) {
            Some(rec) if rec.lsn == last.wrapping_add(1) => {
                if rec.lsn > after_lsn {
                    records.push(WalRecord {
                        lsn: rec.lsn,
                        kind: rec.kind,
                        payload: rec.payload.to_vec(),
                    });
                }
                last = rec.lsn;
                at += rec.size;
            }
            Some(rec) => {
                let reason = format!(
                    "record has lsn {} where lsn {} was expected",
                    rec.lsn,
                    last.wrapping_add(1)
                );
                damaged(repair, file, later, at as u64, &reason)?;
                return Ok(Scan {
                    end: at,
                    last_lsn: last,
                    repaired: true,
                });
            }
            None => {
                let damage =
                    later_file_is_valid(later) || valid_record_after(buf, at, header.seed, last);
                if damage {
                    damaged(repair, file, later, at as u64, "record fails its checksum")?;
                } else {
                    tracing::warn!(
                        file = %file.path.display(),
                        offset = at,
                        dropped_bytes = buf.len() - at,
                        "truncating torn write at the end of the WAL"
                    );
                    truncate(&file.path, at as u64)?;
                }
                return Ok(Scan {
                    end: at,
                    last_lsn: last,
                    repaired: damage,
                });
            }
        }
    }
    Ok(Scan {
        end: at,
        last_lsn: last,
        repaired: false,
    })
}

/// True if some later file has a verifying header: the log went on past this point.
fn later_file_is_valid(later: &[LogFile]) -> bool {
    later.iter().any(|f| {
        let mut head = [0u8; HEADER_LEN];
        let ok = fs::File::open(&f.path)
            .and_then(|mut h| std::io::Read::read_exact(&mut h, &mut head))
            .is_ok();
        ok && FileHeader::decode(&head, &f.path).is_ok()
    })
}

/// True if a record of this file's seed with an LSN above `last_good` starts anywhere
/// after `bad` in `buf`.
fn valid_record_after(buf: &[u8], bad: usize, seed: u64, last_good: u64) -> bool {
    // With consecutive LSNs and at least RECORD_HEADER_LEN bytes per record, a record
    // in the rest of the file has an LSN in this window; checking it first keeps the
    // scan linear instead of a checksum at every offset.
    let window = ((buf.len() - bad) / RECORD_HEADER_LEN) as u64 + 1;
    let lo = last_good;
    let hi = last_good.saturating_add(window);
    let last_start = buf.len().saturating_sub(RECORD_HEADER_LEN);
    (bad + 1..=last_start).any(|q| {
        matches!(format::peek_lsn(buf, q), Some(l) if l > lo && l <= hi)
            && format::decode_record(buf, q, seed).is_some()
    })
}

/// Damage with valid data behind it: an error, or with `repair` a truncation that
/// drops it and everything after.
fn damaged(
    repair: bool,
    file: &LogFile,
    later: &[LogFile],
    offset: u64,
    reason: &str,
) -> Result<()> {
    if !repair {
        return Err(corruption(&file.path, offset, reason.to_string()));
    }
    tracing::warn!(
        file = %file.path.display(),
        offset,
        reason,
        later_files = later.len(),
        "repairing WAL: dropping everything from the damaged record on"
    );
    // Newest first, so a crash half-way leaves a log that is a prefix of this one.
    for f in later.iter().rev() {
        fsutil::remove_file_durable(&f.path)?;
    }
    if offset < HEADER_LEN as u64 {
        fsutil::remove_file_durable(&file.path)
    } else {
        truncate(&file.path, offset)
    }
}

fn corruption(file: &Path, offset: u64, reason: String) -> StorageError {
    StorageError::Corruption {
        file: file.to_path_buf(),
        offset,
        reason,
    }
}

/// Cuts `path` to `len` bytes and makes the new size durable before anything is
/// appended after it.
fn truncate(path: &Path, len: u64) -> Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| StorageError::io(path, e))?;
    f.set_len(len).map_err(|e| StorageError::io(path, e))?;
    f.sync_all().map_err(|e| StorageError::io(path, e))
}
