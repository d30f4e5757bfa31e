//! Watching a session: whoever caches what a session shows (a FUSE server's kernel caches, a
//! binding) hears which paths changed as each change applies.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::error::Result;
use crate::path::VPath;
use crate::session::{Hub, Session};
use crate::state::{Record, SessionId, SessionState, State};

/// What a watcher of a session hears.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice<'a> {
    /// These paths may now show something else (content, metadata, kind or existence). A
    /// directory's listing changes with its entries; it is not named separately.
    Changed(&'a [VPath]),
    /// The session was aborted (directly, with an ancestor, or by a winner-takes-all sibling).
    Ended,
}

type Callback = Arc<dyn Fn(Notice<'_>) + Send + Sync>;

/// Every watcher of every session of one hub.
#[derive(Default)]
pub(crate) struct Watchers {
    /// Whether any watcher exists: changes pay nothing for watching when none does.
    any: AtomicBool,
    next: AtomicU64,
    list: Mutex<Vec<(u64, SessionId, Callback)>>,
}

impl fmt::Debug for Watchers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watchers").field("any", &self.any).finish_non_exhaustive()
    }
}

/// What `records` will change, per session, computed before they apply (a commit's paths are
/// the child's record of what it touched, which the commit clears).
#[derive(Debug)]
pub(crate) struct Pending(PerSession);

impl Watchers {
    /// Whether anyone watches (a cheap check before taking any lock).
    pub(crate) fn any(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    fn list(&self) -> std::sync::MutexGuard<'_, Vec<(u64, SessionId, Callback)>> {
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What watchers will hear once `records` apply to `state`; `None` when nobody watches.
    pub(crate) fn pending(&self, state: &State, records: &[Record]) -> Option<Pending> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let mut out = BTreeMap::new();
        for record in records {
            match record {
                Record::Set { session, path, .. } | Record::Patch { session, path, .. } => {
                    add_paths(&mut out, *session, [path.clone()]);
                }
                Record::Commit { child, winner_takes_all } => {
                    let Ok(child_state) = state.session(*child) else { continue };
                    let Some(parent) = child_state.parent else { continue };
                    add_paths(&mut out, parent, child_state.touched.keys().cloned());
                    if *winner_takes_all {
                        for sibling in state.children(parent).into_iter().filter(|s| s != child) {
                            end(&mut out, state, sibling);
                        }
                    }
                }
                Record::Abort { session } => end(&mut out, state, *session),
                // Opening, flushing to the resources and the environment change nothing a
                // session shows.
                Record::Open { .. }
                | Record::Flushed { .. }
                | Record::Origin { .. }
                | Record::Env { .. }
                | Record::Seed { .. }
                | Record::Restore { .. } => {}
            }
        }
        Some(Pending(out))
    }

    /// What watchers hear when `state` was rebuilt from another process's journal (see
    /// [`State::rebuild`]): a session gone has ended, and in one that lives on every path
    /// whose node is not the very same may show something else (after a rebuild, that is
    /// every path either side holds). `None` when nobody watches.
    pub(crate) fn pending_rebuild(&self, before: &BTreeMap<SessionId, SessionState>, state: &State) -> Option<Pending> {
        if !self.any() {
            return None;
        }
        let mut out = BTreeMap::new();
        for (id, old) in before {
            match state.sessions.get(id) {
                Some(now) => {
                    add_paths(&mut out, *id, now.view.changes_from(&old.view).into_iter().map(|(path, _)| path))
                }
                None => {
                    out.insert(*id, None);
                }
            }
        }
        Some(Pending(out))
    }

    /// Tells the watchers what `pending` describes (after the records applied).
    pub(crate) fn deliver(&self, pending: Pending) {
        // Called without the list locked: a callback may wait on a thread that is itself
        // delivering.
        let list: Vec<(SessionId, Callback)> = self.list().iter().map(|(_, s, c)| (*s, c.clone())).collect();
        for (session, paths) in &pending.0 {
            let notice = match paths {
                Some(paths) if paths.is_empty() => continue,
                Some(paths) => Notice::Changed(paths),
                None => Notice::Ended,
            };
            for (_, callback) in list.iter().filter(|(s, _)| s == session) {
                callback(notice);
            }
        }
    }

    fn add(&self, session: SessionId, callback: Callback) -> u64 {
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        let mut list = self.list();
        list.push((token, session, callback));
        self.any.store(true, Ordering::Release);
        token
    }

    fn remove(&self, token: u64) {
        let mut list = self.list();
        list.retain(|(t, _, _)| *t != token);
        self.any.store(!list.is_empty(), Ordering::Release);
    }
}

type PerSession = BTreeMap<SessionId, Option<Vec<VPath>>>;

fn add_paths(out: &mut PerSession, session: SessionId, paths: impl IntoIterator<Item = VPath>) {
    if let Some(list) = out.entry(session).or_insert_with(|| Some(Vec::new())) {
        list.extend(paths);
    }
}

/// Marks `root` and its descendants as ended.
fn end(out: &mut PerSession, state: &State, root: SessionId) {
    for id in state.subtree(root) {
        out.insert(id, None);
    }
}

/// A registered watcher; dropping it stops the calls.
#[must_use = "the watch stops when this is dropped"]
pub struct Watch {
    hub: Weak<Hub>,
    token: u64,
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch").field("token", &self.token).finish()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.watchers.remove(self.token);
        }
    }
}

impl Session {
    /// Calls `callback` after every change to what this session shows, with the paths
    /// concerned, until the returned [`Watch`] is dropped.
    ///
    /// The callback runs on the thread that made the change, after the operation released its
    /// locks and before it returns, so whoever changed the session knows the watchers heard
    /// it. It must not call into this session's mutations (they would run inside one).
    ///
    /// # Errors
    /// `NotFound` once the session has been aborted.
    pub fn watch(&self, callback: impl Fn(Notice<'_>) + Send + Sync + 'static) -> Result<Watch> {
        self.hub.lock().state.session(self.id)?;
        let token = self.hub.watchers.add(self.id, Arc::new(callback));
        Ok(Watch { hub: Arc::downgrade(&self.hub), token })
    }
}
