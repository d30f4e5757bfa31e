//! Snapshots of single files: what an open file descriptor keeps across an unlink or a rename
//! over it.

use bytes::Bytes;

use crate::error::{Error, ErrorKind, Result};
use crate::path::VPath;
use crate::resource::{FileType, Metadata};
use crate::session::{Found, Session};

/// A file's content as a session showed it at one moment, still readable after its path
/// changes or disappears. Taking one costs a lookup: it shares the session's data (or refers
/// to the resource's file, for a file the session never changed; that file stays readable
/// until the session's removal of it is committed).
#[derive(Clone, Debug)]
pub struct FileSnapshot {
    session: Session,
    path: VPath,
    found: Found,
    meta: Metadata,
}

impl Session {
    /// A snapshot of the regular file at `path` (not following a final symbolic link).
    ///
    /// # Errors
    /// `NotFound`; `IsADirectory` or `InvalidInput` for a directory or a link.
    pub async fn snapshot(&self, path: &str) -> Result<FileSnapshot> {
        let path = self.abs(path)?;
        let (resolved, found) = self.resolve(&self.view()?, &path, false, "snapshot").await?;
        let meta = self
            .metadata(&found)
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "snapshot").with_path(resolved.clone()))?;
        match meta.file_type {
            FileType::File => Ok(FileSnapshot { session: self.clone(), path: resolved, found, meta }),
            FileType::Dir => Err(Error::new(ErrorKind::IsADirectory, "snapshot").with_path(resolved)),
            FileType::Symlink => Err(Error::new(ErrorKind::InvalidInput, "snapshot").with_path(resolved)),
        }
    }
}

impl FileSnapshot {
    /// The file's description when the snapshot was taken.
    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// Reads up to `len` bytes at `offset`.
    ///
    /// # Errors
    /// The resource's errors, for content that lives there.
    pub async fn read(&self, offset: u64, len: u64) -> Result<Bytes> {
        self.session.read_found(&self.path, &self.found, offset, len).await
    }
}
