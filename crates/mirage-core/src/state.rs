//! The state of every session, changed only by applying [`Record`]s.
//!
//! The live system and a store being reopened run the same [`State::apply`], so what is
//! replayed from the journal is exactly what happened. Records are self-contained: the
//! content a write adds travels inside its record.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::budget::Held;
use crate::error::{Error, ErrorKind, Result};
use crate::overlay::{Attr, Node, NodeKind, Origin, View};
use crate::path::VPath;

/// Identifies a session within one [`crate::Mirage`] (and its store).
pub(crate) type SessionId = u64;

/// What a session changed relative to where it started: path to the node it replaced
/// (`None` when the path fell through to the resources). Unordered: whoever needs an order
/// sorts.
///
/// A plain hash map behind an `Arc` rather than a persistent one, because a fork starts with
/// an empty record and only a commit needs a snapshot: it clones the `Arc`, and the next
/// change copies the map only if that snapshot is still alive. Recording a path then costs
/// a fraction of a persistent map's insert. The map is made at the first change, so that a
/// fork allocates nothing for it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Touched(Option<Arc<TouchedMap>>);

type TouchedMap = std::collections::HashMap<VPath, Option<Arc<Node>>, foldhash::fast::RandomState>;

/// What an empty record reads as.
static NOTHING_TOUCHED: std::sync::LazyLock<TouchedMap> = std::sync::LazyLock::new(TouchedMap::default);

impl std::ops::Deref for Touched {
    type Target = TouchedMap;

    fn deref(&self) -> &TouchedMap {
        self.0.as_deref().unwrap_or(&NOTHING_TOUCHED)
    }
}

impl Touched {
    /// The map, to change (made, or copied first if a snapshot shares it).
    fn make_mut(&mut self) -> &mut TouchedMap {
        Arc::make_mut(self.0.get_or_insert_default())
    }
}

impl FromIterator<(VPath, Option<Arc<Node>>)> for Touched {
    fn from_iter<I: IntoIterator<Item = (VPath, Option<Arc<Node>>)>>(entries: I) -> Self {
        Touched(Some(Arc::new(entries.into_iter().collect())))
    }
}

/// One session's state.
#[derive(Clone, Debug)]
pub(crate) struct SessionState {
    pub(crate) parent: Option<SessionId>,
    pub(crate) name: String,
    pub(crate) view: View,
    pub(crate) touched: Touched,
    pub(crate) cwd: VPath,
    pub(crate) env: BTreeMap<String, String>,
    /// Moves on every change to what the session shows (see [`crate::Session::changes`]).
    pub(crate) changes: Arc<AtomicU32>,
}

/// Chunks read back from a store, counted against the content limit (see
/// [`crate::budget`]) as the ones written live are.
fn held_chunks<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<(u64, Bytes)>, D::Error> {
    let chunks = Vec::<(u64, Bytes)>::deserialize(deserializer)?;
    Ok(chunks.into_iter().map(|(idx, bytes)| (idx, crate::budget::hold_anyway(bytes))).collect())
}

/// A change to the state of the sessions; also the unit of the store's journal.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Record {
    /// A new root session (`parent: None`) or a fork of `parent`.
    Open { id: SessionId, parent: Option<SessionId>, name: String },
    /// Replaces the overlay entry at `path`.
    Set { session: SessionId, path: VPath, node: Arc<Node> },
    /// Changes the content of the overlay file at `path`: truncate (or extend) to `size`,
    /// then replace the listed chunks.
    Patch {
        session: SessionId,
        path: VPath,
        stamp: u64,
        attr: Attr,
        size: u64,
        #[serde(deserialize_with = "held_chunks")]
        chunks: Vec<(u64, Bytes)>,
    },
    /// Moves a child's changes into its parent (checked for conflicts beforehand).
    Commit { child: SessionId, winner_takes_all: bool },
    /// What the resources hold at `path` changed under the session's own commit (an entry
    /// removed before its replacement is written): the node's origin becomes `origin`.
    Origin { session: SessionId, path: VPath, stamp: u64, origin: Origin },
    /// A root session's entries were written to the resources: they read through again.
    Flushed { session: SessionId, entries: Vec<(VPath, u64, Origin)> },
    /// Discards a session and its descendants.
    Abort { session: SessionId },
    /// Sets the working directory and environment.
    Env { session: SessionId, cwd: VPath, env: BTreeMap<String, String> },
    /// Starts a compacted journal: the counters carry on, so that no session id or stamp is
    /// handed out twice.
    Seed { next_session: SessionId, next_stamp: u64 },
    /// A whole session, as a compacted journal keeps it: its overlay as changes from its
    /// parent's (restored before it), and its record of what it touched.
    Restore {
        id: SessionId,
        parent: Option<SessionId>,
        name: String,
        cwd: VPath,
        env: BTreeMap<String, String>,
        changed: Vec<(VPath, Option<Arc<Node>>)>,
        touched: Vec<(VPath, Option<Arc<Node>>)>,
    },
}

/// Every session.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) sessions: BTreeMap<SessionId, SessionState>,
    pub(crate) next_session: SessionId,
    pub(crate) next_stamp: u64,
    /// The room the sessions' entries take under the content limit (see [`crate::budget`]).
    entries: Held,
}

impl Record {
    /// True for a record after which records journaled before it may be dead: a session
    /// dropped (aborted, or a sibling of a winner that takes all), a fork committed into its
    /// parent, a root's changes written to the resources.
    pub(crate) fn leaves_dead_records(&self) -> bool {
        matches!(self, Record::Abort { .. } | Record::Commit { .. } | Record::Flushed { .. })
    }
}

impl SessionState {
    /// Tells whoever caches what the session shows that it changed.
    fn changed(&self) {
        self.changes.fetch_add(1, Ordering::Release);
    }

    /// Records the node at `path` as the session's starting point, the first time only.
    fn touch(&mut self, path: &VPath) {
        if !self.touched.contains_key(path) {
            let old = self.view.get(path).cloned();
            self.touched.make_mut().insert(path.clone(), old);
        }
    }

    /// Puts `node` at `path`, recording what it replaced as the starting point the first
    /// time (one lookup in each map).
    fn replace(&mut self, path: &VPath, node: Arc<Node>) {
        let old = self.view.insert(path.clone(), node);
        self.touched.make_mut().entry(path.clone()).or_insert(old);
    }
}

fn gone(session: SessionId) -> Error {
    Error::new(ErrorKind::NotFound, "session").with_detail(format!("session #{session} was aborted or never existed"))
}

impl State {
    /// The session `id`.
    ///
    /// # Errors
    /// `NotFound` once it has been aborted.
    pub(crate) fn session(&self, id: SessionId) -> Result<&SessionState> {
        self.sessions.get(&id).ok_or_else(|| gone(id))
    }

    fn session_mut(&mut self, id: SessionId) -> Result<&mut SessionState> {
        self.sessions.get_mut(&id).ok_or_else(|| gone(id))
    }

    /// Children of `id`.
    pub(crate) fn children(&self, id: SessionId) -> Vec<SessionId> {
        self.sessions.iter().filter(|(_, s)| s.parent == Some(id)).map(|(c, _)| *c).collect()
    }

    /// `id` and all its descendants.
    pub(crate) fn subtree(&self, id: SessionId) -> Vec<SessionId> {
        let mut out = vec![id];
        let mut i = 0;
        while i < out.len() {
            out.extend(self.children(out[i]));
            i += 1;
        }
        out
    }

    /// Records that rebuild this state from nothing: the counters, then every session after
    /// its parent (ids grow with creation, so id order is enough).
    pub(crate) fn snapshot(&self) -> impl Iterator<Item = Record> + '_ {
        let seed = Record::Seed { next_session: self.next_session, next_stamp: self.next_stamp };
        std::iter::once(seed).chain(self.sessions.iter().map(|(id, s)| {
            let base = s.parent.and_then(|p| self.sessions.get(&p)).map(|p| &p.view);
            let changed = match base {
                Some(base) => s.view.changes_from(base),
                None => s.view.changes_from(&View::new()),
            };
            Record::Restore {
                id: *id,
                parent: s.parent,
                name: s.name.clone(),
                cwd: s.cwd.clone(),
                env: s.env.clone(),
                changed,
                touched: s.touched.iter().map(|(p, n)| (p.clone(), n.clone())).collect(),
            }
        }))
    }

    /// Rebuilds every session from `records`, another process's journal read from its start
    /// (compacted, or started over), and returns the sessions as they were. Each session that
    /// lives on keeps its change counter, moved on, so that caches watching it stay valid;
    /// the counters of sessions gone move on too.
    pub(crate) fn rebuild(&mut self, records: &[Record]) -> BTreeMap<SessionId, SessionState> {
        let before = std::mem::take(&mut self.sessions);
        for record in records {
            // Records were checked by the process that wrote them, in the same order.
            let _ = self.apply(record);
        }
        for (id, old) in &before {
            old.changed();
            if let Some(now) = self.sessions.get_mut(id) {
                now.changes = old.changes.clone();
            }
        }
        before
    }

    /// Discards `id` and its descendants, telling their caches.
    fn remove_subtree(&mut self, id: SessionId) {
        for id in self.subtree(id) {
            if let Some(s) = self.sessions.remove(&id) {
                s.changed();
            }
        }
    }

    /// Fails with `NotFound` when `record` names a session that does not exist (so that it
    /// is never journaled).
    pub(crate) fn check(&self, record: &Record) -> Result<()> {
        match record {
            Record::Open { parent: Some(session), .. }
            | Record::Set { session, .. }
            | Record::Patch { session, .. }
            | Record::Commit { child: session, .. }
            | Record::Flushed { session, .. }
            | Record::Origin { session, .. }
            | Record::Abort { session }
            | Record::Env { session, .. } => self.session(*session).map(drop),
            Record::Open { parent: None, .. } | Record::Seed { .. } | Record::Restore { parent: None, .. } => Ok(()),
            Record::Restore { parent: Some(parent), .. } => self.session(*parent).map(drop),
        }
    }

    /// Applies one record, then counts the entries of every session against the content
    /// limit, when there is one (a few sessions: one addition each).
    ///
    /// # Errors
    /// `NotFound` for a session that does not exist; `InvalidInput` for a patch of a path
    /// that holds no file (neither happens for records this module produced).
    pub(crate) fn apply(&mut self, record: &Record) -> Result<()> {
        let applied = self.apply_record(record);
        if crate::budget::content_limit().is_some() || !self.entries.is_empty() {
            let weight = self.sessions.values().map(|s| s.view.weight()).sum();
            self.entries.resize_anyway(weight);
        }
        applied
    }

    fn apply_record(&mut self, record: &Record) -> Result<()> {
        match record {
            Record::Open { id, parent, name } => {
                let fresh = || SessionState {
                    parent: None,
                    name: name.clone(),
                    view: View::new(),
                    touched: Touched::default(),
                    cwd: VPath::root(),
                    env: BTreeMap::new(),
                    changes: Arc::default(),
                };
                let state = match parent {
                    None => fresh(),
                    Some(p) => {
                        let p_state = self.session(*p)?;
                        SessionState {
                            parent: Some(*p),
                            name: name.clone(),
                            view: p_state.view.clone(),
                            touched: Touched::default(),
                            cwd: p_state.cwd.clone(),
                            env: p_state.env.clone(),
                            changes: Arc::default(),
                        }
                    }
                };
                self.sessions.insert(*id, state);
                self.next_session = self.next_session.max(id + 1);
            }
            Record::Set { session, path, node } => {
                self.next_stamp = self.next_stamp.max(node.stamp + 1);
                let s = self.session_mut(*session)?;
                s.replace(path, node.clone());
                s.changed();
            }
            Record::Patch { session, path, stamp, attr, size, chunks } => {
                self.next_stamp = self.next_stamp.max(stamp + 1);
                let s = self.session_mut(*session)?;
                let mut node = s.view.get(path).map(|n| Node::clone(n)).ok_or_else(|| {
                    Error::new(ErrorKind::InvalidInput, "replay")
                        .with_path(path.clone())
                        .with_detail("patch of no file")
                })?;
                let NodeKind::File(file) = &mut node.kind else {
                    return Err(Error::new(ErrorKind::InvalidInput, "replay").with_path(path.clone()));
                };
                file.truncate(*size);
                for (idx, data) in chunks {
                    file.chunks.insert(*idx, data.clone());
                }
                node.stamp = *stamp;
                node.attr = *attr;
                s.replace(path, Arc::new(node));
                s.changed();
            }
            Record::Commit { child, winner_takes_all } => self.apply_commit(*child, *winner_takes_all)?,
            Record::Flushed { session, entries } => {
                let s = self.session_mut(*session)?;
                for (path, stamp, origin) in entries {
                    if let Some(node) = s.view.get(path).filter(|n| n.stamp == *stamp).cloned() {
                        let clean = Node { origin: origin.clone(), kind: NodeKind::Clean, ..Node::clone(&node) };
                        s.view.insert(path.clone(), Arc::new(clean));
                        s.touched.make_mut().remove(path);
                    }
                }
                s.changed();
            }
            Record::Origin { session, path, stamp, origin } => {
                let s = self.session_mut(*session)?;
                if let Some(node) = s.view.get(path).filter(|n| n.stamp == *stamp).cloned() {
                    s.view.insert(path.clone(), Arc::new(Node { origin: origin.clone(), ..Node::clone(&node) }));
                }
                s.changed();
            }
            Record::Abort { session } => self.remove_subtree(*session),
            Record::Env { session, cwd, env } => {
                let s = self.session_mut(*session)?;
                s.cwd = cwd.clone();
                s.env = env.clone();
                s.changed();
            }
            Record::Seed { next_session, next_stamp } => {
                self.next_session = self.next_session.max(*next_session);
                self.next_stamp = self.next_stamp.max(*next_stamp);
            }
            Record::Restore { id, parent, name, cwd, env, changed, touched } => {
                let mut view = match parent {
                    Some(p) => self.session(*p)?.view.clone(),
                    None => View::new(),
                };
                for (path, node) in changed {
                    match node {
                        Some(node) => view.insert(path.clone(), node.clone()),
                        None => view.remove(path),
                    };
                }
                let state = SessionState {
                    parent: *parent,
                    name: name.clone(),
                    view,
                    touched: touched.iter().cloned().collect(),
                    cwd: cwd.clone(),
                    env: env.clone(),
                    changes: Arc::default(),
                };
                self.sessions.insert(*id, state);
                self.next_session = self.next_session.max(id + 1);
            }
        }
        Ok(())
    }

    /// The stamp a child started from at `path`.
    fn base_stamp(child: &SessionState, path: &VPath) -> Option<u64> {
        match child.touched.get(path) {
            Some(base) => base.as_ref().map(|n| n.stamp),
            None => child.view.get(path).map(|n| n.stamp),
        }
    }

    /// True when the parent still holds at `path` what the child started from (possibly
    /// written to the resources since: a clean node keeps the stamp of the change).
    fn unchanged(&self, parent: &SessionState, child: &SessionState, path: &VPath) -> bool {
        parent.view.get(path).map(|n| n.stamp) == Self::base_stamp(child, path)
    }

    /// Paths where committing `child` into its parent would overwrite a change the parent
    /// received after the fork: the same path, an ancestor of an entry the child created, or
    /// an entry below one the child deleted or replaced (a fresh directory replaces too).
    pub(crate) fn commit_conflicts(&self, child_id: SessionId) -> Result<Vec<VPath>> {
        let child = self.session(child_id)?;
        let Some(parent_id) = child.parent else { return Ok(Vec::new()) };
        let parent = self.session(parent_id)?;
        let mut conflicts = Vec::new();
        for (path, _) in child.touched.iter() {
            let node = child.view.get(path);
            let present = node.is_some_and(|n| n.file_type().is_some());
            // A fresh (opaque) directory replaces whatever was below it, as a deletion does.
            let keeps_below = node.is_some_and(|n| matches!(n.kind, NodeKind::Dir { opaque: false }));
            let mut bad = !self.unchanged(parent, child, path);
            if present {
                bad |= path.ancestors().any(|a| !self.unchanged(parent, child, &a));
            }
            if !keeps_below {
                conflicts.extend(
                    parent
                        .view
                        .descendants(path)
                        .filter(|(d, _)| !self.unchanged(parent, child, d))
                        .map(|(d, _)| d.clone()),
                );
            }
            if bad {
                conflicts.push(path.clone());
            }
        }
        conflicts.sort();
        conflicts.dedup();
        Ok(conflicts)
    }

    fn apply_commit(&mut self, child_id: SessionId, winner_takes_all: bool) -> Result<()> {
        let child = self.session(child_id)?.clone();
        let parent_id = child.parent.ok_or_else(|| Error::new(ErrorKind::InvalidInput, "commit"))?;
        let parent = self.session(parent_id)?;
        let mut nodes = Vec::new();
        for (path, base) in child.touched.iter() {
            let now = parent.view.get(path);
            let node = child.view.get(path).cloned().map(|node| match (base, now) {
                // The parent wrote the child's starting point to the resources: the new
                // node's condition is what the resource holds now.
                (Some(base), Some(now)) if !base.is_clean() && now.is_clean() && node.origin != now.origin => {
                    Arc::new(Node { origin: now.origin.clone(), ..Node::clone(&node) })
                }
                _ => node,
            });
            nodes.push((path.clone(), node));
        }
        let parent = self.session_mut(parent_id)?;
        for (path, node) in &nodes {
            parent.touch(path);
            match node {
                Some(node) => parent.view.insert(path.clone(), node.clone()),
                None => parent.view.remove(path),
            };
        }
        let child = self.session_mut(child_id)?;
        for (path, node) in nodes {
            if let Some(node) = node {
                child.view.insert(path, node);
            }
        }
        child.touched = Touched::default();
        child.changed();
        self.session(parent_id)?.changed();
        if winner_takes_all {
            for sibling in self.children(parent_id) {
                if sibling != child_id {
                    self.remove_subtree(sibling);
                }
            }
        }
        Ok(())
    }
}
