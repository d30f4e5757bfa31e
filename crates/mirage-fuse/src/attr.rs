//! What the kernel is told about entries, and how core errors become errno values.

use std::ffi::OsStr;
use std::time::SystemTime;

use fuser::{Errno, FileAttr, FileType as Kind, INodeNo};
use mirage_core::{FileType, Metadata, VPath};

use crate::inodes::Orphan;

/// Who owns every entry: the kernel checks permissions against these (`default_permissions`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The owning user id.
    pub uid: u32,
    /// The owning group id.
    pub gid: u32,
}

impl Owner {
    /// The user and group running this process.
    pub fn current() -> Self {
        // SAFETY: both calls only read the process's credentials.
        unsafe { Owner { uid: libc::geteuid(), gid: libc::getegid() } }
    }
}

/// The block size reported, and the unit of `blocks`.
const BLOCK: u32 = 4096;

/// The kernel's name for a kind of entry.
pub(crate) fn kind(t: FileType) -> Kind {
    match t {
        FileType::File => Kind::RegularFile,
        FileType::Dir => Kind::Directory,
        FileType::Symlink => Kind::Symlink,
    }
}

/// The kernel's view of `meta` at inode `ino`.
pub(crate) fn file_attr(ino: INodeNo, meta: &Metadata, owner: Owner) -> FileAttr {
    let kind = kind(meta.file_type);
    FileAttr {
        ino,
        size: meta.size,
        blocks: meta.size.div_ceil(512),
        atime: meta.atime,
        mtime: meta.mtime,
        ctime: meta.mtime,
        crtime: meta.mtime,
        kind,
        perm: (meta.mode & 0o7777) as u16,
        nlink: if meta.file_type == FileType::Dir { 2 } else { 1 },
        uid: owner.uid,
        gid: owner.gid,
        rdev: 0,
        blksize: BLOCK,
        flags: 0,
    }
}

/// The kernel's view of an open file that has been removed (no links left).
pub(crate) fn orphan_attr(ino: INodeNo, orphan: &Orphan, owner: Owner) -> FileAttr {
    let meta = Metadata {
        file_type: FileType::File,
        size: orphan.size(),
        mode: orphan.mode,
        mtime: orphan.mtime,
        atime: orphan.mtime,
        version: mirage_core::Version(String::new()),
    };
    FileAttr { nlink: 0, ..file_attr(ino, &meta, owner) }
}

/// The errno of a core error.
pub(crate) fn errno(e: &mirage_core::Error) -> Errno {
    Errno::from_i32(e.errno())
}

/// `parent/name`, refusing names no directory entry can have.
///
/// # Errors
/// `EINVAL` for `.`, `..` or a name that is not UTF-8 (virtual paths are text).
pub(crate) fn child(parent: &VPath, name: &OsStr) -> Result<VPath, Errno> {
    let name = name.to_str().ok_or(Errno::EINVAL)?;
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(Errno::EINVAL);
    }
    parent.join(name).map_err(|e| errno(&e))
}

/// The attributes of a negative entry (inode 0): the kernel remembers that the name does not
/// exist for the entry time to live.
pub(crate) fn negative_attr(owner: Owner) -> FileAttr {
    let meta = Metadata {
        file_type: FileType::File,
        size: 0,
        mode: 0,
        mtime: SystemTime::UNIX_EPOCH,
        atime: SystemTime::UNIX_EPOCH,
        version: mirage_core::Version(String::new()),
    };
    file_attr(INodeNo(0), &meta, owner)
}
