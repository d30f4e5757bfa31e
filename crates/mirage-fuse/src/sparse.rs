//! The content of a removed file once it is changed: the 64 KiB chunks written since, over
//! what is left of the file as it was removed. Untouched ranges cost nothing, so truncating
//! to an exabyte or writing far past the end holds one chunk at most, as a real filesystem
//! holds a sparse file. Chunks count against the content limit of sessions
//! ([`mirage_core::budget`]), as the session's own content does.

use std::collections::BTreeMap;

use mirage_core::{Held, Result};

/// Bytes per chunk.
pub(crate) const CHUNK: u64 = 64 * 1024;

/// The largest size a removed file may take: the kernel's own limit (`MAX_LFS_FILESIZE`).
/// It is never committed, so it need not stop at a session file's `MAX_FILE_SIZE`.
pub(crate) const MAX_SIZE: u64 = i64::MAX as u64;

/// A removed file's changed content.
#[derive(Debug)]
pub(crate) struct Sparse {
    size: u64,
    /// Below this offset, an unwritten chunk reads as the removed file did; a truncation
    /// lowers it, so that what grows again reads as zeros.
    snapshot_len: u64,
    chunks: BTreeMap<u64, Chunk>,
}

/// A chunk of written bytes and the room it takes.
#[derive(Debug)]
struct Chunk {
    bytes: Box<[u8]>,
    _held: Held,
}

impl Chunk {
    /// A chunk of zeros, in room taken for it; fails with `NoSpace` past the content limit.
    fn zeros(op: &'static str) -> Result<Self> {
        Ok(Chunk { _held: Held::take(CHUNK, op)?, bytes: vec![0; CHUNK as usize].into_boxed_slice() })
    }
}

/// Where a range of a [`Sparse`] file's bytes comes from.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    /// Bytes written since the removal.
    Written(&'a [u8]),
    /// The removed file's bytes at `offset`.
    Snapshot {
        /// Where they start in the file.
        offset: u64,
        /// How many.
        len: u64,
    },
    /// Zeros (a hole).
    Zeros(u64),
}

impl Sparse {
    /// The content of a removed file of `snapshot_len` bytes, unchanged so far.
    pub(crate) fn new(snapshot_len: u64) -> Self {
        Sparse { size: snapshot_len, snapshot_len, chunks: BTreeMap::new() }
    }

    /// The length in bytes.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The chunks a write of `len` bytes at `offset` changes whose old bytes must be read from
    /// the removed file first (and given to [`Sparse::fill`]).
    pub(crate) fn to_fill(&self, offset: u64, len: u64) -> Vec<u64> {
        chunk_range(offset, len)
            .filter(|&index| !covers(offset, len, index))
            .filter(|index| index * CHUNK < self.snapshot_len && !self.chunks.contains_key(index))
            .collect()
    }

    /// Sets chunk `index` to the removed file's `bytes` at its offset (as many as it had
    /// there; the rest of the chunk is zeros).
    ///
    /// # Errors
    /// `NoSpace` past the content limit.
    pub(crate) fn fill(&mut self, index: u64, bytes: &[u8]) -> Result<()> {
        let keep = (self.snapshot_len - index * CHUNK).min(CHUNK) as usize;
        let mut chunk = Chunk::zeros("write")?;
        let n = keep.min(bytes.len());
        chunk.bytes[..n].copy_from_slice(&bytes[..n]);
        self.chunks.insert(index, chunk);
        Ok(())
    }

    /// Writes `data` at `offset`; the chunks of [`Sparse::to_fill`] must have been filled.
    /// The caller keeps `offset + data.len()` within [`MAX_SIZE`].
    ///
    /// # Errors
    /// `NoSpace` when the new chunks would pass the content limit; nothing is written then.
    pub(crate) fn write(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            // Writing nothing never extends a file.
            return Ok(());
        }
        let len = data.len() as u64;
        let mut fresh = Vec::new();
        for index in chunk_range(offset, len).filter(|index| !self.chunks.contains_key(index)) {
            debug_assert!(index * CHUNK >= self.snapshot_len || covers(offset, len, index), "filled first");
            fresh.push((index, Chunk::zeros("write")?));
        }
        self.chunks.extend(fresh);
        let mut written = 0;
        for index in chunk_range(offset, len) {
            let chunk = &mut self.chunks.get_mut(&index).expect("made above").bytes;
            let start = (offset + written as u64 - index * CHUNK) as usize;
            let n = (CHUNK as usize - start).min(data.len() - written);
            chunk[start..start + n].copy_from_slice(&data[written..written + n]);
            written += n;
        }
        self.size = self.size.max(offset + len);
        Ok(())
    }

    /// Sets the length to `size`; what grows reads as zeros.
    pub(crate) fn truncate(&mut self, size: u64) {
        drop(self.chunks.split_off(&size.div_ceil(CHUNK)));
        if let Some(chunk) = self.chunks.get_mut(&(size / CHUNK)) {
            chunk.bytes[(size % CHUNK) as usize..].fill(0);
        }
        self.snapshot_len = self.snapshot_len.min(size);
        self.size = size;
    }

    /// Where the bytes from `offset` (up to `len` of them, and the end) come from, in order.
    pub(crate) fn pieces(&self, offset: u64, len: u64) -> Vec<Piece<'_>> {
        let end = offset.saturating_add(len).min(self.size);
        let mut pieces = Vec::new();
        let mut at = offset;
        while at < end {
            let index = at / CHUNK;
            let chunk_end = ((index + 1) * CHUNK).min(end);
            match self.chunks.get(&index) {
                Some(chunk) => pieces.push(Piece::Written(
                    &chunk.bytes[(at - index * CHUNK) as usize..(chunk_end - index * CHUNK) as usize],
                )),
                None if at < self.snapshot_len => {
                    let shown = chunk_end.min(self.snapshot_len);
                    pieces.push(Piece::Snapshot { offset: at, len: shown - at });
                    if chunk_end > shown {
                        pieces.push(Piece::Zeros(chunk_end - shown));
                    }
                }
                None => pieces.push(Piece::Zeros(chunk_end - at)),
            }
            at = chunk_end;
        }
        pieces
    }
}

/// Whether `len` bytes at `offset` cover chunk `index` whole (its old bytes are not needed).
fn covers(offset: u64, len: u64, index: u64) -> bool {
    offset <= index * CHUNK && offset + len >= (index + 1) * CHUNK
}

/// The chunks `len` bytes at `offset` touch.
fn chunk_range(offset: u64, len: u64) -> impl Iterator<Item = u64> {
    let last = if len == 0 { None } else { Some((offset + len - 1) / CHUNK) };
    last.into_iter().flat_map(move |last| offset / CHUNK..=last)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The bytes `pieces` describe, with the removed file's bytes taken from `snapshot`.
    fn assemble(pieces: Vec<Piece<'_>>, snapshot: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Written(bytes) => out.extend_from_slice(bytes),
                Piece::Snapshot { offset, len } => {
                    out.extend_from_slice(&snapshot[offset as usize..(offset + len) as usize])
                }
                Piece::Zeros(n) => out.resize(out.len() + n as usize, 0),
            }
        }
        out
    }

    #[derive(Clone, Debug)]
    enum Op {
        Write(u64, usize, u8),
        Truncate(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let offset = prop_oneof![0..4 * CHUNK, Just(CHUNK - 1), Just(CHUNK), Just(2 * CHUNK + 1)];
        prop_oneof![
            (offset.clone(), 0..(CHUNK as usize + 10), any::<u8>()).prop_map(|(o, n, b)| Op::Write(o, n, b)),
            offset.prop_map(Op::Truncate),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn a_sparse_file_reads_as_the_bytes_written(snapshot_len in 0..3 * CHUNK, ops in proptest::collection::vec(op(), 1..8)) {
            let snapshot: Vec<u8> = (0..snapshot_len).map(|i| (i % 251) as u8 + 1).collect();
            let mut model = snapshot.clone();
            let mut sparse = Sparse::new(snapshot_len);
            for op in ops {
                match op {
                    Op::Write(offset, n, byte) => {
                        for index in sparse.to_fill(offset, n as u64) {
                            let start = (index * CHUNK) as usize;
                            sparse.fill(index, &snapshot[start.min(snapshot.len())..]).unwrap();
                        }
                        sparse.write(offset, &vec![byte; n]).unwrap();
                        let end = offset as usize + n;
                        if model.len() < end {
                            model.resize(end, 0);
                        }
                        model[offset as usize..end].fill(byte);
                    }
                    Op::Truncate(size) => {
                        sparse.truncate(size);
                        model.resize(size as usize, 0);
                    }
                }
                prop_assert_eq!(sparse.size(), model.len() as u64);
                prop_assert_eq!(assemble(sparse.pieces(0, u64::MAX), &snapshot), model.clone());
                prop_assert_eq!(assemble(sparse.pieces(CHUNK - 3, 7), &snapshot), model.iter().skip(CHUNK as usize - 3).take(7).copied().collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn an_exabyte_holds_nothing() {
        let mut sparse = Sparse::new(10);
        sparse.truncate(1 << 62);
        assert!(sparse.to_fill((1 << 62) - 1, 1).is_empty(), "far from the old bytes");
        sparse.write((1 << 62) - 1, b"x").unwrap();
        assert_eq!(sparse.size(), 1 << 62);
        assert_eq!(sparse.chunks.len(), 1, "the written chunk only");
        assert_eq!(sparse.pieces((1 << 62) - 2, 10), [Piece::Written(&[0, b'x'])]);
        assert_eq!(sparse.pieces(8, 4), [Piece::Snapshot { offset: 8, len: 2 }, Piece::Zeros(2)]);
    }
}
