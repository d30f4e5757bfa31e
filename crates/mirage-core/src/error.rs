//! One error type for the whole filesystem, mapping onto errno.
//!
//! An [`Error`] has a semantic [`ErrorKind`], the operation that failed, the virtual path and
//! the mount it concerns, an optional detail and an optional source. Resources create errors
//! with their own inner paths; the session layer rewrites them to virtual paths and adds the
//! mount, so what reaches a user always reads like
//! `write '/data/x' (mount '/data'): read-only file system (mounted read-only)`.

use std::fmt;

use crate::path::VPath;

/// The result type of every fallible Mirage operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, independent of where.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The path does not exist (`ENOENT`).
    NotFound,
    /// The path exists and must not (`EEXIST`).
    AlreadyExists,
    /// A component used as a directory is not one (`ENOTDIR`).
    NotADirectory,
    /// A directory was given where a file is needed (`EISDIR`).
    IsADirectory,
    /// The directory is not empty (`ENOTEMPTY`).
    DirectoryNotEmpty,
    /// The mount or resource is read-only (`EROFS`).
    ReadOnly,
    /// The resource refused access (`EACCES`).
    PermissionDenied,
    /// An argument is malformed (`EINVAL`).
    InvalidInput,
    /// A name or path is too long (`ENAMETOOLONG`).
    NameTooLong,
    /// An operation would cross mounts (`EXDEV`).
    CrossesDevices,
    /// Too many symbolic links, or a link where none may be followed (`ELOOP`).
    FilesystemLoop,
    /// The resource cannot do this (`ENOTSUP`).
    Unsupported,
    /// Input/output failure in a resource or the store (`EIO`).
    Io,
    /// A file would grow past the largest size a session holds (`EFBIG`).
    FileTooLarge,
    /// The content sessions hold in memory would pass its limit, or a resource is full
    /// (`ENOSPC`).
    NoSpace,
    /// A commit lost a race: the paths it names were changed by someone else first.
    Conflict,
}

impl ErrorKind {
    /// Every kind, for tables and conversions.
    pub const ALL: [ErrorKind; 16] = [
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::NotADirectory,
        ErrorKind::IsADirectory,
        ErrorKind::DirectoryNotEmpty,
        ErrorKind::ReadOnly,
        ErrorKind::PermissionDenied,
        ErrorKind::InvalidInput,
        ErrorKind::NameTooLong,
        ErrorKind::CrossesDevices,
        ErrorKind::FilesystemLoop,
        ErrorKind::Unsupported,
        ErrorKind::Io,
        ErrorKind::FileTooLarge,
        ErrorKind::NoSpace,
        ErrorKind::Conflict,
    ];

    /// The kind whose [`ErrorKind::code`] is `code` (`"ENOENT"`, ...), for errors that
    /// arrive by name from another language.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.code() == code)
    }

    /// The errno value for this kind; `Conflict` maps to `EBUSY`, the closest POSIX meaning.
    ///
    /// This is the one place errno is decided: the match has no wildcard arm, so a new kind
    /// does not compile until it is mapped.
    pub fn errno(self) -> i32 {
        match self {
            ErrorKind::NotFound => libc::ENOENT,
            ErrorKind::AlreadyExists => libc::EEXIST,
            ErrorKind::NotADirectory => libc::ENOTDIR,
            ErrorKind::IsADirectory => libc::EISDIR,
            ErrorKind::DirectoryNotEmpty => libc::ENOTEMPTY,
            ErrorKind::ReadOnly => libc::EROFS,
            ErrorKind::PermissionDenied => libc::EACCES,
            ErrorKind::InvalidInput => libc::EINVAL,
            ErrorKind::NameTooLong => libc::ENAMETOOLONG,
            ErrorKind::CrossesDevices => libc::EXDEV,
            ErrorKind::FilesystemLoop => libc::ELOOP,
            ErrorKind::Unsupported => libc::ENOTSUP,
            ErrorKind::Io => libc::EIO,
            ErrorKind::FileTooLarge => libc::EFBIG,
            ErrorKind::NoSpace => libc::ENOSPC,
            ErrorKind::Conflict => libc::EBUSY,
        }
    }

    /// The symbolic code, as node:fs names it (`ENOENT`, ...); `ECONFLICT` for conflicts.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "ENOENT",
            ErrorKind::AlreadyExists => "EEXIST",
            ErrorKind::NotADirectory => "ENOTDIR",
            ErrorKind::IsADirectory => "EISDIR",
            ErrorKind::DirectoryNotEmpty => "ENOTEMPTY",
            ErrorKind::ReadOnly => "EROFS",
            ErrorKind::PermissionDenied => "EACCES",
            ErrorKind::InvalidInput => "EINVAL",
            ErrorKind::NameTooLong => "ENAMETOOLONG",
            ErrorKind::CrossesDevices => "EXDEV",
            ErrorKind::FilesystemLoop => "ELOOP",
            ErrorKind::Unsupported => "ENOTSUP",
            ErrorKind::Io => "EIO",
            ErrorKind::FileTooLarge => "EFBIG",
            ErrorKind::NoSpace => "ENOSPC",
            ErrorKind::Conflict => "ECONFLICT",
        }
    }

    /// The kind for an OS error number; unknown numbers become `Io`.
    pub fn from_errno(errno: i32) -> Self {
        match errno {
            libc::ENOENT => ErrorKind::NotFound,
            libc::EEXIST => ErrorKind::AlreadyExists,
            libc::ENOTDIR => ErrorKind::NotADirectory,
            libc::EISDIR => ErrorKind::IsADirectory,
            libc::ENOTEMPTY => ErrorKind::DirectoryNotEmpty,
            libc::EROFS => ErrorKind::ReadOnly,
            libc::EACCES | libc::EPERM => ErrorKind::PermissionDenied,
            libc::EINVAL => ErrorKind::InvalidInput,
            libc::ENAMETOOLONG => ErrorKind::NameTooLong,
            libc::EXDEV => ErrorKind::CrossesDevices,
            libc::ELOOP => ErrorKind::FilesystemLoop,
            libc::ENOTSUP => ErrorKind::Unsupported,
            libc::EFBIG => ErrorKind::FileTooLarge,
            libc::ENOSPC | libc::EDQUOT => ErrorKind::NoSpace,
            _ => ErrorKind::Io,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "no such file or directory",
            ErrorKind::AlreadyExists => "file exists",
            ErrorKind::NotADirectory => "not a directory",
            ErrorKind::IsADirectory => "is a directory",
            ErrorKind::DirectoryNotEmpty => "directory not empty",
            ErrorKind::ReadOnly => "read-only file system",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::InvalidInput => "invalid argument",
            ErrorKind::NameTooLong => "name too long",
            ErrorKind::CrossesDevices => "cannot cross mounts",
            ErrorKind::FilesystemLoop => "too many levels of symbolic links",
            ErrorKind::Unsupported => "operation not supported",
            ErrorKind::Io => "input/output error",
            ErrorKind::FileTooLarge => "file too large",
            ErrorKind::NoSpace => "no space left",
            ErrorKind::Conflict => "conflict",
        }
    }
}

/// A Mirage error: a kind plus the context a user needs to act on it (boxed, so that
/// `Result`s stay one pointer wide).
pub struct Error(Box<Repr>);

struct Repr {
    kind: ErrorKind,
    op: &'static str,
    path: Option<VPath>,
    mount: Option<VPath>,
    detail: Option<String>,
    conflicts: Vec<VPath>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// A new error of `kind` raised by operation `op` (`"read"`, `"commit"`, ...).
    pub fn new(kind: ErrorKind, op: &'static str) -> Self {
        Error(Box::new(Repr { kind, op, path: None, mount: None, detail: None, conflicts: Vec::new(), source: None }))
    }

    /// A `Conflict` naming every path that lost the race.
    pub fn conflict(op: &'static str, paths: Vec<VPath>, detail: impl Into<String>) -> Self {
        let mut e = Error::new(ErrorKind::Conflict, op).with_detail(detail);
        e.0.conflicts = paths;
        e
    }

    /// An error from an [`std::io::Error`], keeping it as the source.
    pub fn io(op: &'static str, err: std::io::Error) -> Self {
        let kind = err.raw_os_error().map_or(ErrorKind::Io, ErrorKind::from_errno);
        Error::new(kind, op).with_source(err)
    }

    /// Sets the path the error concerns.
    pub fn with_path(mut self, path: impl Into<VPath>) -> Self {
        self.0.path = Some(path.into());
        self
    }

    /// Sets the mount point of the resource involved.
    pub fn with_mount(mut self, mount: VPath) -> Self {
        self.0.mount = Some(mount);
        self
    }

    /// Adds a human-readable detail, shown after the kind.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.0.detail = Some(detail.into());
        self
    }

    /// Adds to the explanation, after what it already says.
    pub fn add_detail(mut self, more: impl Into<String>) -> Self {
        let more = more.into();
        self.0.detail = Some(match self.0.detail.take() {
            Some(detail) => format!("{detail}; {more}"),
            None => more,
        });
        self
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.0.source = Some(Box::new(source));
        self
    }

    /// Moves an error raised by a resource (inner path) into the virtual tree: the path
    /// becomes `mount` + inner path and the mount is recorded. Idempotent.
    pub fn in_mount(mut self, mount: &VPath) -> Self {
        if self.0.mount.is_none() {
            self.0.path = self.0.path.map(|p| p.rebase(mount));
            self.0.conflicts = std::mem::take(&mut self.0.conflicts).iter().map(|p| p.rebase(mount)).collect();
            self.0.mount = Some(mount.clone());
        }
        self
    }

    /// Replaces the operation name (used when a primitive serves a higher-level call).
    pub fn with_op(mut self, op: &'static str) -> Self {
        self.0.op = op;
        self
    }

    /// The kind of error.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The errno for this error.
    pub fn errno(&self) -> i32 {
        self.0.kind.errno()
    }

    /// The operation that failed.
    pub fn op(&self) -> &'static str {
        self.0.op
    }

    /// The virtual path concerned, if any.
    pub fn path(&self) -> Option<&VPath> {
        self.0.path.as_ref()
    }

    /// The mount point of the resource involved, if any.
    pub fn mount(&self) -> Option<&VPath> {
        self.0.mount.as_ref()
    }

    /// The human-readable detail, if any.
    pub fn detail(&self) -> Option<&str> {
        self.0.detail.as_deref()
    }

    /// For `Conflict`: the paths that were changed by someone else.
    pub fn conflicts(&self) -> &[VPath] {
        &self.0.conflicts
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.op)?;
        if let Some(path) = &self.0.path {
            write!(f, " '{path}'")?;
        }
        if let Some(mount) = &self.0.mount {
            write!(f, " (mount '{mount}')")?;
        }
        write!(f, ": {}", self.0.kind.describe())?;
        if !self.0.conflicts.is_empty() {
            let names: Vec<String> = self.0.conflicts.iter().map(|p| format!("'{p}'")).collect();
            write!(f, " on {}", names.join(", "))?;
        }
        if let Some(detail) = &self.0.detail {
            write!(f, " ({detail})")?;
        }
        if let Some(source) = &self.0.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self} [{}]", self.0.kind.code())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source.as_deref().map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<Error> for std::io::Error {
    fn from(err: Error) -> Self {
        std::io::Error::from_raw_os_error(err.errno())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_reads_context_first() {
        let e = Error::new(ErrorKind::ReadOnly, "write")
            .with_path(VPath::parse("/x").unwrap())
            .with_detail("mounted read-only")
            .in_mount(&VPath::parse("/data").unwrap());
        assert_eq!(e.to_string(), "write '/data/x' (mount '/data'): read-only file system (mounted read-only)");
        assert_eq!(e.errno(), libc::EROFS);
    }

    #[test]
    fn conflict_names_paths() {
        let e = Error::conflict("commit", vec![VPath::parse("/x").unwrap()], "sibling committed first");
        assert_eq!(e.kind().code(), "ECONFLICT");
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(ErrorKind::from_code("EWHAT"), None);
        let rebased = Error::conflict("commit", vec![VPath::parse("/x").unwrap()], "sibling committed first")
            .in_mount(&VPath::parse("/data").unwrap())
            .add_detail("nothing was written");
        assert_eq!(rebased.conflicts(), [VPath::parse("/data/x").unwrap()], "a resource's paths become virtual ones");
        assert_eq!(rebased.detail(), Some("sibling committed first; nothing was written"));
        assert_eq!(e.to_string(), "commit: conflict on '/x' (sibling committed first)");
    }

    #[test]
    fn errno_round_trips() {
        for kind in ErrorKind::ALL.into_iter().filter(|k| *k != ErrorKind::Conflict) {
            assert_eq!(ErrorKind::from_errno(kind.errno()), kind);
        }
    }
}
