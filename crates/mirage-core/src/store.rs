//! The persistent session store: a directory holding an append-only journal of [`Record`]s.
//!
//! # Format
//!
//! ```text
//! STORE/
//!   lock      flock(2)ed by a process for each step it takes on the sessions
//!   journal   "MIRAGE-JOURNAL 1\n", then records: [len: u32 LE][crc32: u32 LE][payload]
//! ```
//!
//! Each payload is one bincode-encoded record. Every record is written with one `write(2)`
//! before it takes effect, so a process killed at any point (even `kill -9` in the middle of
//! a commit) loses nothing it reported as done; `flush` (and every commit) also `fsync`s,
//! which makes the journal survive a power cut. On open, records are replayed in order; a
//! torn record at the tail (a write cut short by a crash) fails its length or checksum and is
//! dropped, and the file is truncated back to the last whole record. A damaged record with
//! records after it, or one this version cannot read, is an error: the journal is left as it
//! is.
//!
//! Several processes may have a store open at once. Each holds an exclusive `flock(2)` on
//! `lock` while it looks at or changes the sessions: it first applies the records the
//! others appended since its last look, then checks and appends its own. So every check (a
//! commit's conflicts, a session's existence) sees every process's changes, in one order.
//!
//! A store in which no session is left starts its journal over (only the counters carry on,
//! in a `Seed` record). A journal that mostly holds dead records (files rewritten, sessions
//! gone) is rewritten as the sessions are now (`Restore` records, each fork as its
//! differences from its parent), written aside and renamed into place: on open from 16 MiB,
//! and as soon as a session is dropped, committed or flushed from 1 MiB, so that what a
//! discarded run wrote is not read again by every later opener; and after any record once the
//! journal has doubled since the last try (or since it was opened), so that a session
//! rewriting the same file without end keeps its journal within about twice what it holds.
//! After a try that a dropped session prompted, the next such try waits until the journal
//! has doubled too.
//!
//! Limits: replay and compaction hold all overlay content in memory, and one record (so one
//! file's content, or one session's at compaction) must stay under 4 GiB.

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
    /// Held with flock(2) for each step; a file of its own, because compaction replaces the
    /// journal file.
    lock: File,
    dir: PathBuf,
    /// How far this process has read (and written): the end of the last whole record.
    offset: u64,
    locked: bool,
    /// Why the journal cannot be trusted any more (a failed catch-up); appends fail with it.
    broken: Option<String>,
    /// The size from which a dropped session makes this process try to compact.
    next_compaction: u64,
    /// The size from which any record makes this process try to compact.
    next_growth_check: u64,
}

fn store_err(dir: &Path, e: std::io::Error) -> Error {
    Error::io("open store", e).with_detail(format!("store '{}'", dir.display()))
}

impl Journal {
    /// Opens (creating if needed) the store in `dir` and replays it into a fresh state.
    ///
    /// # Errors
    /// I/O errors; `InvalidInput` when the journal is not a Mirage journal.
    pub(crate) fn open(dir: &Path) -> Result<(Journal, State)> {
        std::fs::create_dir_all(dir).map_err(|e| store_err(dir, e))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))
            .map_err(|e| store_err(dir, e))?;
        let file = open_journal(dir).map_err(|e| store_err(dir, e))?;
        let mut journal = Journal {
            file,
            lock,
            dir: dir.to_owned(),
            offset: 0,
            locked: false,
            broken: None,
            next_compaction: COMPACT_AFTER_DROP_FROM,
            next_growth_check: COMPACT_AFTER_DROP_FROM,
        };
        journal.lock()?;
        let opened = journal.replay_all().and_then(|state| {
            if journal.offset >= COMPACT_FROM {
                journal.compact_if_worth(&state)?;
            }
            journal.next_growth_check = (2 * journal.offset).max(COMPACT_AFTER_DROP_FROM);
            Ok(state)
        });
        journal.unlock();
        opened.map(|state| (journal, state))
    }

    /// True when the journal has doubled since the last try at compacting it, whatever its
    /// records: rewriting one file without end leaves dead records too.
    pub(crate) fn grown(&self) -> bool {
        self.offset >= self.next_growth_check
    }

    /// With the lock held, after records that leave others dead (`dead`: a session dropped,
    /// committed or flushed) or once the journal has [`Journal::grown`]: starts the journal
    /// over when no session is left, or else compacts it when it is big enough to try (see
    /// the module's documentation). The compaction is best effort: until its new journal
    /// takes the old one's place, a failure (a full disk) leaves the old journal whole and
    /// costs only the space it would have saved.
    pub(crate) fn tidy(&mut self, state: &State, dead: bool) -> Result<()> {
        self.restart_if_empty(state)?;
        if (dead && self.offset >= self.next_compaction) || self.grown() {
            let compacted = self.compact_if_worth(state);
            let next = (2 * self.offset).max(COMPACT_AFTER_DROP_FROM);
            if dead {
                self.next_compaction = next;
            }
            self.next_growth_check = next;
            if compacted.is_err() && self.broken.is_some() {
                return compacted;
            }
        }
        Ok(())
    }

    /// Rewrites the journal as the records of the sessions as they are, when that saves most
    /// of it: a journal that grew by rewriting the same files starts small again. Other
    /// processes notice the new file and read it from the start (the lock held). A failure
    /// once the new journal has replaced the old one leaves this one broken.
    fn compact_if_worth(&mut self, state: &State) -> Result<()> {
        let temp = self.dir.join("journal.compacting");
        let written = self.write_compacted(state, &temp);
        let size = match written {
            Ok(Some(size)) => size,
            Ok(None) | Err(_) => {
                let _ = std::fs::remove_file(&temp);
                return written.map(|_| ());
            }
        };
        if let Err(e) = std::fs::rename(&temp, self.dir.join("journal")) {
            let _ = std::fs::remove_file(&temp);
            return Err(self.err(e));
        }
        // The rename must be durable before anything appended to the new journal is: after a
        // crash, the old journal would come back without it.
        let swapped = open_journal(&self.dir).and_then(|file| {
            File::open(&self.dir)?.sync_all()?;
            Ok(file)
        });
        match swapped {
            Ok(file) => {
                self.file = file;
                self.offset = size;
                Ok(())
            }
            Err(e) => {
                let e = self.err(e);
                self.broken.get_or_insert(e.to_string());
                Err(e)
            }
        }
    }

    /// Writes the sessions as they are to `temp` and syncs it; returns its size, or `None`
    /// as soon as it is clear that most of the journal is live (not worth it).
    fn write_compacted(&self, state: &State, temp: &Path) -> Result<Option<u64>> {
        let mut out = std::io::BufWriter::new(File::create(temp).map_err(|e| self.err(e))?);
        let mut size = MAGIC.len() as u64;
        out.write_all(MAGIC).map_err(|e| self.err(e))?;
        for record in state.snapshot() {
            let frame = frame(&record)?;
            size += frame.len() as u64;
            out.write_all(&frame).map_err(|e| self.err(e))?;
            if size * 2 > self.offset {
                return Ok(None);
            }
        }
        let file = out.into_inner().map_err(|e| self.err(e.into_error()))?;
        file.sync_all().map_err(|e| self.err(e))?;
        Ok(Some(size))
    }

    /// Reads the whole journal into a fresh state (the lock held).
    fn replay_all(&mut self) -> Result<State> {
        let mut bytes = Vec::new();
        self.file.read_to_end(&mut bytes).map_err(|e| self.err(e))?;
        let mut state = State::default();
        if bytes.is_empty() {
            self.file.write_all(MAGIC).map_err(|e| self.err(e))?;
            self.file.sync_all().map_err(|e| self.err(e))?;
            self.offset = MAGIC.len() as u64;
            return Ok(state);
        }
        if !bytes.starts_with(MAGIC) {
            return Err(Error::new(ErrorKind::InvalidInput, "open store")
                .with_detail(format!("'{}' is not a Mirage journal", self.dir.join("journal").display())));
        }
        let records = decode(&bytes[MAGIC.len()..])?;
        for record in &records.records {
            state.apply(record)?;
        }
        self.offset = (MAGIC.len() + records.good) as u64;
        self.cut_torn_tail(bytes.len() as u64)?;
        self.restart_if_empty(&state)?;
        Ok(state)
    }

    /// Starts the journal over when no session is left in it (every one committed and
    /// aborted, say): only the counters carry on. Other processes notice the shorter file and
    /// read it from the start (see [`Journal::catch_up`]). Durable at the next sync.
    pub(crate) fn restart_if_empty(&mut self, state: &State) -> Result<()> {
        if !state.sessions.is_empty() || self.offset <= (MAGIC.len() + SEED_SIZE) as u64 {
            return Ok(());
        }
        self.file.set_len(MAGIC.len() as u64).map_err(|e| self.err(e))?;
        self.offset = MAGIC.len() as u64;
        self.append(&[Record::Seed { next_session: state.next_session, next_stamp: state.next_stamp }])
    }

    /// Takes the store's lock, waiting for any other process to finish its step.
    fn lock(&mut self) -> Result<()> {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(self.lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(self.err(std::io::Error::last_os_error()));
        }
        self.locked = true;
        Ok(())
    }

    /// Lets other processes take their step.
    pub(crate) fn unlock(&mut self) {
        if self.locked {
            // SAFETY: flock on a descriptor we own.
            unsafe { libc::flock(self.lock.as_raw_fd(), libc::LOCK_UN) };
            self.locked = false;
        }
    }

    /// Takes the lock and returns the records other processes appended since this one last
    /// looked, to apply before anything else. A failure leaves the journal broken: later
    /// appends fail with it (reads go on with what was read).
    pub(crate) fn catch_up(&mut self) -> CatchUp {
        let result = self.lock().and_then(|()| self.read_new());
        match result {
            Ok(caught) => caught,
            Err(e) => {
                self.broken.get_or_insert(e.to_string());
                CatchUp::Records(Vec::new())
            }
        }
    }

    fn read_new(&mut self) -> Result<CatchUp> {
        use std::os::unix::fs::MetadataExt;
        let current = std::fs::metadata(self.dir.join("journal")).map_err(|e| self.err(e))?;
        let mine = self.file.metadata().map_err(|e| self.err(e))?;
        if current.ino() != mine.ino() {
            // Another process compacted the journal: read the new one from the start.
            self.file = open_journal(&self.dir).map_err(|e| self.err(e))?;
            self.offset = MAGIC.len() as u64;
            return match self.read_new()? {
                CatchUp::Records(records) | CatchUp::Restart(records) => Ok(CatchUp::Restart(records)),
            };
        }
        let end = mine.len();
        if end < self.offset {
            // Another process started the journal over (no session was left): read it from
            // the start into a fresh state.
            self.offset = MAGIC.len() as u64;
            return match self.read_new()? {
                CatchUp::Records(records) | CatchUp::Restart(records) => Ok(CatchUp::Restart(records)),
            };
        }
        if end == self.offset {
            return Ok(CatchUp::Records(Vec::new()));
        }
        let mut bytes = vec![0u8; (end - self.offset) as usize];
        std::os::unix::fs::FileExt::read_exact_at(&self.file, &mut bytes, self.offset).map_err(|e| self.err(e))?;
        let records = decode(&bytes)?;
        self.offset += records.good as u64;
        self.cut_torn_tail(end)?;
        Ok(CatchUp::Records(records.records))
    }

    /// Drops a torn record after `offset` (a writer that died mid-record; with the lock held,
    /// nobody is writing).
    fn cut_torn_tail(&mut self, end: u64) -> Result<()> {
        if self.offset < end {
            self.file.set_len(self.offset).map_err(|e| self.err(e))?;
            self.file.sync_all().map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Appends records, each with one `write(2)`.
    ///
    /// # Errors
    /// I/O errors; on error nothing after the failed record was written.
    pub(crate) fn append(&mut self, records: &[Record]) -> Result<()> {
        if let Some(why) = &self.broken {
            return Err(Error::new(ErrorKind::Io, "journal")
                .with_detail(format!("store '{}' could not be read since: {why}", self.dir.display())));
        }
        for record in records {
            let frame = frame(record)?;
            self.file.write_all(&frame).map_err(|e| self.err(e))?;
            self.offset += frame.len() as u64;
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

/// The journal's file, opened for reading and appending.
fn open_journal(dir: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).truncate(false).read(true).append(true).open(dir.join("journal"))
}

/// One record as the journal stores it: length, checksum, payload.
fn frame(record: &Record) -> Result<Vec<u8>> {
    let payload =
        bincode::serialize(record).map_err(|e| Error::new(ErrorKind::Io, "journal").with_detail(e.to_string()))?;
    let len = u32::try_from(payload.len()).map_err(|_| {
        Error::new(ErrorKind::InvalidInput, "journal").with_detail("a record of 4 GiB or more cannot be journaled")
    })?;
    let mut frame = Vec::with_capacity(payload.len() + 8);
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// Journals smaller than this are not compacted on open.
const COMPACT_FROM: u64 = 16 << 20;

/// Journals smaller than this are not compacted when a session is dropped.
const COMPACT_AFTER_DROP_FROM: u64 = 1 << 20;

/// What another process changed since this one last looked.
pub(crate) enum CatchUp {
    /// Records to apply, in order.
    Records(Vec<Record>),
    /// The journal was started over: a fresh state is these records.
    Restart(Vec<Record>),
}

/// The length of a journal holding nothing but its seed, about: below it, starting over
/// gains nothing.
const SEED_SIZE: usize = 64;

/// The whole records at the start of `bytes`, and the length they take.
struct Decoded {
    records: Vec<Record>,
    good: usize,
}

/// Decodes records until the end or a torn last record (a write cut short: incomplete, or
/// failing its checksum with nothing after it).
///
/// # Errors
/// `InvalidInput` for a damaged record with records after it, or a whole record this version
/// cannot read (written by another version of Mirage): the journal is then left alone rather
/// than cut.
fn decode(bytes: &[u8]) -> Result<Decoded> {
    let (mut records, mut pos) = (Vec::new(), 0);
    let unreadable = |pos: usize, why: &str| {
        Error::new(ErrorKind::InvalidInput, "journal")
            .with_detail(format!("the record at byte {} is {why}; the store is left as it is", pos + MAGIC.len()))
    };
    while pos + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().expect("4 bytes"));
        let Some(payload) = bytes.get(pos + 8..pos + 8 + len) else { break };
        if crc32fast::hash(payload) != crc {
            if pos + 8 + len == bytes.len() {
                break;
            }
            return Err(unreadable(pos, "damaged (its checksum fails and records follow)"));
        }
        let record = bincode::deserialize::<Record>(payload)
            .map_err(|_| unreadable(pos, "unreadable (written by another version of Mirage?)"))?;
        records.push(record);
        pos += 8 + len;
    }
    Ok(Decoded { records, good: pos })
}
