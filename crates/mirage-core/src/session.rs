//! [`Mirage`] (the mount table and every session) and [`Session`] (one copy-on-write view of
//! the tree, with the filesystem operations agents call).
//!
//! Reads fall through to the resources; writes land in the session's overlay and reach the
//! resources only when the root session commits. See `docs/SEMANTICS.md` for the rules of
//! fork, diff, commit and abort.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};

use crate::budget::{self, Buffer};
use crate::error::{Error, ErrorKind, Result};
use crate::mount::{Mount, MountOptions, MountTable, Route};
use crate::overlay::{Attr, BaseRef, CHUNK, FileData, Node, NodeKind, Origin, Segment, View};
use crate::path::VPath;
use crate::resource::{DirEntry, FileType, Metadata, Resource, Version};
use crate::state::{Record, SessionId, State};
use crate::store::{CatchUp, Journal};
use crate::watch::{Pending, Watchers};

/// How many symbolic links one path resolution may follow.
const MAX_LINK_HOPS: usize = 40;

/// The mount table and every session: the entry point of the library.
///
/// Cheap to clone (a handle). Created in memory with [`Mirage::new`] or over a persistent
/// store with [`Mirage::open`].
#[derive(Clone, Debug)]
pub struct Mirage {
    pub(crate) hub: Arc<Hub>,
}

/// Shared by a [`Mirage`] and its sessions.
#[derive(Debug)]
pub(crate) struct Hub {
    mounts: RwLock<MountTable>,
    /// [`MountTable::all_immediate`] of `mounts`, kept beside it (set under its write lock) so
    /// that the hottest calls read it without taking the lock.
    all_immediate: AtomicBool,
    state: Mutex<Inner>,
    stamps: AtomicU64,
    locks: Mutex<HashMap<SessionId, Arc<SessionLock>>>,
    started: SystemTime,
    pub(crate) watchers: Watchers,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) state: State,
    journal: Option<Journal>,
    /// What watchers have yet to hear: they are called once no lock is held (see
    /// [`Hub::deliver`]).
    undelivered: Vec<Pending>,
}

/// A summary of one session, as [`Mirage::sessions`] lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session's unique name.
    pub name: String,
    /// Its parent's name; `None` for a root session.
    pub parent: Option<String>,
    /// How many paths it changed relative to its parent (or the resources).
    pub changes: usize,
}

impl Default for Mirage {
    fn default() -> Self {
        Self::new()
    }
}

impl Mirage {
    /// An empty tree with in-memory sessions (lost when the process exits).
    pub fn new() -> Self {
        Self::with_state(State::default(), None)
    }

    /// Opens (or creates) a persistent store in `dir` and restores every session in it.
    /// Resources are not stored: mount them again after opening. Other processes may have
    /// the store open too: each step on the sessions first applies what they recorded, so
    /// commits check against every process's changes (write a given session from one
    /// process at a time).
    ///
    /// # Errors
    /// I/O errors; `InvalidInput` when `dir` holds something else than a Mirage journal.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let (journal, state) = Journal::open(dir.as_ref())?;
        Ok(Self::with_state(state, Some(journal)))
    }

    fn with_state(state: State, journal: Option<Journal>) -> Self {
        let stamps = AtomicU64::new(state.next_stamp.max(1));
        Mirage {
            hub: Arc::new(Hub {
                mounts: RwLock::new(MountTable::new()),
                all_immediate: AtomicBool::new(true),
                state: Mutex::new(Inner { state, journal, undelivered: Vec::new() }),
                stamps,
                locks: Mutex::new(HashMap::new()),
                started: SystemTime::now(),
                watchers: Watchers::default(),
            }),
        }
    }

    /// Mounts `resource` at `point` (an absolute virtual path).
    ///
    /// # Errors
    /// `InvalidInput` for a bad path, `AlreadyExists` if something is mounted there.
    pub fn mount(&self, point: &str, resource: Arc<dyn Resource>, options: MountOptions) -> Result<()> {
        let point = VPath::parse(point)?;
        self.hub.change_mounts(|table| table.mount(point, resource, options))
    }

    /// Unmounts the resource at `point`.
    ///
    /// # Errors
    /// `NotFound` when nothing is mounted there.
    pub fn unmount(&self, point: &str) -> Result<Arc<dyn Resource>> {
        let point = VPath::parse(point)?;
        self.hub.change_mounts(|table| table.unmount(&point))
    }

    /// The current mounts.
    pub fn mounts(&self) -> Vec<Mount> {
        self.hub.mounts().iter().cloned().collect()
    }

    /// Creates a new root session named `name`: a copy-on-write view of every mount whose
    /// commits go to the resources.
    ///
    /// # Errors
    /// `AlreadyExists` when a session has that name; `InvalidInput` for an empty name.
    pub fn create_session(&self, name: &str) -> Result<Session> {
        self.hub.open_session(None, Some(name))
    }

    /// The existing session called `name` (a root or a fork).
    ///
    /// # Errors
    /// `NotFound` when there is none.
    pub fn session(&self, name: &str) -> Result<Session> {
        let inner = self.hub.lock();
        let id = inner.state.sessions.iter().find(|(_, s)| s.name == name).map(|(id, _)| *id).ok_or_else(|| {
            Error::new(ErrorKind::NotFound, "session").with_detail(format!("no session named '{name}'"))
        })?;
        Ok(Session::new(&self.hub, id))
    }

    /// Every session, roots first, then forks in creation order.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let inner = self.hub.lock();
        let state = &inner.state;
        let mut list: Vec<SessionInfo> = state
            .sessions
            .values()
            .map(|s| SessionInfo {
                name: s.name.clone(),
                parent: s.parent.and_then(|p| state.sessions.get(&p)).map(|p| p.name.clone()),
                changes: s.touched.len(),
            })
            .collect();
        list.sort_by_key(|s| s.parent.is_some());
        list
    }

    /// Makes everything recorded so far durable (a no-op without a store).
    ///
    /// # Errors
    /// I/O errors from the store.
    pub fn flush(&self) -> Result<()> {
        self.hub.lock().journal.as_mut().map_or(Ok(()), Journal::sync)
    }
}

/// The sessions' state, locked for one step; with a store, the store is locked too and the
/// state is up to date with what other processes appended.
pub(crate) struct HubGuard<'a> {
    inner: MutexGuard<'a, Inner>,
}

impl std::ops::Deref for HubGuard<'_> {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl std::ops::DerefMut for HubGuard<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.inner
    }
}

impl Drop for HubGuard<'_> {
    fn drop(&mut self) {
        if let Some(journal) = self.inner.journal.as_mut() {
            journal.unlock();
        }
    }
}

impl Hub {
    pub(crate) fn lock(&self) -> HubGuard<'_> {
        let mut inner = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(journal) = inner.journal.as_mut() {
            match journal.catch_up() {
                CatchUp::Records(foreign) if foreign.is_empty() => {}
                CatchUp::Records(foreign) => self.apply_foreign(&mut inner, &foreign),
                CatchUp::Restart(records) => {
                    let before = inner.state.rebuild(&records);
                    let pending = self.watchers.pending_rebuild(&before, &inner.state);
                    inner.undelivered.extend(pending);
                    self.stamps.fetch_max(inner.state.next_stamp, Ordering::Relaxed);
                }
            }
        }
        HubGuard { inner }
    }

    /// Applies what other processes recorded; their changes to sessions watched here are
    /// heard at this process's next delivery.
    fn apply_foreign(&self, inner: &mut Inner, records: &[Record]) {
        let pending = self.watchers.pending(&inner.state, records);
        for record in records {
            // Records were checked by the process that wrote them, in the same order.
            let _ = inner.state.apply(record);
        }
        inner.undelivered.extend(pending);
        self.stamps.fetch_max(inner.state.next_stamp, Ordering::Relaxed);
    }

    pub(crate) fn mounts(&self) -> std::sync::RwLockReadGuard<'_, MountTable> {
        self.mounts.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the mount table with `change`, keeping [`Hub::all_immediate`] in step.
    fn change_mounts<T>(&self, change: impl FnOnce(&mut MountTable) -> T) -> T {
        let mut table = self.mounts.write().unwrap_or_else(|e| e.into_inner());
        let out = change(&mut table);
        self.all_immediate.store(table.all_immediate(), Ordering::Release);
        out
    }

    /// Routes `path` through the current mount table (without holding its lock).
    pub(crate) fn route(&self, path: &VPath) -> Route {
        self.mounts().route(path)
    }

    pub(crate) fn next_stamp(&self) -> u64 {
        self.stamps.fetch_add(1, Ordering::Relaxed)
    }

    /// Journals and applies `records` in one step.
    pub(crate) fn record(&self, records: &[Record]) -> Result<()> {
        let mut inner = self.lock();
        self.record_locked(&mut inner, records)
    }

    pub(crate) fn record_locked(&self, inner: &mut Inner, records: &[Record]) -> Result<()> {
        // Only records that apply are journaled: a session aborted while an operation on it
        // was in flight makes that operation fail here, not the next replay.
        for record in records {
            inner.state.check(record)?;
        }
        if let Some(journal) = inner.journal.as_mut() {
            journal.append(records)?;
        }
        let pending = self.watchers.pending(&inner.state, records);
        for record in records {
            inner.state.apply(record)?;
        }
        inner.undelivered.extend(pending);
        let Inner { state, journal, .. } = inner;
        if let Some(journal) = journal.as_mut() {
            let dead = records.iter().any(Record::leaves_dead_records);
            if dead || journal.grown() {
                journal.tidy(state, dead)?;
            }
        }
        Ok(())
    }

    /// Tells watchers about the changes recorded so far. Called where an operation has
    /// released every lock it held: a watcher may wait for another thread that needs them (a
    /// kernel invalidating its caches waits for the filesystem requests in flight).
    pub(crate) fn deliver(&self) {
        // Nothing is queued for nobody: spare the lock (and, with a store, the journal's).
        if !self.watchers.any() {
            return;
        }
        let pending = std::mem::take(&mut self.lock().undelivered);
        for p in pending {
            self.watchers.deliver(p);
        }
    }

    /// Makes the journal durable.
    pub(crate) fn sync(&self, inner: &mut Inner) -> Result<()> {
        inner.journal.as_mut().map_or(Ok(()), Journal::sync)
    }

    /// Opens a root session (`parent: None`) or a fork; `name: None` picks the first free
    /// `PARENT.N`. Name choice and creation happen under one lock, so concurrent forks never
    /// collide.
    pub(crate) fn open_session(self: &Arc<Self>, parent: Option<SessionId>, name: Option<&str>) -> Result<Session> {
        let mut inner = self.lock();
        let taken = |state: &State, n: &str| state.sessions.values().any(|s| s.name == n);
        let name = match (name, parent) {
            (Some(name), _) => {
                if name.is_empty() || name.contains(['/', '\0']) {
                    return Err(Error::new(ErrorKind::InvalidInput, "session")
                        .with_detail(format!("bad session name {name:?} (non-empty, no '/')")));
                }
                if taken(&inner.state, name) {
                    return Err(Error::new(ErrorKind::AlreadyExists, "session")
                        .with_detail(format!("a session named '{name}' exists")));
                }
                name.to_owned()
            }
            (None, Some(parent)) => {
                let base = inner.state.session(parent)?.name.clone();
                let prefix = format!("{base}.");
                // One pass over the sessions for the numbers in use (trying each candidate
                // against every session was quadratic in the number of forks).
                let used: std::collections::HashSet<u64> =
                    inner.state.sessions.values().filter_map(|s| s.name.strip_prefix(&prefix)?.parse().ok()).collect();
                let free = (1..).find(|i| !used.contains(i)).expect("a free number exists");
                format!("{prefix}{free}")
            }
            (None, None) => return Err(Error::new(ErrorKind::InvalidInput, "session").with_detail("a name is needed")),
        };
        let id = inner.state.next_session;
        self.record_locked(&mut inner, &[Record::Open { id, parent, name }])?;
        Ok(Session::new(self, id))
    }

    /// The write lock of one session: mutations of a session (and commits into it) run one
    /// at a time.
    pub(crate) fn session_lock(&self, id: SessionId) -> Arc<SessionLock> {
        self.locks.lock().unwrap_or_else(|e| e.into_inner()).entry(id).or_default().clone()
    }
}

/// A session's write lock. Held across the waits of one operation, so asynchronous; taking
/// it when free is one atomic operation, and releasing it another (the runtime's own mutex
/// took a lock of its own on every release).
pub(crate) type SessionLock = futures::lock::Mutex<()>;

/// One copy-on-write view of the whole tree.
///
/// Cheap to clone (a handle). Relative paths resolve against the session's working
/// directory. Every operation names its path and mount in its error.
#[derive(Clone, Debug)]
pub struct Session {
    pub(crate) hub: Arc<Hub>,
    pub(crate) id: SessionId,
    /// The session's write lock, looked up at the first change through this handle.
    lock: std::sync::OnceLock<Arc<SessionLock>>,
}

/// What a path holds, as a session sees it.
#[derive(Clone, Debug)]
pub(crate) enum Found {
    /// An overlay entry (possibly a whiteout: then the path is absent).
    Node(Arc<Node>),
    /// A resource entry, untouched by the session.
    Resource(Mount, VPath, Metadata),
    /// A directory that exists because mount points lie below it.
    Synthetic,
    /// Nothing.
    Absent,
}

impl Found {
    pub(crate) fn exists(&self) -> bool {
        match self {
            Found::Node(n) => n.file_type().is_some(),
            Found::Resource(..) | Found::Synthetic => true,
            Found::Absent => false,
        }
    }

    pub(crate) fn file_type(&self) -> Option<FileType> {
        match self {
            Found::Node(n) => n.file_type(),
            Found::Resource(_, _, meta) => Some(meta.file_type),
            Found::Synthetic => Some(FileType::Dir),
            Found::Absent => None,
        }
    }

    /// What the resources held here when the session first saw the path.
    pub(crate) fn origin(&self) -> Origin {
        match self {
            Found::Node(n) => n.origin.clone(),
            Found::Resource(_, _, meta) => Origin::Present(meta.file_type, meta.version.clone()),
            Found::Synthetic | Found::Absent => Origin::Absent,
        }
    }
}

fn err(kind: ErrorKind, op: &'static str, path: &VPath) -> Error {
    Error::new(kind, op).with_path(path.clone())
}

fn now_attr(mode: u32) -> Attr {
    let now = SystemTime::now();
    Attr { mode: mode & 0o7777, mtime: now, atime: now }
}

/// Options for [`Session::commit`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitOptions {
    /// Abort every sibling (and their forks) in the same step as a successful commit.
    pub winner_takes_all: bool,
    /// For a root session: the message a resource that records commits (a git repository)
    /// gives the commit; by default one naming the session.
    pub message: Option<String>,
}

/// What a commit did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitReport {
    /// Paths whose change now lives in the parent (or in the resources, for a root session).
    pub applied: Vec<VPath>,
    /// Names of sibling sessions aborted by a winner-takes-all commit.
    pub aborted: Vec<String>,
}

impl Session {
    /// A handle on session `id`.
    pub(crate) fn new(hub: &Arc<Hub>, id: SessionId) -> Self {
        Session { hub: hub.clone(), id, lock: std::sync::OnceLock::new() }
    }

    /// The session's write lock: mutations of a session (and commits into it) run one at a
    /// time.
    pub(crate) fn write_lock(&self) -> &SessionLock {
        self.lock.get_or_init(|| self.hub.session_lock(self.id))
    }

    /// True when an operation on `path` completes when first polled, unless it waits for
    /// another writer of the session: every mounted resource answers at once
    /// ([`crate::Capabilities::immediate`]), or `path` is absolute and in normal form and the
    /// mount covering it, if any, does. A symbolic link on the way into a mount that does I/O
    /// makes the operation wait all the same.
    pub fn is_immediate(&self, path: &str) -> bool {
        self.all_immediate() || self.hub.mounts().is_immediate(path)
    }

    /// True when every mounted resource answers at once ([`crate::Capabilities::immediate`]):
    /// no operation of the session can start I/O, wherever its links lead.
    pub fn all_immediate(&self) -> bool {
        self.hub.all_immediate.load(Ordering::Acquire)
    }

    /// The session's name.
    ///
    /// # Errors
    /// `NotFound` once the session has been aborted.
    pub fn name(&self) -> Result<String> {
        Ok(self.hub.lock().state.session(self.id)?.name.clone())
    }

    /// The parent session, or `None` for a root session.
    ///
    /// # Errors
    /// `NotFound` once the session has been aborted.
    pub fn parent(&self) -> Result<Option<Session>> {
        let parent = self.hub.lock().state.session(self.id)?.parent;
        Ok(parent.map(|id| Session::new(&self.hub, id)))
    }

    /// A counter that moves whenever what the session shows changes: its own writes, a fork
    /// committed into it, its own commit, an abort. A cache of the session's content (a
    /// binding's, a kernel's) stays valid while the counter stands still; content that
    /// falls through to a resource the session has not touched is not covered.
    ///
    /// # Errors
    /// `NotFound` once the session has been aborted.
    pub fn changes(&self) -> Result<Arc<AtomicU32>> {
        Ok(self.hub.lock().state.session(self.id)?.changes.clone())
    }

    /// The working directory relative paths resolve against.
    ///
    /// # Errors
    /// `NotFound` once the session has been aborted.
    pub fn cwd(&self) -> Result<VPath> {
        Ok(self.hub.lock().state.session(self.id)?.cwd.clone())
    }

    /// The session's environment variables (for processes started in it).
    ///
    /// # Errors
    /// `NotFound` once the session has been aborted.
    pub fn env(&self) -> Result<BTreeMap<String, String>> {
        Ok(self.hub.lock().state.session(self.id)?.env.clone())
    }

    /// Changes the working directory.
    ///
    /// # Errors
    /// `NotFound` or `NotADirectory` when `path` is not a directory.
    pub async fn chdir(&self, path: &str) -> Result<()> {
        let path = self.abs(path)?;
        let (path, found) = self.resolve(&self.view()?, &path, true, "chdir").await?;
        self.expect_dir(&found, "chdir", &path)?;
        let env = self.env()?;
        self.hub.record(&[Record::Env { session: self.id, cwd: path, env }])
    }

    /// Sets (`Some`) or removes (`None`) an environment variable.
    ///
    /// # Errors
    /// `NotFound` once the session has been aborted.
    pub fn set_env(&self, key: &str, value: Option<&str>) -> Result<()> {
        let (cwd, mut env) = {
            let inner = self.hub.lock();
            let s = inner.state.session(self.id)?;
            (s.cwd.clone(), s.env.clone())
        };
        match value {
            Some(v) => env.insert(key.to_owned(), v.to_owned()),
            None => env.remove(key),
        };
        self.hub.record(&[Record::Env { session: self.id, cwd, env }])
    }

    /// Resolves `path` against the working directory.
    ///
    /// # Errors
    /// As [`VPath::parse`].
    pub fn abs(&self, path: &str) -> Result<VPath> {
        if path.starts_with('/') { VPath::parse(path) } else { self.cwd()?.join(path) }
    }

    pub(crate) fn view(&self) -> Result<View> {
        Ok(self.hub.lock().state.session(self.id)?.view.clone())
    }

    /// What `path` holds in `view`, without following a final symlink. Fails with
    /// `FilesystemLoop` when an intermediate component is a symlink.
    pub(crate) async fn lookup(&self, view: &View, path: &VPath) -> Result<Found> {
        // An entry the overlay holds implies its ancestors are directories: removing or
        // replacing a directory first whites out everything below it.
        let own = view.get(path);
        if let Some(node) = own
            && node.file_type().is_some()
        {
            return Ok(Found::Node(node.clone()));
        }
        let mut opaque = false;
        // Root first, as the kernel resolves: the first special ancestor decides.
        for ancestor in path.ancestor_strs_from_root() {
            if let Some(node) = view.get(ancestor) {
                match &node.kind {
                    NodeKind::Dir { opaque: o } => opaque |= *o,
                    NodeKind::Clean => {}
                    NodeKind::Whiteout => return Ok(Found::Absent),
                    NodeKind::File(_) => return Err(err(ErrorKind::NotADirectory, "lookup", path)),
                    NodeKind::Symlink(_) => return Err(err(ErrorKind::FilesystemLoop, "lookup", path)),
                }
            }
        }
        if let Some(node) = own
            && !node.is_clean()
        {
            return Ok(Found::Node(node.clone()));
        }
        if opaque {
            return Ok(Found::Absent);
        }
        let route = self.hub.route(path);
        match route {
            Route::Resource(mount, inner) => {
                let stat = match mount.resource().stat_now(&inner) {
                    Some(answer) => answer,
                    None => crate::resource::absent_as_none(mount.resource().stat(&inner).await),
                };
                match stat {
                    Ok(Some(meta)) => Ok(Found::Resource(mount, inner, meta)),
                    Ok(None) if self.hub.mounts().is_above_mounts(path) => Ok(Found::Synthetic),
                    Ok(None) => Ok(Found::Absent),
                    Err(e) => Err(e.in_mount(mount.point())),
                }
            }
            Route::Synthetic => Ok(Found::Synthetic),
            Route::Nothing => Ok(Found::Absent),
        }
    }

    /// Follows symbolic links in `path` (and in its final component when `follow`), in the
    /// virtual tree, and returns the resolved path with what it holds.
    pub(crate) async fn resolve(
        &self,
        view: &View,
        path: &VPath,
        follow: bool,
        op: &'static str,
    ) -> Result<(VPath, Found)> {
        let mut current = path.clone();
        let mut hops = 0;
        let hop = |hops: &mut usize| {
            *hops += 1;
            if *hops > MAX_LINK_HOPS {
                Err(err(ErrorKind::FilesystemLoop, op, path).with_detail("too many levels of symbolic links"))
            } else {
                Ok(())
            }
        };
        'walk: loop {
            match self.lookup(view, &current).await {
                Ok(found) => {
                    if follow && found.file_type() == Some(FileType::Symlink) {
                        hop(&mut hops)?;
                        let target = self.link_target(&current, &found).await?;
                        current = current.parent().unwrap_or_else(VPath::root).join(&target)?;
                        continue;
                    }
                    return Ok((current, found));
                }
                Err(e) if e.kind() == ErrorKind::FilesystemLoop => {
                    let parts: Vec<String> = current.components().map(str::to_owned).collect();
                    let mut prefix = VPath::root();
                    for (i, part) in parts.iter().enumerate().take(parts.len().saturating_sub(1)) {
                        let next = prefix.child(part)?;
                        let found = self.lookup(view, &next).await.map_err(|e| e.with_op(op))?;
                        match found.file_type() {
                            Some(FileType::Symlink) => {
                                hop(&mut hops)?;
                                let target = self.link_target(&next, &found).await?;
                                current = prefix.join(&target)?.join(&parts[i + 1..].join("/"))?;
                                continue 'walk;
                            }
                            Some(FileType::Dir) => prefix = next,
                            Some(FileType::File) => return Err(err(ErrorKind::NotADirectory, op, path)),
                            None => return Err(err(ErrorKind::NotFound, op, path)),
                        }
                    }
                    return Err(e.with_op(op));
                }
                Err(e) => return Err(e.with_op(op)),
            }
        }
    }

    async fn link_target(&self, path: &VPath, found: &Found) -> Result<String> {
        match found {
            Found::Node(node) => match &node.kind {
                NodeKind::Symlink(target) => Ok(target.clone()),
                NodeKind::Whiteout | NodeKind::Clean => Err(err(ErrorKind::NotFound, "readlink", path)),
                _ => Err(err(ErrorKind::InvalidInput, "readlink", path).with_detail("not a symbolic link")),
            },
            Found::Resource(mount, inner, meta) if meta.file_type == FileType::Symlink => {
                mount.resource().readlink(inner).await.map_err(|e| e.in_mount(mount.point()))
            }
            Found::Absent => Err(err(ErrorKind::NotFound, "readlink", path)),
            _ => Err(err(ErrorKind::InvalidInput, "readlink", path).with_detail("not a symbolic link")),
        }
    }

    fn expect_dir(&self, found: &Found, op: &'static str, path: &VPath) -> Result<()> {
        match found.file_type() {
            Some(FileType::Dir) => Ok(()),
            Some(_) => Err(err(ErrorKind::NotADirectory, op, path)),
            None => Err(err(ErrorKind::NotFound, op, path)),
        }
    }

    /// Describes `path`, following symbolic links.
    ///
    /// # Errors
    /// `NotFound`, `NotADirectory` for a file used as a directory, `FilesystemLoop`.
    pub async fn stat(&self, path: &str) -> Result<Metadata> {
        let path = self.abs(path)?;
        let (resolved, found) = self.resolve(&self.view()?, &path, true, "stat").await?;
        self.metadata(&found).ok_or_else(|| err(ErrorKind::NotFound, "stat", &resolved))
    }

    /// Describes `path` itself (a symbolic link is not followed).
    ///
    /// # Errors
    /// As [`Session::stat`].
    pub async fn lstat(&self, path: &str) -> Result<Metadata> {
        let path = self.abs(path)?;
        let (resolved, found) = self.resolve(&self.view()?, &path, false, "lstat").await?;
        self.metadata(&found).ok_or_else(|| err(ErrorKind::NotFound, "lstat", &resolved))
    }

    /// The host file behind the regular file at `path` (links followed), when the session
    /// has not changed it and its resource keeps it on the host ([`Resource::host_file`]);
    /// `None` otherwise. Reading it reads what the session shows, until the session changes
    /// the path.
    ///
    /// # Errors
    /// As [`Session::stat`].
    pub async fn host_file(&self, path: &str) -> Result<Option<std::fs::File>> {
        let path = self.abs(path)?;
        let (resolved, found) = self.resolve(&self.view()?, &path, true, "open").await?;
        Ok(match found {
            Found::Resource(mount, inner, meta) if meta.file_type == FileType::File => {
                mount.resource().host_file(&inner)
            }
            found if !found.exists() => return Err(err(ErrorKind::NotFound, "open", &resolved)),
            _ => None,
        })
    }

    /// True when `path` exists (following symbolic links).
    ///
    /// # Errors
    /// Errors other than `NotFound` and `NotADirectory` (an unreachable resource, say).
    pub async fn exists(&self, path: &str) -> Result<bool> {
        match self.stat(path).await {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn metadata(&self, found: &Found) -> Option<Metadata> {
        match found {
            Found::Node(node) => Some(Metadata {
                file_type: node.file_type()?,
                size: node.size(),
                mode: node.attr.mode,
                mtime: node.attr.mtime,
                atime: node.attr.atime,
                version: Version(format!("o{}", node.stamp)),
            }),
            Found::Resource(_, _, meta) => Some(meta.clone()),
            Found::Synthetic => Some(Metadata {
                file_type: FileType::Dir,
                size: 0,
                mode: 0o555,
                mtime: self.hub.started,
                atime: self.hub.started,
                version: Version("synthetic".into()),
            }),
            Found::Absent => None,
        }
    }

    /// Reads up to `len` bytes at `offset` of the file at `path`.
    ///
    /// # Errors
    /// `NotFound`, `IsADirectory`, or the resource's error.
    pub async fn read(&self, path: &str, offset: u64, len: u64) -> Result<Bytes> {
        let path = self.abs(path)?;
        let (resolved, found) = self.resolve(&self.view()?, &path, true, "read").await?;
        self.read_found(&resolved, &found, offset, len).await
    }

    /// Copies the whole file at `path` into the start of `out` and returns its length, when
    /// the session holds that file whole in memory (changed in this session or before a fork)
    /// and it fits; `None` otherwise, for [`Session::read_file`] to answer. `path` must be
    /// absolute and in normal form.
    ///
    /// For readers that copy anyway (the Node addon copies into JavaScript memory): it spares
    /// a read back the clone of the session's view and of the content.
    pub fn read_held_into(&self, path: &str, out: &mut [u8]) -> Option<usize> {
        if !crate::path::is_normal(path) {
            return None;
        }
        let inner = self.hub.lock();
        // As `lookup` answers: an entry the overlay holds implies its ancestors are directories.
        let NodeKind::File(file) = &inner.state.session(self.id).ok()?.view.get(path)?.kind else {
            return None;
        };
        if file.base.is_some() {
            return None;
        }
        if file.size == 0 {
            return Some(0);
        }
        let content = file.single_chunk()?;
        out.get_mut(..content.len())?.copy_from_slice(content);
        Some(content.len())
    }

    /// Reads the whole file at `path`.
    ///
    /// # Errors
    /// As [`Session::read`].
    pub async fn read_file(&self, path: &str) -> Result<Bytes> {
        self.read(path, 0, u64::MAX).await
    }

    /// Reads the whole file at `path` as UTF-8 text.
    ///
    /// # Errors
    /// As [`Session::read`], or `InvalidInput` when the content is not UTF-8.
    pub async fn read_to_string(&self, path: &str) -> Result<String> {
        let bytes = self.read_file(path).await?;
        String::from_utf8(bytes.to_vec()).map_err(|_| {
            Error::new(ErrorKind::InvalidInput, "read")
                .with_path(self.abs(path).unwrap_or_else(|_| VPath::root()))
                .with_detail("not valid UTF-8")
        })
    }

    pub(crate) async fn read_found(&self, path: &VPath, found: &Found, offset: u64, len: u64) -> Result<Bytes> {
        match found {
            Found::Node(node) => match &node.kind {
                NodeKind::File(file) => self.read_file_data(path, file, offset, len).await,
                NodeKind::Dir { .. } => Err(err(ErrorKind::IsADirectory, "read", path)),
                NodeKind::Symlink(_) => Err(err(ErrorKind::InvalidInput, "read", path)),
                NodeKind::Whiteout | NodeKind::Clean => Err(err(ErrorKind::NotFound, "read", path)),
            },
            Found::Resource(mount, inner, meta) => match meta.file_type {
                FileType::File => {
                    mount.resource().read(inner, offset, len).await.map_err(|e| e.in_mount(mount.point()))
                }
                FileType::Dir => Err(err(ErrorKind::IsADirectory, "read", path)),
                FileType::Symlink => Err(err(ErrorKind::InvalidInput, "read", path)),
            },
            Found::Synthetic => Err(err(ErrorKind::IsADirectory, "read", path)),
            Found::Absent => Err(err(ErrorKind::NotFound, "read", path)),
        }
    }

    /// Assembles a range of an overlay file from its chunks and its base.
    pub(crate) async fn read_file_data(&self, path: &VPath, file: &FileData, offset: u64, len: u64) -> Result<Bytes> {
        if offset == 0
            && file.base.is_none()
            && let Some(chunk) = file.single_chunk()
        {
            return Ok(chunk.slice(..(len.min(chunk.len() as u64) as usize)));
        }
        let mut segments = file.plan_read(offset, len);
        if segments.len() == 1
            && let Segment::Data(bytes) = &segments[0]
        {
            return Ok(bytes.clone());
        }
        let mut out = BytesMut::new();
        for segment in segments.drain(..) {
            match segment {
                Segment::Data(bytes) => out.extend_from_slice(&bytes),
                Segment::Zero(n) => out.resize(out.len() + n as usize, 0),
                Segment::Base(start, end) => {
                    let base = file.base.as_ref().expect("a base segment implies a base");
                    let bytes = self.read_base(path, base, start, end - start).await?;
                    out.extend_from_slice(&bytes);
                    out.resize(out.len() + (end - start) as usize - bytes.len(), 0);
                }
            }
        }
        Ok(out.freeze())
    }

    /// Reads resource content an overlay file is based on.
    pub(crate) async fn read_base(&self, path: &VPath, base: &BaseRef, offset: u64, len: u64) -> Result<Bytes> {
        let mount = self.hub.mounts().get(&base.mount).cloned().ok_or_else(|| {
            err(ErrorKind::NotFound, "read", path)
                .with_detail(format!("its content lives on '{}', which is no longer mounted", base.mount))
        })?;
        let resource = mount.resource();
        let current = resource.stat(&base.inner).await.map_err(|e| e.in_mount(&base.mount))?;
        if current.version != base.version {
            return Err(Error::conflict("read", vec![path.clone()], "").with_path(path.clone()).with_detail(format!(
                "'{}' changed on its resource after this session modified it; its unmodified \
                     parts are no longer available (the session's own writes are kept)",
                base.inner.rebase(&base.mount)
            )));
        }
        resource.read(&base.inner, offset, len).await.map_err(|e| e.in_mount(&base.mount))
    }

    /// Lists the directory at `path`, sorted by name.
    ///
    /// # Errors
    /// `NotFound`, `NotADirectory`, or the resource's error.
    pub async fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>> {
        let path = self.abs(path)?;
        let view = self.view()?;
        let (resolved, found) = self.resolve(&view, &path, true, "readdir").await?;
        self.list_found(&view, &resolved, &found).await
    }

    pub(crate) async fn list_found(&self, view: &View, path: &VPath, found: &Found) -> Result<Vec<DirEntry>> {
        self.expect_dir(found, "readdir", path)?;
        let mut entries: BTreeMap<String, FileType> = BTreeMap::new();
        let from_resource = match found {
            Found::Node(node) => !matches!(node.kind, NodeKind::Dir { opaque: true }),
            _ => true,
        };
        if from_resource && let Route::Resource(mount, inner) = self.hub.route(path) {
            match mount.resource().list(&inner).await {
                Ok(list) => entries.extend(list.into_iter().map(|e| (e.name, e.file_type))),
                Err(e) if e.kind() == ErrorKind::NotFound && matches!(found, Found::Synthetic) => {}
                Err(e) => return Err(e.in_mount(mount.point())),
            }
        }
        for name in self.hub.mounts().children_of(path) {
            entries.insert(name, FileType::Dir);
        }
        for (child, node) in view.children(path) {
            let name = child.file_name().expect("a child has a name").to_owned();
            match (node.file_type(), &node.kind) {
                (Some(t), _) => entries.insert(name, t),
                (None, NodeKind::Clean) => None,
                (None, _) => entries.remove(&name),
            };
        }
        Ok(entries.into_iter().map(|(name, file_type)| DirEntry { name, file_type }).collect())
    }

    /// Reads the target of the symbolic link at `path`.
    ///
    /// # Errors
    /// `NotFound`, or `InvalidInput` when `path` is not a link.
    pub async fn readlink(&self, path: &str) -> Result<String> {
        let path = self.abs(path)?;
        let (resolved, found) = self.resolve(&self.view()?, &path, false, "readlink").await?;
        self.link_target(&resolved, &found).await
    }

    /// The canonical path of `path`: every symbolic link resolved.
    ///
    /// # Errors
    /// `NotFound` when it does not exist.
    pub async fn realpath(&self, path: &str) -> Result<VPath> {
        let path = self.abs(path)?;
        let (resolved, found) = self.resolve(&self.view()?, &path, true, "realpath").await?;
        if found.exists() { Ok(resolved) } else { Err(err(ErrorKind::NotFound, "realpath", &path)) }
    }

    pub(crate) fn new_node(&self, origin: Origin, attr: Attr, kind: NodeKind) -> Arc<Node> {
        Arc::new(Node { stamp: self.hub.next_stamp(), origin, attr, kind })
    }

    /// Fails with `EROFS` unless `path` lies under a writable mount.
    pub(crate) fn check_writable(&self, op: &'static str, path: &VPath) -> Result<()> {
        match self.hub.mounts().covering(path) {
            Some(mount) if !mount.is_read_only() => Ok(()),
            Some(mount) => Err(err(ErrorKind::ReadOnly, op, path)
                .with_mount(mount.point().clone())
                .with_detail("mounted read-only")),
            None => Err(err(ErrorKind::ReadOnly, op, path).with_detail("no writable mount covers this path")),
        }
    }

    /// An overlay copy of an entry the session has not changed yet, or the node itself.
    pub(crate) async fn copy_up(&self, path: &VPath, found: &Found, op: &'static str) -> Result<Node> {
        let kind = match found {
            Found::Node(node) => return Ok(Node::clone(node)),
            Found::Resource(mount, inner, meta) => match meta.file_type {
                // Small files are copied whole: a later change on the resource cannot leak
                // into the session's copy, and any partial write would copy them anyway.
                FileType::File if meta.size <= CHUNK => {
                    let content =
                        mount.resource().read(inner, 0, meta.size).await.map_err(|e| e.in_mount(mount.point()))?;
                    let content = budget::hold(content, Buffer::Shared, op).map_err(|e| e.with_path(path.clone()))?;
                    NodeKind::File(FileData::from_bytes(content))
                }
                FileType::File => NodeKind::File(FileData::from_base(BaseRef {
                    mount: mount.point().clone(),
                    inner: inner.clone(),
                    version: meta.version.clone(),
                    len: meta.size,
                })),
                FileType::Dir => NodeKind::Dir { opaque: false },
                FileType::Symlink => NodeKind::Symlink(self.link_target(path, found).await?),
            },
            Found::Synthetic => return Err(err(ErrorKind::ReadOnly, "write", path)),
            Found::Absent => return Err(err(ErrorKind::NotFound, "write", path)),
        };
        let attr = self.metadata(found).map(|m| Attr { mode: m.mode, mtime: m.mtime, atime: m.atime });
        Ok(Node { stamp: 0, origin: found.origin(), attr: attr.unwrap_or_else(|| now_attr(0o644)), kind })
    }
}
