//! The `fuser::Filesystem` that answers the kernel from a session.
//!
//! A request is answered on the thread that read it from the kernel when its session
//! operations complete at once, as those of memory and local mounts and cached metadata do.
//! When one would have to wait (a remote resource, a session busy with another writer), the
//! request is dropped before it changed anything and answered again from the start on a
//! worker thread that may wait, so the reading threads never block: there can be one per
//! CPU, each pinned to it, and a request is then mostly answered on the CPU that sent it.
//!
//! The kernel keeps entries, attributes and pages for the configured time to live; what
//! changes behind its back (another writer of the session, a commit into it) is invalidated
//! explicitly by [`crate::invalidate`], and changes made through this mount are not, because
//! the kernel already knows them.

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use fuser::{
    BackingId, Errno, FileAttr, FileHandle, FileType as Kind, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use mirage_core::{DirEntry, Metadata, Session, VPath};

use crate::attr::{Owner, child, errno, file_attr, kind, negative_attr, orphan_attr};
use crate::busy::BusyPolling;
use crate::inodes::{Inodes, Orphan, SharedOrphan, Target};
use crate::sparse::{CHUNK, MAX_SIZE, Piece, Sparse};

thread_local! {
    /// The mount this thread is answering a request of (0 when none): changes made by the
    /// request are the kernel's own and need no invalidation.
    static SERVING: Cell<usize> = const { Cell::new(0) };
    /// Whether session operations may wait on this thread.
    static WAITING: Cell<Waiting> = const { Cell::new(Waiting::Allowed) };
    /// Whether this reading thread has been pinned to its CPU.
    static PINNED: Cell<bool> = const { Cell::new(false) };
}

/// How [`Served::run`] treats an operation that cannot complete at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waiting {
    /// Wait for it (worker threads, and the part of a request past its point of no return).
    Allowed,
    /// Give up: the request will be answered again on a worker thread.
    Refused,
    /// An operation of the current attempt would have waited; the attempt's result is void.
    GaveUp,
}

/// The mount the current thread is answering a request of, as [`mount_id`] names it.
pub(crate) fn serving() -> usize {
    SERVING.get()
}

/// A name for the mount that owns `inodes`, unique while it lives.
pub(crate) fn mount_id(inodes: &Arc<Inodes>) -> usize {
    Arc::as_ptr(inodes) as usize
}

fn lock(orphan: &SharedOrphan) -> std::sync::MutexGuard<'_, Orphan> {
    orphan.lock().unwrap_or_else(|e| e.into_inner())
}

/// Marks a file handle opened with `O_APPEND`.
const APPEND: u64 = 1;
/// Marks a file handle whose reads the kernel passes through to a host file.
const PASSTHROUGH: u64 = 2;
/// Files smaller than this are not passed through.
const PASSTHROUGH_MIN: u64 = 1 << 20;

/// The filesystem served for one session, as the kernel's requests reach it.
pub(crate) struct MirageFs {
    served: Arc<Served>,
}

/// Everything a request is answered from, shared with the worker threads that answer the
/// requests that must wait.
pub(crate) struct Served {
    session: Session,
    runtime: tokio::runtime::Handle,
    inodes: Arc<Inodes>,
    ttl: Duration,
    owner: Owner,
    /// The listing each directory's last read started from (at offset 0), so that the
    /// offsets of the following reads stay stable and a large directory is listed once.
    dirs: Mutex<HashMap<u64, Arc<Vec<DirEntry>>>>,
    next_handle: AtomicU64,
    /// The kernel opens files without asking (`FUSE_NO_OPEN_SUPPORT`): one round trip less
    /// per open.
    no_open: bool,
    /// The same for directories (`FUSE_NO_OPENDIR_SUPPORT`).
    no_opendir: bool,
    /// Asked for: read-only opens of host files the session has not changed are read by the
    /// kernel from the host file directly (`FUSE_PASSTHROUGH`; needs CAP_SYS_ADMIN).
    passthrough: bool,
    /// The backing file of each inode opened with passthrough, and how many handles use it
    /// (the kernel wants one backing file per inode).
    backing: Mutex<HashMap<u64, (Arc<BackingId>, u32)>>,
    /// The CPUs the reading threads are pinned to, one each in the order they first serve;
    /// empty when they are not pinned.
    cpus: Vec<usize>,
    /// How many reading threads have pinned themselves.
    pinned: AtomicUsize,
    /// Keeps idle CPUs polling while requests keep coming ([`crate::Options::busy_poll`]).
    busy: Option<Arc<BusyPolling>>,
}

impl MirageFs {
    /// Serves `session` as `options` say; `cpus` lists the CPUs to pin the reading threads to
    /// (empty: none).
    pub(crate) fn new(
        session: Session,
        runtime: tokio::runtime::Handle,
        inodes: Arc<Inodes>,
        options: &crate::Options,
        cpus: Vec<usize>,
        busy: Option<Arc<BusyPolling>>,
    ) -> Self {
        let served = Served {
            session,
            runtime,
            inodes,
            ttl: options.ttl,
            owner: options.owner,
            dirs: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            no_open: false,
            no_opendir: false,
            passthrough: options.passthrough,
            backing: Mutex::new(HashMap::new()),
            cpus,
            pinned: AtomicUsize::new(0),
            busy,
        };
        MirageFs { served: Arc::new(served) }
    }

    /// Answers a request: `work` computes the answer and `answer` sends it. `work` runs here,
    /// on the reading thread, unless one of its session operations would have to wait; then
    /// it is run again from the start on a worker thread. So `work` must change nothing
    /// before its last operation that may wait, or call [`Served::past_return`] first. What
    /// `answer` does runs on the same thread as the `work` that counted, and may wait.
    fn serve<R, T>(
        &self,
        reply: R,
        work: impl Fn(&Served) -> Result<T, Errno> + Send + 'static,
        answer: impl FnOnce(&Served, R, Result<T, Errno>) + Send + 'static,
    ) where
        R: Send + 'static,
    {
        let served = &self.served;
        served.arrived();
        WAITING.set(Waiting::Refused);
        let result = work(served);
        if WAITING.replace(Waiting::Allowed) != Waiting::GaveUp {
            return answer(served, reply, result);
        }
        let served = served.clone();
        drop(served.runtime.clone().spawn_blocking(move || {
            let result = work(&served);
            answer(&served, reply, result);
        }));
    }

    /// Answers a request that makes the entry `name` in `parent`.
    fn make(&self, reply: ReplyEntry, parent: INodeNo, name: &OsStr, what: Make) {
        let name = name.to_owned();
        self.serve(
            reply,
            move |fs| {
                let path = fs.child(parent, &name)?;
                let p = path.as_str();
                match &what {
                    Make::File(mode) => fs.run(fs.session.create(p, *mode))?,
                    Make::Dir(mode) => fs.run(fs.session.mkdir(p, *mode))?,
                    Make::Symlink(target) => fs.run(fs.session.symlink(target, p))?,
                }
                fs.past_return();
                fs.entry(&path)
            },
            reply_entry,
        );
    }
}

/// What [`MirageFs::make`] makes.
enum Make {
    /// An empty file with this mode.
    File(u32),
    /// A directory with this mode.
    Dir(u32),
    /// A symbolic link to this target.
    Symlink(String),
}

impl Served {
    /// Called by a reading thread as it starts on a request the kernel waits for: pins the
    /// thread the first time and keeps busy polling held.
    fn arrived(&self) {
        self.pin_reader();
        if let Some(busy) = &self.busy {
            busy.request();
        }
    }

    /// Pins the calling reading thread to a CPU of its own, the first time it serves: the
    /// kernel wakes a waiting reader for each request, and one on the requesting process's
    /// CPU answers without waking the other CPU (which costs several times the work here).
    fn pin_reader(&self) {
        if self.cpus.is_empty() || PINNED.get() {
            return;
        }
        PINNED.set(true);
        let cpu = self.cpus[self.pinned.fetch_add(1, Ordering::Relaxed) % self.cpus.len()];
        // SAFETY: a zeroed set with one CPU added, passed with its size.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
    }

    /// Marks the point after which the current request must finish where it runs: it has
    /// changed something that answering it again would not undo (a file it created would
    /// then exist already).
    fn past_return(&self) {
        if WAITING.get() == Waiting::Refused {
            WAITING.set(Waiting::Allowed);
        }
    }

    /// Opens `ino` with passthrough to its host file, when the session has not changed it and
    /// the kernel lets this process register the file; `None` to open it the usual way.
    fn open_passthrough(&self, ino: INodeNo, reply: &ReplyOpen) -> Option<Arc<BackingId>> {
        let mut backing = self.backing.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((id, users)) = backing.get_mut(&ino.0) {
            *users += 1;
            return Some(id.clone());
        }
        let path = self.inodes.path(ino).ok()?;
        let file = self.run(self.session.host_file(path.as_str())).ok()??;
        // Small files read as fast from the page cache the usual way.
        if file.metadata().ok()?.len() < PASSTHROUGH_MIN {
            return None;
        }
        let id = Arc::new(reply.open_backing(&file).ok()?);
        backing.insert(ino.0, (id.clone(), 1));
        Some(id)
    }

    /// Writes into a removed file's own copy of its content.
    fn write_orphan(&self, orphan: &SharedOrphan, offset: u64, data: &[u8], append: bool) -> Result<(), Errno> {
        let mut o = lock(orphan);
        let start = if append { o.size() } else { offset };
        if start.checked_add(data.len() as u64).is_none_or(|end| end > MAX_SIZE) {
            return Err(Errno::EFBIG);
        }
        let Orphan { snapshot, data: content, mtime, .. } = &mut *o;
        let content = content.get_or_insert_with(|| Sparse::new(snapshot.metadata().size));
        // Reading the old bytes may wait; filling a chunk with them changes nothing seen.
        for index in content.to_fill(start, data.len() as u64) {
            content.fill(index, &self.run(snapshot.read(index * CHUNK, CHUNK))?).map_err(|e| errno(&e))?;
        }
        content.write(start, data).map_err(|e| errno(&e))?;
        *mtime = SystemTime::now();
        Ok(())
    }

    /// Reads up to `len` bytes at `offset` of a removed file.
    fn read_orphan(&self, orphan: &Orphan, offset: u64, len: u64) -> Result<bytes::Bytes, Errno> {
        let Some(content) = &orphan.data else {
            return self.run(orphan.snapshot.read(offset, len));
        };
        let mut out = Vec::new();
        for piece in content.pieces(offset, len) {
            match piece {
                Piece::Written(bytes) => out.extend_from_slice(bytes),
                Piece::Snapshot { offset, len } => {
                    let bytes = self.run(orphan.snapshot.read(offset, len))?;
                    let end = out.len() + len as usize;
                    out.extend_from_slice(&bytes[..bytes.len().min(len as usize)]);
                    out.resize(end, 0);
                }
                Piece::Zeros(n) => out.resize(out.len() + n as usize, 0),
            }
        }
        Ok(out.into())
    }

    /// Runs a session operation for the kernel: to its end, or, on a reading thread, only
    /// as far as it gets at once (see [`MirageFs::serve`]; `EAGAIN` then, and the request's
    /// answer is computed again elsewhere).
    fn run<T>(&self, op: impl Future<Output = mirage_core::Result<T>>) -> Result<T, Errno> {
        let result = match WAITING.get() {
            Waiting::GaveUp => return Err(Errno::EAGAIN),
            Waiting::Refused => {
                // A resource that does I/O would start it here and again on the worker
                // thread: such a request goes there before anything starts.
                if !self.session.all_immediate() {
                    WAITING.set(Waiting::GaveUp);
                    return Err(Errno::EAGAIN);
                }
                let _context = self.runtime.enter();
                SERVING.set(mount_id(&self.inodes));
                let polled = std::pin::pin!(op).poll(&mut Context::from_waker(Waker::noop()));
                SERVING.set(0);
                match polled {
                    Poll::Ready(result) => result,
                    Poll::Pending => {
                        WAITING.set(Waiting::GaveUp);
                        return Err(Errno::EAGAIN);
                    }
                }
            }
            Waiting::Allowed => {
                SERVING.set(mount_id(&self.inodes));
                let result = self.runtime.block_on(op);
                SERVING.set(0);
                result
            }
        };
        result.map_err(|e| errno(&e))
    }

    fn lstat(&self, path: &VPath) -> Result<Metadata, Errno> {
        self.run(self.session.lstat(path.as_str()))
    }

    /// Looks `path` up and counts the kernel's new reference.
    fn entry(&self, path: &VPath) -> Result<FileAttr, Errno> {
        let meta = self.lstat(path)?;
        Ok(file_attr(self.inodes.remember(path), &meta, self.owner))
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<VPath, Errno> {
        child(&self.inodes.path(parent)?, name)
    }

    /// The content of the file at `path` if the kernel holds it (it may be open), to keep
    /// once the path is gone: a snapshot, which costs a lookup, not a copy.
    fn keep_if_held(&self, path: &VPath) -> Result<Option<Orphan>, Errno> {
        if self.inodes.peek(path).is_none() {
            return Ok(None);
        }
        match self.run(self.session.snapshot(path.as_str())) {
            Ok(snapshot) => Ok(Some(Orphan::new(snapshot))),
            Err(e) if e == Errno::EISDIR || e == Errno::EINVAL => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn new_handle(&self, append: bool) -> FileHandle {
        FileHandle((self.next_handle.fetch_add(1, Ordering::Relaxed) << 2) | if append { APPEND } else { 0 })
    }

    fn attr_of(&self, ino: INodeNo) -> Result<FileAttr, Errno> {
        match self.inodes.target(ino)? {
            Target::Path(path) => Ok(file_attr(ino, &self.lstat(&path)?, self.owner)),
            Target::Orphan(orphan) => Ok(orphan_attr(ino, &lock(&orphan), self.owner)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn set_attr(
        &self,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
    ) -> Result<FileAttr, Errno> {
        // Ownership cannot change: entries belong to the mount's owner.
        if uid.is_some_and(|u| u != self.owner.uid) || gid.is_some_and(|g| g != self.owner.gid) {
            return Err(Errno::EPERM);
        }
        let time = |t: Option<TimeOrNow>| {
            t.map(|t| match t {
                TimeOrNow::SpecificTime(t) => t,
                TimeOrNow::Now => SystemTime::now(),
            })
        };
        let path = match self.inodes.target(ino)? {
            Target::Path(path) => path,
            Target::Orphan(orphan) => {
                let mut o = lock(&orphan);
                if let Some(size) = size {
                    if size > MAX_SIZE {
                        return Err(Errno::EFBIG);
                    }
                    let snapshot_len = o.snapshot.metadata().size;
                    o.data.get_or_insert_with(|| Sparse::new(snapshot_len)).truncate(size);
                }
                if let Some(mode) = mode {
                    o.mode = mode & 0o7777;
                }
                if let Some(t) = time(mtime) {
                    o.mtime = t;
                }
                return Ok(orphan_attr(ino, &o, self.owner));
            }
        };
        let p = path.as_str();
        if let Some(mode) = mode {
            self.run(self.session.set_mode(p, mode & 0o7777))?;
        }
        if let Some(size) = size {
            self.run(self.session.truncate(p, size))?;
        }
        if atime.is_some() || mtime.is_some() {
            self.run(self.session.set_times(p, time(atime), time(mtime)))?;
        }
        Ok(file_attr(ino, &self.lstat(&path)?, self.owner))
    }

    fn create_file(&self, path: &VPath, mode: u32, flags: i32) -> Result<(), Errno> {
        match self.run(self.session.create(path.as_str(), mode & 0o7777)) {
            Err(e) if e == Errno::EEXIST && flags & libc::O_EXCL == 0 => {
                if flags & libc::O_TRUNC != 0 {
                    self.run(self.session.truncate(path.as_str(), 0))?;
                }
                Ok(())
            }
            other => other,
        }
    }

    /// The directory's path and its listing: taken afresh at offset 0, and kept for the
    /// reads that continue it.
    fn listing(&self, ino: INodeNo, offset: u64) -> Result<(VPath, Arc<Vec<DirEntry>>), Errno> {
        let dir = self.inodes.path(ino)?;
        let kept = || self.dirs.lock().unwrap_or_else(|e| e.into_inner()).get(&ino.0).cloned();
        if offset > 0
            && let Some(list) = kept()
        {
            return Ok((dir, list));
        }
        let list = Arc::new(self.run(self.session.read_dir(dir.as_str()))?);
        self.dirs.lock().unwrap_or_else(|e| e.into_inner()).insert(ino.0, list.clone());
        Ok((dir, list))
    }

    /// An inode number for a listed entry the kernel may not hold: its own number if it has
    /// one, else a number from a range the table never hands out.
    fn listed_ino(&self, path: &VPath) -> INodeNo {
        self.inodes.peek(path).unwrap_or_else(|| {
            use std::hash::{BuildHasher, BuildHasherDefault};
            let hash = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(path);
            INodeNo(hash | 1 << 63)
        })
    }

    fn dot_entries(&self, ino: INodeNo, dir: &VPath) -> [(INodeNo, &'static str); 2] {
        let parent = dir.parent().and_then(|p| self.inodes.peek(&p)).unwrap_or(INodeNo::ROOT);
        [(ino, "."), (parent, "..")]
    }
}

/// Answers a request that returns nothing but success or an errno.
fn reply_empty(_: &Served, reply: ReplyEmpty, result: Result<(), Errno>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

/// Answers a request for an entry (the kernel counts a reference to it).
fn reply_entry(served: &Served, reply: ReplyEntry, result: Result<FileAttr, Errno>) {
    match result {
        Ok(attr) => reply.entry(&served.ttl, &attr, Generation(0)),
        Err(e) => reply.error(e),
    }
}

/// Answers a request for attributes.
fn reply_attr(served: &Served, reply: ReplyAttr, result: Result<FileAttr, Errno>) {
    match result {
        Ok(attr) => reply.attr(&served.ttl, &attr),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for MirageFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let served = Arc::get_mut(&mut self.served).expect("nothing is served before init");
        // Ask for what the kernel offers of these; it is fine to get less.
        let wanted = InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_CACHE_SYMLINKS
            | InitFlags::FUSE_NO_OPENDIR_SUPPORT
            // Passthrough needs open requests; without it, opens cost no round trip.
            | if served.passthrough { InitFlags::FUSE_PASSTHROUGH } else { InitFlags::FUSE_NO_OPEN_SUPPORT };
        let granted = wanted & config.capabilities();
        if granted.contains(InitFlags::FUSE_PASSTHROUGH) {
            let _ = config.set_max_stack_depth(1);
        } else {
            served.passthrough = false;
        }
        let _ = config.add_capabilities(granted);
        served.no_open = granted.contains(InitFlags::FUSE_NO_OPEN_SUPPORT);
        served.no_opendir = granted.contains(InitFlags::FUSE_NO_OPENDIR_SUPPORT);
        // Large sequential reads: as much read-ahead as the kernel allows.
        if let Err(max) = config.set_max_readahead(4 << 20) {
            let _ = config.set_max_readahead(max);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = name.to_owned();
        self.serve(
            reply,
            move |fs| {
                let path = fs.child(parent, &name)?;
                match fs.entry(&path) {
                    // A negative entry the kernel may keep: a create through any other way
                    // than this mount invalidates it.
                    Err(e) if e == Errno::ENOENT => Ok(negative_attr(fs.owner)),
                    other => other,
                }
            },
            reply_entry,
        );
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        if self.served.inodes.forget(ino, nlookup) {
            self.served.dirs.lock().unwrap_or_else(|e| e.into_inner()).remove(&ino.0);
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.serve(reply, move |fs| fs.attr_of(ino), reply_attr);
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // Setting the same mode, size and times again changes nothing: no point of no return.
        self.serve(reply, move |fs| fs.set_attr(ino, mode, uid, gid, size, atime, mtime), reply_attr);
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.serve(
            reply,
            move |fs| fs.inodes.path(ino).and_then(|p| fs.run(fs.session.readlink(p.as_str()))),
            |_, reply, result| match result {
                Ok(target) => reply.data(target.as_bytes()),
                Err(e) => reply.error(e),
            },
        );
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        // Regular files only: devices, FIFOs and sockets have no place in a session.
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::ENOTSUP);
        }
        self.make(reply, parent, name, Make::File(mode & !umask & 0o7777));
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        self.make(reply, parent, name, Make::Dir(mode & !umask & 0o7777));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.to_owned();
        self.serve(
            reply,
            move |fs| {
                let path = fs.child(parent, &name)?;
                let orphan = fs.keep_if_held(&path)?;
                fs.run(fs.session.remove(path.as_str()))?;
                fs.inodes.removed(&path, orphan);
                Ok(())
            },
            reply_empty,
        );
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.to_owned();
        self.serve(
            reply,
            move |fs| {
                let path = fs.child(parent, &name)?;
                fs.run(fs.session.rmdir(path.as_str()))?;
                fs.inodes.removed(&path, None);
                Ok(())
            },
            reply_empty,
        );
    }

    fn symlink(&self, _req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        let Some(target) = target.to_str().map(str::to_owned) else { return reply.error(Errno::EINVAL) };
        self.make(reply, parent, link_name, Make::Symlink(target));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.contains(RenameFlags::RENAME_EXCHANGE) || flags.contains(RenameFlags::RENAME_WHITEOUT) {
            return reply.error(Errno::EINVAL);
        }
        let (name, newname) = (name.to_owned(), newname.to_owned());
        self.serve(
            reply,
            move |fs| {
                let from = fs.child(parent, &name)?;
                let to = fs.child(newparent, &newname)?;
                if flags.contains(RenameFlags::RENAME_NOREPLACE) && fs.lstat(&to).is_ok() {
                    return Err(Errno::EEXIST);
                }
                let orphan = if from == to { None } else { fs.keep_if_held(&to)? };
                fs.run(fs.session.rename(from.as_str(), to.as_str()))?;
                if from != to {
                    fs.inodes.renamed(&from, &to, orphan);
                }
                Ok(())
            },
            reply_empty,
        );
    }

    fn link(&self, _req: &Request, _ino: INodeNo, _newparent: INodeNo, _newname: &OsStr, reply: ReplyEntry) {
        self.served.arrived();
        // A session has no hard links: every path is its own entry.
        reply.error(Errno::EPERM);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.served.arrived();
        let fs = &self.served;
        if fs.no_open {
            // "Opened, and never ask again": the kernel then keeps pages across opens.
            return reply.error(Errno::ENOSYS);
        }
        let read_only = flags.0 & libc::O_ACCMODE == libc::O_RDONLY && flags.0 & libc::O_TRUNC == 0;
        // Only host files pass through, and finding them never waits.
        if fs.passthrough
            && read_only
            && let Some(id) = fs.open_passthrough(ino, &reply)
        {
            let fh = FileHandle((fs.next_handle.fetch_add(1, Ordering::Relaxed) << 2) | PASSTHROUGH);
            return reply.opened_passthrough(fh, FopenFlags::empty(), &id);
        }
        match fs.inodes.target(ino) {
            Ok(_) => reply.opened(fs.new_handle(flags.0 & libc::O_APPEND != 0), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.serve(
            reply,
            move |fs| match fs.inodes.target(ino)? {
                Target::Path(path) => fs.run(fs.session.read(path.as_str(), offset, u64::from(size))),
                Target::Orphan(orphan) => fs.read_orphan(&lock(&orphan), offset, u64::from(size)),
            },
            |_, reply, result| match result {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(e),
            },
        );
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let append = fh.0 & APPEND != 0 || flags.0 & libc::O_APPEND != 0;
        let data = bytes::Bytes::copy_from_slice(data);
        self.serve(
            reply,
            move |fs| {
                match fs.inodes.target(ino)? {
                    Target::Path(path) if append => fs.run(fs.session.append(path.as_str(), data.clone()))?,
                    Target::Path(path) => fs.run(fs.session.write(path.as_str(), offset, data.clone()))?,
                    Target::Orphan(orphan) => fs.write_orphan(&orphan, offset, &data, append)?,
                }
                Ok(data.len() as u32)
            },
            |_, reply, result| match result {
                Ok(written) => reply.written(written),
                Err(e) => reply.error(e),
            },
        );
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        self.served.arrived();
        // Nothing to do on close (writes are in the session already): the kernel stops
        // sending flushes, which saves a round trip per close.
        reply.error(Errno::ENOSYS);
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.served.arrived();
        if fh.0 & PASSTHROUGH != 0 {
            let mut backing = self.served.backing.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((_, users)) = backing.get_mut(&ino.0) {
                *users -= 1;
                if *users == 0 {
                    backing.remove(&ino.0);
                }
            }
        }
        reply.ok();
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        // The session's changes are durable once its store has them (a no-op without one).
        self.serve(reply, |fs| fs.session.flush().map_err(|e| errno(&e)), reply_empty);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.served.arrived();
        if self.served.no_opendir {
            // As for files: opened, never ask again, and the kernel keeps listings.
            return reply.error(Errno::ENOSYS);
        }
        match self.served.inodes.path(ino) {
            // The kernel may keep the listing: changes invalidate it.
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, reply: ReplyDirectory) {
        self.serve(
            reply,
            move |fs| fs.listing(ino, offset),
            move |fs, mut reply, result| {
                let (dir, list) = match result {
                    Ok(found) => found,
                    Err(e) => return reply.error(e),
                };
                let dots = fs.dot_entries(ino, &dir);
                let start = usize::try_from(offset).unwrap_or(usize::MAX);
                for (i, (entry_ino, name, kind)) in dots
                    .iter()
                    .map(|&(ino, name)| (ino, name.to_owned(), Kind::Directory))
                    .chain(list.iter().map(|e| {
                        let path = dir.join(&e.name).unwrap_or_else(|_| dir.clone());
                        (fs.listed_ino(&path), e.name.clone(), kind(e.file_type))
                    }))
                    .enumerate()
                    .skip(start)
                {
                    if reply.add(entry_ino, (i + 1) as u64, kind, &name) {
                        break;
                    }
                }
                reply.ok();
            },
        );
    }

    fn readdirplus(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, reply: ReplyDirectoryPlus) {
        // The listing and the dot entries may wait; the entries after them are looked up as
        // they fit, which needs no waiting where the listing filled the resource's cache.
        self.serve(
            reply,
            move |fs| {
                let (dir, list) = fs.listing(ino, offset)?;
                let dots = fs.dot_entries(ino, &dir).map(|(ino, name)| (ino, name, fs.attr_of(ino)));
                Ok((dir, list, dots))
            },
            move |fs, mut reply, result| {
                let (dir, list, dots) = match result {
                    Ok(found) => found,
                    Err(e) => return reply.error(e),
                };
                let start = usize::try_from(offset).unwrap_or(usize::MAX);
                for (i, (entry_ino, name, attr)) in dots.iter().enumerate().skip(start) {
                    // The kernel takes no reference for the dot entries.
                    let Ok(attr) = attr else { continue };
                    if reply.add(*entry_ino, (i + 1) as u64, name, &fs.ttl, attr, Generation(0)) {
                        return reply.ok();
                    }
                }
                for (i, e) in list.iter().enumerate().skip(start.saturating_sub(dots.len())) {
                    let Ok(path) = dir.join(&e.name) else { continue };
                    // Gone since the listing was taken: skip it, as a later getdents would.
                    let Ok(meta) = fs.lstat(&path) else { continue };
                    let entry_ino = fs.inodes.remember(&path);
                    let attr = file_attr(entry_ino, &meta, fs.owner);
                    if reply.add(entry_ino, (i + dots.len() + 1) as u64, &e.name, &fs.ttl, &attr, Generation(0)) {
                        fs.inodes.forget(entry_ino, 1);
                        break;
                    }
                }
                reply.ok();
            },
        );
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        self.served.arrived();
        reply.ok();
    }

    fn fsyncdir(&self, req: &Request, ino: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        self.fsync(req, ino, fh, datasync, reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.served.arrived();
        // The capacity is the limit on the content sessions hold in memory, when there is
        // one; otherwise a large, free volume, so that tools checking for space proceed.
        const BLOCK: u64 = 4096;
        const FILES: u64 = 1 << 32;
        let (blocks, free) = match mirage_core::content_limit() {
            Some(limit) => (limit / BLOCK, limit.saturating_sub(mirage_core::content_held()) / BLOCK),
            None => (1 << 30, 1 << 30),
        };
        reply.statfs(blocks, free, free, FILES, FILES, BLOCK as u32, 255, BLOCK as u32);
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let name = name.to_owned();
        self.serve(
            reply,
            move |fs| {
                let path = fs.child(parent, &name)?;
                fs.create_file(&path, mode & !umask, flags)?;
                fs.past_return();
                let attr = fs.entry(&path)?;
                if attr.kind == Kind::Directory {
                    fs.inodes.forget(attr.ino, 1);
                    return Err(Errno::EISDIR);
                }
                Ok(attr)
            },
            move |fs, reply, result| match result {
                Ok(attr) => {
                    let fh = fs.new_handle(flags & libc::O_APPEND != 0);
                    reply.created(&fs.ttl, &attr, Generation(0), fh, FopenFlags::FOPEN_KEEP_CACHE);
                }
                Err(e) => reply.error(e),
            },
        );
    }
}
