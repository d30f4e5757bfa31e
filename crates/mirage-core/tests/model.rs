//! Model-based test: random sequences of writes, removes, forks, commits, aborts, changes made
//! behind the sessions' backs and restarts of the store, run against Mirage and against a
//! small reference model; every observable result must agree.

use std::collections::BTreeMap;
use std::sync::Arc;

use mirage_core::{
    CommitOptions, ErrorKind, MemoryResource, Mirage, MountOptions, Precondition, Resource, Session, VPath,
};
use proptest::prelude::*;

const PATHS: [&str; 3] = ["/data/a", "/data/b", "/data/c"];

#[derive(Clone, Debug)]
enum Op {
    Write { session: usize, path: usize, data: Vec<u8> },
    Append { session: usize, path: usize, data: Vec<u8> },
    Remove { session: usize, path: usize },
    Read { session: usize, path: usize },
    List { session: usize },
    Fork { session: usize },
    Commit { session: usize, winner_takes_all: bool },
    Abort { session: usize },
    External { path: usize, data: Vec<u8> },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let s = 0..6usize;
    let p = 0..PATHS.len();
    let data = proptest::collection::vec(any::<u8>(), 0..6);
    prop_oneof![
        4 => (s.clone(), p.clone(), data.clone()).prop_map(|(session, path, data)| Op::Write { session, path, data }),
        2 => (s.clone(), p.clone(), data.clone()).prop_map(|(session, path, data)| Op::Append { session, path, data }),
        2 => (s.clone(), p.clone()).prop_map(|(session, path)| Op::Remove { session, path }),
        3 => (s.clone(), p.clone()).prop_map(|(session, path)| Op::Read { session, path }),
        1 => s.clone().prop_map(|session| Op::List { session }),
        3 => s.clone().prop_map(|session| Op::Fork { session }),
        3 => (s.clone(), any::<bool>()).prop_map(|(session, winner_takes_all)| Op::Commit { session, winner_takes_all }),
        1 => s.prop_map(|session| Op::Abort { session }),
        1 => (p, data).prop_map(|(path, data)| Op::External { path, data }),
        1 => Just(Op::Reopen),
    ]
}

/// An overlay entry of the model: content (`None` for a deletion), its version, and the
/// resource version it was based on. A clean entry was written to the resource and reads
/// through to it; it keeps its version so that older forks see the change.
#[derive(Clone, Debug)]
struct MNode {
    ver: u64,
    content: Option<Vec<u8>>,
    origin: Option<u64>,
    clean: bool,
}

#[derive(Clone, Debug, Default)]
struct MSession {
    parent: Option<usize>,
    overlay: BTreeMap<usize, MNode>,
    touched: BTreeMap<usize, Option<MNode>>,
}

/// The reference: flat files over one resource, sessions as maps.
#[derive(Debug, Default)]
struct Model {
    resource: BTreeMap<usize, (Vec<u8>, u64)>,
    sessions: Vec<Option<MSession>>,
    next: u64,
}

impl Model {
    fn ver(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn read(&self, s: usize, p: usize) -> Option<Vec<u8>> {
        let sess = self.sessions[s].as_ref().unwrap();
        match sess.overlay.get(&p) {
            Some(node) if !node.clean => node.content.clone(),
            _ => self.resource.get(&p).map(|(c, _)| c.clone()),
        }
    }

    fn set(&mut self, s: usize, p: usize, content: Option<Vec<u8>>) {
        let ver = self.ver();
        let resource_ver = self.resource.get(&p).map(|(_, v)| *v);
        let sess = self.sessions[s].as_mut().unwrap();
        let origin = match sess.overlay.get(&p) {
            Some(node) if !node.clean => node.origin,
            _ => resource_ver,
        };
        let base = sess.overlay.get(&p).cloned();
        sess.touched.entry(p).or_insert(base);
        sess.overlay.insert(p, MNode { ver, content, origin, clean: false });
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

    /// Commits session `s`; returns the conflicting paths (empty on success).
    fn commit(&mut self, s: usize, winner_takes_all: bool) -> Vec<usize> {
        let child = self.sessions[s].clone().unwrap();
        match child.parent {
            Some(parent) => {
                let par = self.sessions[parent].as_ref().unwrap();
                let conflicts: Vec<usize> = child
                    .touched
                    .iter()
                    .filter(|(p, base)| par.overlay.get(p).map(|n| n.ver) != base.as_ref().map(|b| b.ver))
                    .map(|(p, _)| *p)
                    .collect();
                if !conflicts.is_empty() {
                    return conflicts;
                }
                for (p, base) in &child.touched {
                    let mut node = child.overlay[p].clone();
                    let par = self.sessions[parent].as_mut().unwrap();
                    let prev = par.overlay.get(p).cloned();
                    if let (Some(base), Some(now)) = (base, &prev)
                        && !base.clean
                        && now.clean
                    {
                        node.origin = now.origin;
                    }
                    par.touched.entry(*p).or_insert(prev);
                    par.overlay.insert(*p, node.clone());
                    self.sessions[s].as_mut().unwrap().overlay.insert(*p, node);
                }
                self.sessions[s].as_mut().unwrap().touched.clear();
                if winner_takes_all {
                    for sib in 0..self.sessions.len() {
                        if sib != s && self.sessions[sib].as_ref().is_some_and(|x| x.parent == Some(parent)) {
                            for id in self.subtree(sib) {
                                self.sessions[id] = None;
                            }
                        }
                    }
                }
                Vec::new()
            }
            None => {
                let conflicts: Vec<usize> = child
                    .touched
                    .keys()
                    .filter(|p| {
                        let node = &child.overlay[p];
                        let cur = self.resource.get(p).map(|(_, v)| *v);
                        !(cur == node.origin || (node.content.is_none() && cur.is_none()))
                    })
                    .copied()
                    .collect();
                if !conflicts.is_empty() {
                    return conflicts;
                }
                for p in child.touched.keys() {
                    let node = &child.overlay[p];
                    let new = match &node.content {
                        Some(c) => {
                            let v = self.ver();
                            self.resource.insert(*p, (c.clone(), v));
                            Some(v)
                        }
                        None => {
                            self.resource.remove(p);
                            None
                        }
                    };
                    let clean = MNode { ver: node.ver, content: None, origin: new, clean: true };
                    let sess = self.sessions[s].as_mut().unwrap();
                    sess.overlay.insert(*p, clean);
                    sess.touched.remove(p);
                }
                Vec::new()
            }
        }
    }
}

struct Real {
    resource: Arc<MemoryResource>,
    store: tempfile::TempDir,
    mirage: Option<Mirage>,
    names: Vec<Option<String>>,
}

impl Real {
    fn open(&mut self) {
        self.mirage = None;
        let m = Mirage::open(self.store.path()).unwrap();
        m.mount("/data", self.resource.clone(), MountOptions::default()).unwrap();
        self.mirage = Some(m);
    }

    fn session(&self, s: usize) -> Session {
        self.mirage.as_ref().unwrap().session(self.names[s].as_ref().unwrap()).unwrap()
    }
}

async fn run(ops: Vec<Op>) {
    let mut model = Model { sessions: vec![Some(MSession::default())], ..Model::default() };
    let mut real = Real {
        resource: Arc::new(MemoryResource::new()),
        store: tempfile::tempdir().unwrap(),
        mirage: None,
        names: vec![Some("main".into())],
    };
    real.open();
    real.mirage.as_ref().unwrap().create_session("main").unwrap();
    for op in ops {
        let live = |s: usize| s < model.sessions.len() && model.sessions[s].is_some();
        match op {
            Op::Write { session, path, data } if live(session) => {
                real.session(session).write_file(PATHS[path], data.clone()).await.unwrap();
                model.set(session, path, Some(data));
            }
            Op::Append { session, path, data } if live(session) => {
                real.session(session).append(PATHS[path], data.clone()).await.unwrap();
                let mut content = model.read(session, path).unwrap_or_default();
                content.extend_from_slice(&data);
                model.set(session, path, Some(content));
            }
            Op::Remove { session, path } if live(session) => {
                let got = real.session(session).remove(PATHS[path]).await;
                if model.read(session, path).is_some() {
                    got.unwrap();
                    model.set(session, path, None);
                } else {
                    assert_eq!(got.unwrap_err().kind(), ErrorKind::NotFound);
                }
            }
            Op::Read { session, path } if live(session) => {
                let handle = real.session(session);
                let got = handle.read_file(PATHS[path]).await;
                // The copy a session makes of a file it holds, where it holds one.
                let mut out = [0u8; 256];
                let held = handle.read_held_into(PATHS[path], &mut out).map(|len| out[..len].to_vec());
                match model.read(session, path) {
                    Some(content) => {
                        if let Some(held) = held {
                            assert_eq!(held, content, "held copy of {} in session {session}", PATHS[path]);
                        }
                        assert_eq!(got.unwrap(), content, "read {} in session {session}", PATHS[path]);
                    }
                    None => {
                        assert_eq!(held, None, "a held copy of the absent {} in session {session}", PATHS[path]);
                        assert_eq!(got.unwrap_err().kind(), ErrorKind::NotFound);
                    }
                }
            }
            Op::List { session } if live(session) => {
                let got: Vec<String> =
                    real.session(session).read_dir("/data").await.unwrap().into_iter().map(|e| e.name).collect();
                let want: Vec<String> = (0..PATHS.len())
                    .filter(|p| model.read(session, *p).is_some())
                    .map(|p| PATHS[p].trim_start_matches("/data/").to_owned())
                    .collect();
                assert_eq!(got, want, "listing in session {session}");
            }
            Op::Fork { session } if live(session) && model.sessions.len() < 6 => {
                let fork = real.session(session).fork().unwrap();
                real.names.push(Some(fork.name().unwrap()));
                let parent_overlay = model.sessions[session].as_ref().unwrap().overlay.clone();
                model.sessions.push(Some(MSession {
                    parent: Some(session),
                    overlay: parent_overlay,
                    ..MSession::default()
                }));
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
                    let want: Vec<VPath> = conflicts.iter().map(|p| VPath::parse(PATHS[*p]).unwrap()).collect();
                    assert_eq!(e.conflicts(), want.as_slice());
                }
            }
            Op::Abort { session } if live(session) && session != 0 => {
                real.session(session).abort().unwrap();
                for id in model.subtree(session) {
                    model.sessions[id] = None;
                }
            }
            Op::External { path, data } => {
                let p = VPath::parse(PATHS[path].trim_start_matches("/data")).unwrap();
                real.resource
                    .put(&p, mirage_core::resource::once_stream(data.clone().into()), Precondition::None)
                    .await
                    .unwrap();
                let v = model.ver();
                model.resource.insert(path, (data, v));
            }
            Op::Reopen => real.open(),
            _ => {}
        }
        let mut live_names: Vec<String> = (0..model.sessions.len())
            .filter(|s| model.sessions[*s].is_some())
            .map(|s| real.names[s].clone().unwrap())
            .collect();
        let mut listed: Vec<String> = real.mirage.as_ref().unwrap().sessions().into_iter().map(|s| s.name).collect();
        live_names.sort();
        listed.sort();
        assert_eq!(listed, live_names, "the sessions that exist");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn sessions_behave_like_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run(ops));
    }
}
