//! A process-wide limit on the file content sessions hold in memory.
//!
//! A session keeps what it writes in memory until it commits or is dropped, so a program that
//! writes without end would grow the process until the kernel's out-of-memory killer ends it,
//! and every session with it. With a limit set ([`set_content_limit`]), each buffer of content
//! a session takes in is counted for as long as it lives, and a write that would pass the
//! limit fails with [`ErrorKind::NoSpace`] (`ENOSPC`), as on a full disk; dropping or
//! committing content gives the room back. Forks share buffers, so they count once.
//!
//! Without a limit (the default) nothing is counted and nothing is copied. The limit is meant
//! to be set once, before sessions take in content: content taken in earlier is not counted.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::error::{Error, ErrorKind, Result};

/// The limit in bytes; `u64::MAX` stands for none.
static LIMIT: AtomicU64 = AtomicU64::new(u64::MAX);
/// Bytes counted now: content, and the sessions' entries (see [`entry_weight`]).
static HELD: AtomicU64 = AtomicU64::new(0);
/// Writes refused for want of room.
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// Sets (or, with `None`, lifts) the limit on the content sessions of this process hold.
pub fn set_content_limit(limit: Option<u64>) {
    LIMIT.store(limit.unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// The limit set by [`set_content_limit`], if any.
pub fn content_limit() -> Option<u64> {
    Some(LIMIT.load(Ordering::Relaxed)).filter(|&limit| limit != u64::MAX)
}

/// Bytes counted against the limit now, content and entries (0 while there is no limit).
pub fn content_held() -> u64 {
    HELD.load(Ordering::Relaxed)
}

/// How many writes the limit has refused so far, for a report at the end of a run.
pub fn content_refusals() -> u64 {
    REFUSED.load(Ordering::Relaxed)
}

/// Room for `len` bytes of content, counted against the limit until dropped.
///
/// Crates that keep session content of their own (a FUSE server's files that were removed
/// while open) hold it through this, so that it counts as the sessions' content does.
#[derive(Debug, Default)]
#[must_use = "the room is given back when this is dropped"]
pub struct Held(u64);

impl Held {
    /// Takes room for `len` bytes, or fails with [`ErrorKind::NoSpace`] when that would pass
    /// the limit. `op` names the operation in the error.
    pub fn take(len: u64, op: &'static str) -> Result<Held> {
        let limit = LIMIT.load(Ordering::Relaxed);
        if limit == u64::MAX || len == 0 {
            return Ok(Held(0));
        }
        let before = HELD.fetch_add(len, Ordering::Relaxed);
        if before.saturating_add(len) > limit {
            HELD.fetch_sub(len, Ordering::Relaxed);
            return Err(refusal(op, before, limit));
        }
        Ok(Held(len))
    }

    /// True when this holds no room.
    pub(crate) fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// Makes this room `len` bytes, even past the limit: for what is counted after the fact
    /// (the entries of the sessions, once a change is applied). Without a limit, none.
    pub(crate) fn resize_anyway(&mut self, len: u64) {
        let len = if LIMIT.load(Ordering::Relaxed) == u64::MAX { 0 } else { len };
        if len > self.0 {
            HELD.fetch_add(len - self.0, Ordering::Relaxed);
        } else {
            HELD.fetch_sub(self.0 - len, Ordering::Relaxed);
        }
        self.0 = len;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.0 > 0 {
            HELD.fetch_sub(self.0, Ordering::Relaxed);
        }
    }
}

/// What one entry of a session's view counts for against the limit besides its path:
/// its node and its place in the persistent maps (about 400 bytes measured), and the inode a
/// FUSE server keeps for it. Entries are counted so that creating files without end, empty
/// or not, meets the limit too.
pub const ENTRY_COST: u64 = 1024;

/// What an entry counts for: [`ENTRY_COST`], its path (`path_len` bytes) three times (the
/// view's key, its directory's key, a FUSE server's inode table) and a link's target.
pub(crate) fn entry_weight(path_len: usize, target_len: usize) -> u64 {
    ENTRY_COST + 3 * path_len as u64 + target_len as u64
}

/// Fails with [`ErrorKind::NoSpace`] when entries weighing `more` more (see
/// [`entry_weight`]) would pass the limit. The entries themselves are counted once applied:
/// every live session's, a fork's including what it inherited (see `State::apply`).
pub(crate) fn room_for_entries(more: u64, op: &'static str) -> Result<()> {
    let limit = LIMIT.load(Ordering::Relaxed);
    if limit == u64::MAX {
        return Ok(());
    }
    let held = HELD.load(Ordering::Relaxed);
    if held.saturating_add(more) > limit {
        return Err(refusal(op, held, limit));
    }
    Ok(())
}

/// The error of a refused write, counted for [`content_refusals`].
fn refusal(op: &'static str, held: u64, limit: u64) -> Error {
    REFUSED.fetch_add(1, Ordering::Relaxed);
    Error::new(ErrorKind::NoSpace, op).with_detail(format!(
        "sessions hold {held} bytes in memory (content, and 1 KiB or more per entry) and may hold \
         {limit}; commit or drop sessions to make room"
    ))
}

/// A buffer and the room it holds.
struct Counted {
    data: Bytes,
    _held: Held,
}

impl AsRef<[u8]> for Counted {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

/// How the buffer handed to [`hold`] relates to its allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Buffer {
    /// The buffer is its whole allocation, made for this content: it is kept as it is.
    Own,
    /// The buffer may be part of a larger allocation (a slice of a write, a resource's
    /// answer): it is copied, so that the room counted is the memory held.
    Shared,
}

/// `data`, counted against the limit for as long as any clone of the result lives; fails with
/// [`ErrorKind::NoSpace`] past the limit. Without a limit, `data` itself.
pub(crate) fn hold(data: Bytes, buffer: Buffer, op: &'static str) -> Result<Bytes> {
    if content_limit().is_none() || data.is_empty() {
        return Ok(data);
    }
    let held = Held::take(data.len() as u64, op)?;
    Ok(counted(data, buffer, held))
}

/// `data`, counted even past the limit: for content that is already in memory and must stay
/// (a store's journal being read back).
pub(crate) fn hold_anyway(data: Bytes) -> Bytes {
    if content_limit().is_none() || data.is_empty() {
        return data;
    }
    let mut held = Held::default();
    held.resize_anyway(data.len() as u64);
    // Serde made the buffer for this content alone.
    counted(data, Buffer::Own, held)
}

fn counted(data: Bytes, buffer: Buffer, held: Held) -> Bytes {
    let data = match buffer {
        Buffer::Own => data,
        Buffer::Shared => Bytes::copy_from_slice(&data),
    };
    Bytes::from_owner(Counted { data, _held: held })
}
