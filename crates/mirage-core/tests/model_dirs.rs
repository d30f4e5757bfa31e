//! Model-based test with directories: files inside a directory that sessions create, remove,
//! replace with a file and recreate, across forks, commits (into parents and into the
//! resource), aborts and restarts of the store. Every read, listing, error and conflict is
//! compared with a reference model.

use std::collections::BTreeMap;
use std::sync::Arc;

use mirage_core::{CommitOptions, ErrorKind, FileType, MemoryResource, Mirage, MountOptions, Resource, Session, VPath};
use proptest::prelude::*;

/// The paths in play: `d` and `e` are directories (or whatever sessions make of them).
const PATHS: [&str; 7] = ["a", "d", "d/x", "d/y", "e", "e/x", "e/y"];
const DIRS: [&str; 2] = ["d", "e"];

#[derive(Clone, Debug)]
enum Op {
    Write { session: usize, path: usize, byte: u8 },
    Remove { session: usize, path: usize },
    Mkdir { session: usize, dir: usize },
    Rmdir { session: usize, dir: usize },
    Rename { session: usize, from: usize, to: usize },
    RenameDir { session: usize, from: usize },
    Read { session: usize, path: usize },
    List { session: usize, which: usize },
    Fork { session: usize },
    Commit { session: usize, winner_takes_all: bool },
    Abort { session: usize },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let s = 0..5usize;
    let p = 0..PATHS.len();
    prop_oneof![
        5 => (s.clone(), p.clone(), any::<u8>()).prop_map(|(session, path, byte)| Op::Write { session, path, byte }),
        2 => (s.clone(), p.clone()).prop_map(|(session, path)| Op::Remove { session, path }),
        3 => (s.clone(), 0..2usize).prop_map(|(session, dir)| Op::Mkdir { session, dir }),
        2 => (s.clone(), 0..2usize).prop_map(|(session, dir)| Op::Rmdir { session, dir }),
        2 => (s.clone(), 0..2usize).prop_map(|(session, from)| Op::RenameDir { session, from }),
        2 => (s.clone(), p.clone(), p.clone()).prop_map(|(session, from, to)| Op::Rename { session, from, to }),
        3 => (s.clone(), p.clone()).prop_map(|(session, path)| Op::Read { session, path }),
        2 => (s.clone(), 0..3usize).prop_map(|(session, which)| Op::List { session, which }),
        2 => s.clone().prop_map(|session| Op::Fork { session }),
        3 => (s.clone(), any::<bool>()).prop_map(|(session, winner_takes_all)| Op::Commit { session, winner_takes_all }),
        1 => s.prop_map(|session| Op::Abort { session }),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    File(u8),
    Dir,
    Gone,
    /// Written to the resource: reads through to it.
    Clean,
}

#[derive(Clone, Debug)]
struct MNode {
    ver: u64,
    kind: Kind,
}

#[derive(Clone, Debug, Default)]
struct MSession {
    parent: Option<usize>,
    overlay: BTreeMap<&'static str, MNode>,
    touched: BTreeMap<&'static str, Option<u64>>,
}

#[derive(Debug, Default)]
struct Model {
    resource: BTreeMap<&'static str, Kind>,
    sessions: Vec<Option<MSession>>,
    next: u64,
}

fn parent_of(path: &str) -> Option<&'static str> {
    DIRS.into_iter().find(|d| path.strip_prefix(d).is_some_and(|rest| rest.starts_with('/')))
}

fn children(dir: &str) -> impl Iterator<Item = &'static str> + '_ {
    PATHS.into_iter().filter(move |p| parent_of(p) == Some(dir))
}

impl Model {
    fn s(&self, s: usize) -> &MSession {
        self.sessions[s].as_ref().expect("live session")
    }

    /// What a session sees at `path`: `None` when absent.
    fn get(&self, s: usize, path: &'static str) -> Option<Kind> {
        let sess = self.s(s);
        if let Some(parent) = parent_of(path) {
            match self.get(s, parent) {
                Some(Kind::Dir) => {}
                _ => return None,
            }
            if sess.overlay.get(parent).is_some_and(|n| n.kind == Kind::Dir) && !sess.overlay.contains_key(path) {
                // A directory the session made hides whatever the resource has below it.
                return None;
            }
        }
        match sess.overlay.get(path) {
            Some(node) if node.kind == Kind::Gone => None,
            Some(node) if node.kind != Kind::Clean => Some(node.kind.clone()),
            _ => self.resource.get(path).cloned(),
        }
    }

    fn set(&mut self, s: usize, path: &'static str, kind: Kind) {
        self.next += 1;
        let ver = self.next;
        let sess = self.sessions[s].as_mut().expect("live session");
        let base = sess.overlay.get(path).map(|n| n.ver);
        sess.touched.entry(path).or_insert(base);
        sess.overlay.insert(path, MNode { ver, kind });
    }

    fn subtree(&self, s: usize) -> Vec<usize> {
        let mut out = vec![s];
        let mut i = 0;
        while i < out.len() {
            let cur = out[i];
            out.extend(
                (0..self.sessions.len()).filter(|c| self.sessions[*c].as_ref().is_some_and(|x| x.parent == Some(cur))),
            );
            i += 1;
        }
        out
    }

    fn base(child: &MSession, path: &str) -> Option<u64> {
        match child.touched.get(path) {
            Some(base) => *base,
            None => child.overlay.get(path).map(|n| n.ver),
        }
    }

    fn unchanged(&self, parent: &MSession, child: &MSession, path: &str) -> bool {
        parent.overlay.get(path).map(|n| n.ver) == Self::base(child, path)
    }

    /// Commits `s`; returns the conflicting paths (empty on success).
    fn commit(&mut self, s: usize, winner_takes_all: bool) -> Vec<&'static str> {
        let child = self.s(s).clone();
        let Some(p) = child.parent else {
            let sess = self.sessions[s].as_mut().expect("live");
            for path in child.touched.keys() {
                let node = &child.overlay[path];
                match node.kind {
                    Kind::Gone => self.resource.remove(path),
                    Kind::Clean => None,
                    ref kind => self.resource.insert(path, kind.clone()),
                };
                sess.overlay.insert(path, MNode { ver: node.ver, kind: Kind::Clean });
            }
            sess.touched.clear();
            return Vec::new();
        };
        let parent = self.s(p).clone();
        let mut conflicts = Vec::new();
        for path in child.touched.keys() {
            let node = &child.overlay[path];
            let mut bad = !self.unchanged(&parent, &child, path);
            if node.kind != Kind::Gone {
                bad |= parent_of(path).is_some_and(|a| !self.unchanged(&parent, &child, a));
            }
            // Every directory the model makes is fresh (opaque), so any change at a directory
            // path replaces what was below it.
            if DIRS.contains(path) {
                for below in children(path) {
                    if parent.overlay.contains_key(below) && !self.unchanged(&parent, &child, below) {
                        conflicts.push(below);
                    }
                }
            }
            if bad {
                conflicts.push(*path);
            }
        }
        conflicts.sort();
        conflicts.dedup();
        if !conflicts.is_empty() {
            return conflicts;
        }
        for path in child.touched.keys() {
            let node = child.overlay[path].clone();
            let par = self.sessions[p].as_mut().expect("live");
            let prev = par.overlay.get(path).map(|n| n.ver);
            par.touched.entry(path).or_insert(prev);
            par.overlay.insert(path, node);
        }
        self.sessions[s].as_mut().expect("live").touched.clear();
        if winner_takes_all {
            for sib in 0..self.sessions.len() {
                if sib != s && self.sessions[sib].as_ref().is_some_and(|x| x.parent == Some(p)) {
                    for id in self.subtree(sib) {
                        self.sessions[id] = None;
                    }
                }
            }
        }
        Vec::new()
    }
}

struct Real {
    resource: Arc<MemoryResource>,
    store: tempfile::TempDir,
    mirage: Option<Mirage>,
    names: Vec<String>,
}

impl Real {
    fn open(&mut self) {
        self.mirage = None;
        let m = Mirage::open(self.store.path()).unwrap();
        m.mount("/data", self.resource.clone(), MountOptions::default()).unwrap();
        self.mirage = Some(m);
    }

    fn session(&self, s: usize) -> Session {
        self.mirage.as_ref().unwrap().session(&self.names[s]).unwrap()
    }
}

fn full(path: &str) -> String {
    format!("/data/{path}")
}

async fn run(ops: Vec<Op>) {
    let mut model = Model { sessions: vec![Some(MSession::default())], ..Model::default() };
    let mut real = Real {
        resource: Arc::new(MemoryResource::new()),
        store: tempfile::tempdir().unwrap(),
        mirage: None,
        names: vec!["main".into()],
    };
    real.open();
    real.mirage.as_ref().unwrap().create_session("main").unwrap();
    for op in ops {
        let live = |s: usize| s < model.sessions.len() && model.sessions[s].is_some();
        match op {
            Op::Write { session, path, byte } if live(session) => {
                let p = PATHS[path];
                let got = real.session(session).write_file(&full(p), vec![byte]).await.err().map(|e| e.kind());
                let want = match (parent_of(p).map(|d| model.get(session, d)), model.get(session, p)) {
                    (Some(None), _) => Some(ErrorKind::NotFound),
                    (Some(Some(Kind::File(_))), _) => Some(ErrorKind::NotADirectory),
                    (_, Some(Kind::Dir)) => Some(ErrorKind::IsADirectory),
                    _ => None,
                };
                assert_eq!(got, want, "write {p} in session {session}");
                if want.is_none() {
                    model.set(session, p, Kind::File(byte));
                }
            }
            Op::Remove { session, path } if live(session) => {
                let p = PATHS[path];
                let got = real.session(session).remove(&full(p)).await.err().map(|e| e.kind());
                let want = match model.get(session, p) {
                    None => {
                        Some(if parent_of(p).is_some_and(|d| matches!(model.get(session, d), Some(Kind::File(_)))) {
                            ErrorKind::NotADirectory
                        } else {
                            ErrorKind::NotFound
                        })
                    }
                    Some(Kind::Dir) => Some(ErrorKind::IsADirectory),
                    _ => None,
                };
                assert_eq!(got, want, "remove {p} in session {session}");
                if want.is_none() {
                    model.set(session, p, Kind::Gone);
                }
            }
            Op::Mkdir { session, dir } if live(session) => {
                let d = DIRS[dir];
                let got = real.session(session).mkdir(&full(d), 0o755).await.err().map(|e| e.kind());
                let want = model.get(session, d).map(|_| ErrorKind::AlreadyExists);
                assert_eq!(got, want, "mkdir {d} in session {session}");
                if want.is_none() {
                    model.set(session, d, Kind::Dir);
                }
            }
            Op::Rmdir { session, dir } if live(session) => {
                let d = DIRS[dir];
                let got = real.session(session).rmdir(&full(d)).await.err().map(|e| e.kind());
                let want = match model.get(session, d) {
                    None => Some(ErrorKind::NotFound),
                    Some(Kind::File(_)) => Some(ErrorKind::NotADirectory),
                    _ if children(d).any(|c| model.get(session, c).is_some()) => Some(ErrorKind::DirectoryNotEmpty),
                    _ => None,
                };
                assert_eq!(got, want, "rmdir {d} in session {session}");
                if want.is_none() {
                    model.set(session, d, Kind::Gone);
                }
            }
            Op::RenameDir { session, from } if live(session) => {
                let (f, t) = (DIRS[from], DIRS[1 - from]);
                let want = match (model.get(session, f), model.get(session, t)) {
                    (None, _) => Some(ErrorKind::NotFound),
                    (Some(Kind::File(_)), _) => continue,
                    (_, Some(Kind::File(_))) => Some(ErrorKind::NotADirectory),
                    (_, Some(_)) if children(t).any(|c| model.get(session, c).is_some()) => {
                        Some(ErrorKind::DirectoryNotEmpty)
                    }
                    _ => None,
                };
                let got = real.session(session).rename(&full(f), &full(t)).await.err().map(|e| e.kind());
                assert_eq!(got, want, "rename {f} -> {t} in session {session}");
                if want.is_none() {
                    let moved: Vec<(&'static str, Kind)> =
                        children(f).filter_map(|c| Some((c, model.get(session, c)?))).collect();
                    model.set(session, t, Kind::Dir);
                    for (c, kind) in moved {
                        let name = &c[f.len()..];
                        let dest = PATHS.into_iter().find(|p| p.strip_prefix(t) == Some(name)).expect("same names");
                        model.set(session, dest, kind);
                        model.set(session, c, Kind::Gone);
                    }
                    model.set(session, f, Kind::Gone);
                }
            }
            Op::Rename { session, from, to } if live(session) && from != to => {
                // Files only: moving the directory itself is covered elsewhere.
                let (f, t) = (PATHS[from], PATHS[to]);
                if model.get(session, f) == Some(Kind::Dir) || model.get(session, t) == Some(Kind::Dir) {
                    continue;
                }
                let got = real.session(session).rename(&full(f), &full(t)).await.err().map(|e| e.kind());
                let parent_ok = |p: &'static str| match parent_of(p).map(|d| model.get(session, d)) {
                    None | Some(Some(Kind::Dir)) => None,
                    Some(Some(Kind::File(_))) => Some(ErrorKind::NotADirectory),
                    Some(_) => Some(ErrorKind::NotFound),
                };
                // The kernel's order: the source's parent, the target's parent, the source.
                let want = parent_ok(f)
                    .or_else(|| parent_ok(t))
                    .or_else(|| model.get(session, f).is_none().then_some(ErrorKind::NotFound));
                assert_eq!(got, want, "rename {f} -> {t} in session {session}");
                if want.is_none() {
                    let content = model.get(session, f).expect("checked");
                    model.set(session, t, content);
                    model.set(session, f, Kind::Gone);
                }
            }
            Op::Read { session, path } if live(session) => {
                let p = PATHS[path];
                let got = real.session(session).read_file(&full(p)).await;
                match model.get(session, p) {
                    Some(Kind::File(byte)) => assert_eq!(got.unwrap(), vec![byte], "read {p} in {session}"),
                    Some(Kind::Dir) => assert_eq!(got.unwrap_err().kind(), ErrorKind::IsADirectory),
                    _ => {
                        let want = if parent_of(p).is_some_and(|d| matches!(model.get(session, d), Some(Kind::File(_))))
                        {
                            ErrorKind::NotADirectory
                        } else {
                            ErrorKind::NotFound
                        };
                        assert_eq!(got.unwrap_err().kind(), want, "read {p} in {session}");
                    }
                }
            }
            Op::List { session, which } if live(session) => {
                let (listed, base) = match which {
                    0 => ("/data".to_owned(), ""),
                    n => (full(DIRS[n - 1]), DIRS[n - 1]),
                };
                let got = real.session(session).read_dir(&listed).await;
                if which > 0 && model.get(session, base) != Some(Kind::Dir) {
                    assert!(got.is_err(), "listing a missing or file {base}");
                    continue;
                }
                let got: Vec<(String, FileType)> = got.unwrap().into_iter().map(|e| (e.name, e.file_type)).collect();
                let want: Vec<(String, FileType)> = PATHS
                    .iter()
                    .filter(|p| if which == 0 { !p.contains('/') } else { parent_of(p) == Some(base) })
                    .filter_map(|p| {
                        let t = match model.get(session, p)? {
                            Kind::File(_) => FileType::File,
                            Kind::Dir => FileType::Dir,
                            Kind::Gone | Kind::Clean => return None,
                        };
                        Some((p.rsplit('/').next().expect("a name").to_owned(), t))
                    })
                    .collect();
                assert_eq!(got, want, "listing {listed} in session {session}");
            }
            Op::Fork { session } if live(session) && model.sessions.len() < 6 => {
                let fork = real.session(session).fork().unwrap();
                real.names.push(fork.name().unwrap());
                let overlay = model.s(session).overlay.clone();
                model.sessions.push(Some(MSession { parent: Some(session), overlay, ..MSession::default() }));
            }
            Op::Commit { session, winner_takes_all } if live(session) => {
                let got =
                    real.session(session).commit(CommitOptions { winner_takes_all, ..CommitOptions::default() }).await;
                let conflicts = model.commit(session, winner_takes_all);
                if conflicts.is_empty() {
                    got.unwrap();
                } else {
                    let e = got.unwrap_err();
                    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
                    let want: Vec<VPath> = conflicts.iter().map(|p| VPath::parse(&full(p)).unwrap()).collect();
                    assert_eq!(e.conflicts(), want.as_slice());
                }
            }
            Op::Abort { session } if live(session) && session != 0 => {
                real.session(session).abort().unwrap();
                for id in model.subtree(session) {
                    model.sessions[id] = None;
                }
            }
            Op::Reopen => real.open(),
            _ => {}
        }
        for (path, kind) in &model.resource {
            let meta = real.resource.stat(&VPath::parse(&format!("/{path}")).unwrap()).await;
            let got = meta.ok().map(|m| m.file_type);
            let want = match kind {
                Kind::File(_) => Some(FileType::File),
                Kind::Dir => Some(FileType::Dir),
                Kind::Gone | Kind::Clean => None,
            };
            assert_eq!(got, want, "the resource holds {path}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn sessions_with_directories_behave_like_the_model(ops in proptest::collection::vec(op(), 1..50)) {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run(ops));
    }
}
