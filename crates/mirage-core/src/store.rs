//! The persistent session store: a directory holding an append-only journal of [`Record`]s.
//!
//! # Format
//!
//! ```text
//! STORE/
//!   lock      held with flock(2) while a process has the store open
//!   journal   "MIRAGE-JOURNAL 1\n", then records: [len: u32 LE][crc32: u32 LE][payload]
//! ```
//!
//! Each payload is one bincode-encoded record. Every record is written with one `write(2)`
//! before it takes effect, so a process killed at any point (even `kill -9` in the middle of
//! a commit) loses nothing it reported as done; `flush` (and every commit) also `fsync`s,
//! which makes the journal survive a power cut. On open, records are replayed in order; a
//! torn record at the tail (a write cut short by a crash) fails its length or checksum and is
//! dropped, and the file is truncated back to the last whole record.
//!
//! Limits: the journal only grows (compaction is future work), and replay holds all overlay
//! content in memory.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};
use crate::state::{Record, State};

const MAGIC: &[u8] = b"MIRAGE-JOURNAL 1\n";

/// An open store: the journal, appended to as records happen.
#[derive(Debug)]
pub(crate) struct Journal {
    file: File,
    dir: PathBuf,
    _lock: File,
}

fn store_err(dir: &Path, e: std::io::Error) -> Error {
    Error::io("open store", e).with_detail(format!("store '{}'", dir.display()))
}

impl Journal {
    /// Opens (creating if needed) the store in `dir` and replays it into a fresh state.
    ///
    /// # Errors
    /// `Conflict` when another process has the store open; I/O errors; `InvalidInput` when
    /// the journal is not a Mirage journal.
    pub(crate) fn open(dir: &Path) -> Result<(Journal, State)> {
        std::fs::create_dir_all(dir).map_err(|e| store_err(dir, e))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))
            .map_err(|e| store_err(dir, e))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(Error::new(ErrorKind::Conflict, "open store")
                .with_detail(format!("store '{}' is already open (in this or another process)", dir.display())));
        }
        let path = dir.join("journal");
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| store_err(dir, e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| store_err(dir, e))?;
        let mut state = State::default();
        if bytes.is_empty() {
            file.write_all(MAGIC).map_err(|e| store_err(dir, e))?;
            file.sync_all().map_err(|e| store_err(dir, e))?;
        } else if !bytes.starts_with(MAGIC) {
            return Err(Error::new(ErrorKind::InvalidInput, "open store")
                .with_detail(format!("'{}' is not a Mirage journal", path.display())));
        } else {
            let good = replay(&bytes, &mut state)?;
            if good < bytes.len() {
                file.set_len(good as u64).map_err(|e| store_err(dir, e))?;
                file.sync_all().map_err(|e| store_err(dir, e))?;
            }
        }
        Ok((Journal { file, dir: dir.to_owned(), _lock: lock }, state))
    }

    /// Appends records, each with one `write(2)`.
    ///
    /// # Errors
    /// I/O errors; on error nothing after the failed record was written.
    pub(crate) fn append(&mut self, records: &[Record]) -> Result<()> {
        for record in records {
            let payload = bincode::serialize(record)
                .map_err(|e| Error::new(ErrorKind::Io, "journal").with_detail(e.to_string()))?;
            let mut frame = Vec::with_capacity(payload.len() + 8);
            frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            frame.extend_from_slice(&payload);
            self.file.write_all(&frame).map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Makes everything appended so far durable.
    ///
    /// # Errors
    /// I/O errors from `fsync`.
    pub(crate) fn sync(&mut self) -> Result<()> {
        self.file.sync_data().map_err(|e| self.err(e))
    }

    fn err(&self, e: std::io::Error) -> Error {
        Error::io("journal", e).with_detail(format!("store '{}'", self.dir.display()))
    }
}

/// Applies every whole record of `bytes` to `state`; returns the length of the good prefix.
fn replay(bytes: &[u8], state: &mut State) -> Result<usize> {
    let mut pos = MAGIC.len();
    while pos + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().expect("4 bytes"));
        let Some(payload) = bytes.get(pos + 8..pos + 8 + len) else { break };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Ok(record) = bincode::deserialize::<Record>(payload) else { break };
        state.apply(&record)?;
        pos += 8 + len;
    }
    Ok(pos)
}
