//! `local`: a host directory, confined to it.
//!
//! Every path is resolved with `openat2(2)` and `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`
//! relative to a descriptor of the root directory, so neither `..` nor a symbolic link planted
//! inside the directory (by anyone, at any time) can reach a host path outside it: the kernel
//! refuses such a walk, and the final component is always acted on with `*at` calls that do not
//! follow links. Symbolic links inside the directory are listed, read with `readlink` and
//! created verbatim; the session layer resolves them in the virtual tree.
//!
//! Limits: needs Linux 5.6 or newer (`openat2`); system calls run on the calling task (they
//! are short for the small files agents touch, but a huge `read` blocks its thread while it
//! copies). Version tokens are `mtime.nsec-size-inode`, so a change that keeps all three (a
//! same-size rewrite within one timestamp tick) goes unnoticed, as with `make`.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use crate::error::{Error, ErrorKind, Result};
use crate::path::VPath;
use crate::resource::{ByteStream, Capabilities, DirEntry, FileType, Metadata, Precondition, Resource, Version};

/// A host directory mounted into the tree, confined to that directory.
#[derive(Debug)]
pub struct LocalResource {
    root: OwnedFd,
    root_path: PathBuf,
    read_only: bool,
}

/// Counter that makes temporary names unique within the process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The permission bits this resource gives host files: all but setuid and setgid, which a
/// session's content (an agent's, say) must not carry onto the host, as the kernel itself
/// drops them when an unprivileged writer changes a file.
const HOST_MODE_BITS: u32 = 0o1777;

/// The permission bits this resource gives host directories: all but setuid (meaningless on
/// one); setgid stays, as it only makes new entries inherit the directory's group.
const HOST_DIR_MODE_BITS: u32 = 0o3777;

impl LocalResource {
    /// Opens `dir` (which must exist and be a directory) as a writable resource.
    ///
    /// # Errors
    /// `NotFound` or `NotADirectory` for a bad `dir`, `Unsupported` on kernels without
    /// `openat2`.
    pub fn new(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let fail = |e: io::Error| {
            Error::io("mount local", e).with_detail(format!("cannot open directory '{}'", dir.display()))
        };
        let root_path = dir.canonicalize().map_err(fail)?;
        let c = cstring(root_path.as_os_str().as_bytes())?;
        // SAFETY: `c` is a valid NUL-terminated string; the result is checked.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(fail(io::Error::last_os_error()));
        }
        // SAFETY: `fd` was just opened and is owned by nobody else.
        let root = unsafe { OwnedFd::from_raw_fd(fd) };
        let resource = LocalResource { root, root_path, read_only: false };
        resource.open_dir(&VPath::root()).map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOSYS) {
                Error::new(ErrorKind::Unsupported, "mount local").with_detail("openat2(2) needs Linux 5.6 or newer")
            } else {
                fail(e)
            }
        })?;
        Ok(resource)
    }

    /// The same directory, refusing every write with `EROFS`.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// The host directory this resource serves.
    pub fn host_path(&self) -> &Path {
        &self.root_path
    }

    /// Opens a directory beneath the root without following any symbolic link, as a path
    /// handle (for the `*at` calls).
    fn open_dir(&self, dir: &VPath) -> io::Result<OwnedFd> {
        self.open_beneath(dir, libc::O_PATH)
    }

    /// Opens the directory `dir` beneath the root with `flags`, never through a link.
    fn open_beneath(&self, dir: &VPath, flags: i32) -> io::Result<OwnedFd> {
        let rel = if dir.is_root() { ".".to_owned() } else { dir.as_str()[1..].to_owned() };
        let c = cstring(rel.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: `open_how` is plain data; zero is a valid value for every field.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = (flags | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64;
        how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
        // SAFETY: all pointers are valid for the call; the size matches the struct.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                self.root.as_raw_fd(),
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel returned a fresh descriptor.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    }

    /// The directory holding `path`, opened safely, and the final name (`""` for the root).
    fn parent_of(&self, op: &'static str, path: &VPath) -> Result<(OwnedFd, CString)> {
        let (dir, name) = match (path.parent(), path.file_name()) {
            (Some(parent), Some(name)) => (parent, name),
            _ => (VPath::root(), ""),
        };
        let dir_fd = self.open_dir(&dir).map_err(|e| Error::io(op, e).with_path(path.clone()))?;
        Ok((dir_fd, cstring(name.as_bytes())?))
    }

    /// Runs `f` with the directory holding `path` and the final name (`""` for the root).
    fn at<T>(&self, op: &'static str, path: &VPath, f: impl FnOnce(RawFd, &CStr) -> io::Result<T>) -> Result<T> {
        let (dir, name) = self.parent_of(op, path)?;
        f(dir.as_raw_fd(), &name).map_err(|e| Error::io(op, e).with_path(path.clone()))
    }

    /// Opens `path` itself (never through a link) with `flags`.
    fn open(&self, op: &'static str, path: &VPath, flags: i32, mode: u32) -> Result<OwnedFd> {
        if path.is_root() {
            return self.open_beneath(path, flags).map_err(|e| Error::io(op, e).with_path(path.clone()));
        }
        self.at(op, path, |dir, name| {
            // SAFETY: valid descriptor and string; the result is checked.
            let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_NOFOLLOW | libc::O_CLOEXEC, mode) };
            check(fd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        })
    }

    /// Describes `path` itself (a final link is not followed).
    fn lstat(&self, path: &VPath) -> Result<Metadata> {
        self.at("stat", path, |dir, name| fstatat(dir, name).map(|st| metadata(&st)))
    }

    fn check_writable(&self, op: &'static str, path: &VPath) -> Result<()> {
        if self.read_only {
            return Err(Error::new(ErrorKind::ReadOnly, op).with_path(path.clone()));
        }
        Ok(())
    }
}

fn cstring(bytes: &[u8]) -> Result<CString> {
    CString::new(bytes).map_err(|_| Error::new(ErrorKind::InvalidInput, "path").with_detail("contains a NUL byte"))
}

fn check(ret: i32) -> io::Result<i32> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

fn empty_name(name: &CStr) -> bool {
    name.to_bytes().is_empty()
}

fn fstatat(dir: RawFd, name: &CStr) -> io::Result<libc::stat> {
    let flags = if empty_name(name) { libc::AT_EMPTY_PATH } else { libc::AT_SYMLINK_NOFOLLOW };
    // SAFETY: `st` is plain data the kernel fills in.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, flags) })?;
    Ok(st)
}

fn time_of(sec: i64, nsec: i64) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs()) + Duration::from_nanos(nsec as u64)
    }
}

fn metadata(st: &libc::stat) -> Metadata {
    let file_type = match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Dir,
        libc::S_IFLNK => FileType::Symlink,
        _ => FileType::File,
    };
    Metadata {
        file_type,
        size: if file_type == FileType::Dir { 0 } else { st.st_size as u64 },
        mode: st.st_mode & 0o7777,
        mtime: time_of(st.st_mtime, st.st_mtime_nsec),
        atime: time_of(st.st_atime, st.st_atime_nsec),
        version: Version(format!("{}.{:09}-{}-{}", st.st_mtime, st.st_mtime_nsec, st.st_size, st.st_ino)),
    }
}

fn timespec(t: Option<SystemTime>) -> libc::timespec {
    match t {
        None => libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT },
        Some(t) => {
            let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
            libc::timespec { tv_sec: d.as_secs() as libc::time_t, tv_nsec: d.subsec_nanos() as libc::c_long }
        }
    }
}

fn pwrite_all(fd: RawFd, mut data: &[u8], mut offset: u64) -> io::Result<()> {
    while !data.is_empty() {
        // SAFETY: the buffer is valid for `data.len()` bytes.
        let n = unsafe { libc::pwrite(fd, data.as_ptr().cast(), data.len(), offset as libc::off_t) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        data = &data[n as usize..];
        offset += n as u64;
    }
    Ok(())
}

/// Lists the directory open at `fd` (consumed), skipping `.` and `..`.
fn read_dir(fd: OwnedFd) -> io::Result<Vec<DirEntry>> {
    // SAFETY: fdopendir takes ownership of the descriptor on success.
    let dirp = unsafe { libc::fdopendir(fd.as_raw_fd()) };
    if dirp.is_null() {
        return Err(io::Error::last_os_error());
    }
    std::mem::forget(fd);
    let entries = read_entries(dirp);
    // SAFETY: closes the stream and its descriptor exactly once.
    unsafe { libc::closedir(dirp) };
    entries
}

/// The entries of an open directory stream, `.` and `..` left out.
fn read_entries(dirp: *mut libc::DIR) -> io::Result<Vec<DirEntry>> {
    let mut entries = Vec::new();
    loop {
        // readdir tells the end from an error by errno alone.
        // SAFETY: writing this thread's errno.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `dirp` is a valid stream for the whole call.
        let ent = unsafe { libc::readdir64(dirp) };
        if ent.is_null() {
            let error = io::Error::last_os_error();
            return if error.raw_os_error() == Some(0) { Ok(entries) } else { Err(error) };
        }
        // SAFETY: readdir returns a valid entry with a NUL-terminated name.
        let (name, d_type) = unsafe { (CStr::from_ptr((*ent).d_name.as_ptr()), (*ent).d_type) };
        let name = name.to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let file_type = match d_type {
            libc::DT_DIR => FileType::Dir,
            libc::DT_LNK => FileType::Symlink,
            libc::DT_UNKNOWN => {
                // SAFETY: dirfd of a valid stream.
                let st = fstatat(unsafe { libc::dirfd(dirp) }, &CString::new(name).expect("no NUL in names"))?;
                metadata(&st).file_type
            }
            _ => FileType::File,
        };
        entries.push(DirEntry { name: String::from_utf8_lossy(name).into_owned(), file_type });
    }
}

#[async_trait]
impl Resource for LocalResource {
    fn capabilities(&self) -> Capabilities {
        // Host file calls run inline, on the caller's thread.
        Capabilities { read_only: self.read_only, immediate: true, ..Capabilities::FULL }
    }

    async fn stat(&self, path: &VPath) -> Result<Metadata> {
        self.lstat(path)
    }

    fn stat_now(&self, path: &VPath) -> Option<Result<Option<Metadata>>> {
        Some(crate::resource::absent_as_none(self.lstat(path)))
    }

    async fn read(&self, path: &VPath, offset: u64, len: u64) -> Result<Bytes> {
        let fd = self.open("read", path, libc::O_RDONLY, 0)?;
        let st = fstatat(fd.as_raw_fd(), c"").map_err(|e| Error::io("read", e).with_path(path.clone()))?;
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            return Err(Error::new(ErrorKind::IsADirectory, "read").with_path(path.clone()));
        }
        let size = st.st_size;
        let want = len.min((size as u64).saturating_sub(offset)) as usize;
        let mut buf = vec![0u8; want];
        let mut filled = 0;
        while filled < want {
            // SAFETY: the buffer has room for `want - filled` bytes at `filled`.
            let n = unsafe {
                libc::pread(
                    fd.as_raw_fd(),
                    buf[filled..].as_mut_ptr().cast(),
                    want - filled,
                    (offset + filled as u64) as libc::off_t,
                )
            };
            match n {
                0 => break,
                n if n < 0 => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(Error::io("read", e).with_path(path.clone()));
                    }
                }
                n => filled += n as usize,
            }
        }
        buf.truncate(filled);
        Ok(Bytes::from(buf))
    }

    async fn list(&self, path: &VPath) -> Result<Vec<DirEntry>> {
        let fd = self.open("list", path, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        read_dir(fd).map_err(|e| Error::io("list", e).with_path(path.clone()))
    }

    fn host_file(&self, path: &VPath) -> Option<std::fs::File> {
        let fd = self.open("open", path, libc::O_RDONLY, 0).ok()?;
        let file = std::fs::File::from(fd);
        file.metadata().ok().filter(std::fs::Metadata::is_file).map(|_| file)
    }

    async fn write(&self, path: &VPath, offset: u64, data: &[u8]) -> Result<()> {
        self.check_writable("write", path)?;
        let fd = self.open("write", path, libc::O_WRONLY, 0)?;
        pwrite_all(fd.as_raw_fd(), data, offset).map_err(|e| Error::io("write", e).with_path(path.clone()))
    }

    async fn create(&self, path: &VPath, mode: u32) -> Result<()> {
        self.check_writable("create", path)?;
        self.open("create", path, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, mode & HOST_MODE_BITS).map(drop)
    }

    async fn mkdir(&self, path: &VPath, mode: u32) -> Result<()> {
        self.check_writable("mkdir", path)?;
        self.at("mkdir", path, |dir, name| {
            check(unsafe { libc::mkdirat(dir, name.as_ptr(), mode & HOST_DIR_MODE_BITS) })
        })
        .map(drop)
    }

    async fn remove(&self, path: &VPath) -> Result<()> {
        self.check_writable("remove", path)?;
        self.at("remove", path, |dir, name| check(unsafe { libc::unlinkat(dir, name.as_ptr(), 0) })).map(drop)
    }

    async fn rmdir(&self, path: &VPath) -> Result<()> {
        self.check_writable("rmdir", path)?;
        if path.is_root() {
            return Err(Error::new(ErrorKind::PermissionDenied, "rmdir").with_path(path.clone()));
        }
        self.at("rmdir", path, |dir, name| check(unsafe { libc::unlinkat(dir, name.as_ptr(), libc::AT_REMOVEDIR) }))
            .map(drop)
    }

    async fn rename(&self, from: &VPath, to: &VPath) -> Result<()> {
        self.check_writable("rename", from)?;
        let (from_dir, from_name) = self.parent_of("rename", from)?;
        let (to_dir, to_name) = self.parent_of("rename", to)?;
        // SAFETY: valid descriptors and NUL-terminated names.
        let ret =
            unsafe { libc::renameat(from_dir.as_raw_fd(), from_name.as_ptr(), to_dir.as_raw_fd(), to_name.as_ptr()) };
        check(ret).map(drop).map_err(|e| Error::io("rename", e).with_path(from.clone()))
    }

    async fn truncate(&self, path: &VPath, len: u64) -> Result<()> {
        self.check_writable("truncate", path)?;
        let fd = self.open("truncate", path, libc::O_WRONLY, 0)?;
        check(unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) })
            .map(drop)
            .map_err(|e| Error::io("truncate", e).with_path(path.clone()))
    }

    async fn symlink(&self, target: &str, path: &VPath) -> Result<()> {
        self.check_writable("symlink", path)?;
        let target = cstring(target.as_bytes())?;
        self.at("symlink", path, |dir, name| check(unsafe { libc::symlinkat(target.as_ptr(), dir, name.as_ptr()) }))
            .map(drop)
    }

    async fn readlink(&self, path: &VPath) -> Result<String> {
        self.at("readlink", path, |dir, name| {
            let mut buf = vec![0u8; libc::PATH_MAX as usize];
            // SAFETY: the buffer is valid for its length.
            let n = unsafe { libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            buf.truncate(n as usize);
            Ok(String::from_utf8_lossy(&buf).into_owned())
        })
    }

    async fn set_mode(&self, path: &VPath, mode: u32) -> Result<()> {
        self.check_writable("chmod", path)?;
        self.at("chmod", path, |dir, name| {
            let flags = if empty_name(name) { libc::AT_EMPTY_PATH } else { libc::AT_SYMLINK_NOFOLLOW };
            // SAFETY: a zeroed stat filled in by the kernel for the entry `dir` and `name` name.
            let is_dir = unsafe {
                let mut st: libc::stat = std::mem::zeroed();
                libc::fstatat(dir, name.as_ptr(), &mut st, flags) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFDIR
            };
            let mode = mode & if is_dir { HOST_DIR_MODE_BITS } else { HOST_MODE_BITS };
            // SAFETY: fchmodat2 takes the same arguments as fchmodat plus flags.
            let ret = unsafe { libc::syscall(libc::SYS_fchmodat2, dir, name.as_ptr(), mode, flags) };
            if ret == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENOSYS) {
                return Err(e);
            }
            // Older kernels: open the entry itself (fails on a symlink) and fchmod it.
            let open_flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
            let fd = check(unsafe { libc::openat(dir, name.as_ptr(), open_flags) })?;
            // SAFETY: `fd` is fresh and owned here.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            check(unsafe { libc::fchmod(fd.as_raw_fd(), mode) }).map(drop)
        })
    }

    async fn set_times(&self, path: &VPath, atime: Option<SystemTime>, mtime: Option<SystemTime>) -> Result<()> {
        self.check_writable("utimes", path)?;
        let times = [timespec(atime), timespec(mtime)];
        self.at("utimes", path, |dir, name| {
            let flags = if empty_name(name) { libc::AT_EMPTY_PATH } else { libc::AT_SYMLINK_NOFOLLOW };
            check(unsafe { libc::utimensat(dir, name.as_ptr(), times.as_ptr(), flags) }).map(drop)
        })
    }

    /// Writes a temporary file beside the target, syncs it, checks the precondition and
    /// renames it into place, so readers see the old or the new content, never a mix.
    async fn put(&self, path: &VPath, mut content: ByteStream, expect: Precondition) -> Result<Metadata> {
        self.check_writable("put", path)?;
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(Error::new(ErrorKind::IsADirectory, "put").with_path(path.clone()));
        };
        let temp_name =
            format!(".{name}.mirage-{}-{}", std::process::id(), TEMP_COUNTER.fetch_add(1, Ordering::Relaxed));
        let temp = parent.child(&temp_name.chars().take(255).collect::<String>())?;
        let mode = match self.stat(path).await {
            Ok(meta) => meta.mode,
            Err(e) if e.kind() == ErrorKind::NotFound => 0o644,
            Err(e) => return Err(e.with_op("put")),
        };
        let fd = self.open("put", &temp, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, mode)?;
        let written = async {
            let mut offset = 0;
            while let Some(chunk) = content.next().await {
                let chunk = chunk?;
                // Holes stay holes: the file is sparse, as it was in the session.
                if !crate::resource::is_hole(&chunk) {
                    pwrite_all(fd.as_raw_fd(), &chunk, offset)
                        .map_err(|e| Error::io("put", e).with_path(path.clone()))?;
                }
                offset += chunk.len() as u64;
            }
            // SAFETY: plain calls on a descriptor this function owns.
            check(unsafe { libc::ftruncate(fd.as_raw_fd(), offset as libc::off_t) })
                .and_then(|_| check(unsafe { libc::fchmod(fd.as_raw_fd(), mode & HOST_MODE_BITS) }))
                .and_then(|_| check(unsafe { libc::fsync(fd.as_raw_fd()) }))
                .map_err(|e| Error::io("put", e).with_path(path.clone()))?;
            let current = match self.stat(path).await {
                Ok(meta) => Some(meta),
                Err(e) if e.kind() == ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            };
            crate::resource::check_precondition(path, current.as_ref(), &expect)?;
            self.rename(&temp, path).await
        }
        .await;
        if let Err(e) = written {
            let _ = self.remove(&temp).await;
            return Err(e);
        }
        self.stat(path).await
    }
}
