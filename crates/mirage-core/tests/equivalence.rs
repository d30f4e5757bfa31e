//! A root session over a memory resource, committed now and then, must end up exactly where
//! the same operations applied directly to a memory resource end up: every answer on the way
//! (contents, listings, errors) and the resource's tree after each commit.

use std::sync::Arc;

use mirage_core::{
    CommitOptions, ErrorKind, FileType, MemoryResource, Mirage, MountOptions, Precondition, Resource, Result, Session,
    VPath,
};
use proptest::prelude::*;

const PATHS: [&str; 8] = ["/a", "/b", "/d", "/d/x", "/d/y", "/e", "/e/x", "/e/y"];

#[derive(Clone, Debug)]
enum Op {
    WriteFile(usize, Vec<u8>),
    Write(usize, u64, Vec<u8>),
    Truncate(usize, u64),
    Mkdir(usize),
    Remove(usize),
    Rmdir(usize),
    Rename(usize, usize),
    Chmod(usize, bool),
    Read(usize),
    List(usize),
    Commit,
    Fork,
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0..PATHS.len();
    let data = proptest::collection::vec(any::<u8>(), 0..5);
    prop_oneof![
        4 => (p.clone(), data.clone()).prop_map(|(a, d)| Op::WriteFile(a, d)),
        2 => (p.clone(), 0..6u64, data).prop_map(|(a, o, d)| Op::Write(a, o, d)),
        1 => (p.clone(), 0..6u64).prop_map(|(a, l)| Op::Truncate(a, l)),
        3 => p.clone().prop_map(Op::Mkdir),
        2 => p.clone().prop_map(Op::Remove),
        2 => p.clone().prop_map(Op::Rmdir),
        3 => (p.clone(), p.clone()).prop_map(|(a, b)| Op::Rename(a, b)),
        1 => (p.clone(), any::<bool>()).prop_map(|(a, x)| Op::Chmod(a, x)),
        2 => p.clone().prop_map(Op::Read),
        2 => p.prop_map(Op::List),
        1 => Just(Op::Commit),
        1 => Just(Op::Fork),
    ]
}

fn v(path: &str) -> VPath {
    VPath::parse(path).unwrap()
}

/// The operation applied straight to the reference resource.
async fn direct(r: &dyn Resource, op: &Op) -> Result<String> {
    Ok(match op {
        Op::WriteFile(a, d) => {
            let stream = mirage_core::resource::once_stream(d.clone().into());
            r.put(&v(PATHS[*a]), stream, Precondition::None).await?;
            String::new()
        }
        Op::Write(a, o, d) => format!("{:?}", r.write(&v(PATHS[*a]), *o, d).await?),
        Op::Truncate(a, l) => format!("{:?}", r.truncate(&v(PATHS[*a]), *l).await?),
        Op::Mkdir(a) => format!("{:?}", r.mkdir(&v(PATHS[*a]), 0o755).await?),
        Op::Remove(a) => format!("{:?}", r.remove(&v(PATHS[*a])).await?),
        Op::Rmdir(a) => format!("{:?}", r.rmdir(&v(PATHS[*a])).await?),
        Op::Rename(a, b) => format!("{:?}", r.rename(&v(PATHS[*a]), &v(PATHS[*b])).await?),
        Op::Chmod(a, x) => format!("{:?}", r.set_mode(&v(PATHS[*a]), if *x { 0o755 } else { 0o644 }).await?),
        Op::Read(a) => format!("{:?}", r.read(&v(PATHS[*a]), 0, u64::MAX).await?),
        Op::List(a) => {
            let mut list = r.list(&v(PATHS[*a])).await?;
            list.sort();
            format!("{list:?}")
        }
        Op::Commit | Op::Fork => String::new(),
    })
}

/// The operation through the session.
async fn session(s: &Session, op: &Op) -> Result<String> {
    let m = |i: &usize| format!("/m{}", PATHS[*i]);
    Ok(match op {
        Op::WriteFile(a, d) => {
            s.write_file(&m(a), d.clone()).await?;
            String::new()
        }
        Op::Write(a, o, d) => format!("{:?}", s.write(&m(a), *o, d.clone()).await?),
        Op::Truncate(a, l) => format!("{:?}", s.truncate(&m(a), *l).await?),
        Op::Mkdir(a) => format!("{:?}", s.mkdir(&m(a), 0o755).await?),
        Op::Remove(a) => format!("{:?}", s.remove(&m(a)).await?),
        Op::Rmdir(a) => format!("{:?}", s.rmdir(&m(a)).await?),
        Op::Rename(a, b) => format!("{:?}", s.rename(&m(a), &m(b)).await?),
        Op::Chmod(a, x) => format!("{:?}", s.set_mode(&m(a), if *x { 0o755 } else { 0o644 }).await?),
        Op::Read(a) => format!("{:?}", s.read_file(&m(a)).await?),
        Op::List(a) => format!("{:?}", s.read_dir(&m(a)).await?),
        Op::Commit => {
            s.commit(CommitOptions::default()).await?;
            String::new()
        }
        Op::Fork => String::new(),
    })
}

/// Everything a resource holds: path, kind, mode and content.
async fn tree(r: &dyn Resource) -> Vec<(String, FileType, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![VPath::root()];
    while let Some(dir) = dirs.pop() {
        for entry in r.list(&dir).await.unwrap() {
            let path = dir.child(&entry.name).unwrap();
            let meta = r.stat(&path).await.unwrap();
            let content = match entry.file_type {
                FileType::File => r.read(&path, 0, u64::MAX).await.unwrap().to_vec(),
                FileType::Dir => {
                    dirs.push(path.clone());
                    Vec::new()
                }
                FileType::Symlink => Vec::new(),
            };
            out.push((path.to_string(), entry.file_type, meta.mode, content));
        }
    }
    out.sort();
    out
}

/// A pair of empty resources of one kind: one behind the session, one for the reference.
type Pair = (Arc<dyn Resource>, Arc<dyn Resource>, Vec<tempfile::TempDir>);

fn memory_pair() -> Pair {
    (Arc::new(MemoryResource::new()), Arc::new(MemoryResource::new()), Vec::new())
}

fn local_pair() -> Pair {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let backend = Arc::new(mirage_core::LocalResource::new(a.path()).unwrap());
    let reference = Arc::new(mirage_core::LocalResource::new(b.path()).unwrap());
    (backend, reference, vec![a, b])
}

async fn run(ops: Vec<Op>, pair: Pair) {
    let (backend, reference, _dirs) = pair;
    let reference = reference.as_ref();
    let mirage = Mirage::new();
    mirage.mount("/m", backend.clone(), MountOptions::default()).unwrap();
    let main = mirage.create_session("main").unwrap();
    // Work happens in a chain of forks; committing a fork moves its work into its parent,
    // and committing the root writes it to the resource. Nothing races, so nothing conflicts.
    let mut chain = vec![main.clone()];
    for op in ops {
        let s = chain.last().expect("the root is always there").clone();
        match op {
            Op::Fork => {
                chain.push(s.fork().unwrap());
                continue;
            }
            Op::Commit if chain.len() > 1 => {
                s.commit(CommitOptions::default()).await.unwrap();
                chain.pop();
                continue;
            }
            _ => {}
        }
        let want = direct(reference, &op).await.map_err(|e| e.kind());
        let got = session(&s, &op).await.map_err(|e| e.kind());
        if let (Op::WriteFile(..), Err(ErrorKind::IsADirectory), Err(ErrorKind::IsADirectory)) = (&op, &want, &got) {
            continue;
        }
        assert_eq!(got, want, "{op:?} (at depth {})", chain.len() - 1);
        if matches!(op, Op::Commit) {
            assert_eq!(tree(backend.as_ref()).await, tree(reference).await, "after a commit");
        }
    }
    while let Some(s) = chain.pop() {
        s.commit(CommitOptions::default()).await.unwrap();
    }
    assert_eq!(tree(backend.as_ref()).await, tree(reference).await, "after the last commit");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn a_committed_session_equals_direct_application(ops in proptest::collection::vec(op(), 1..40)) {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run(ops, memory_pair()));
    }

    #[test]
    fn a_session_committed_to_a_host_directory_equals_direct_application(
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run(ops, local_pair()));
    }
}

/// Everything a session sees below `/m`: path to kind, mode and content.
async fn seen(s: &Session) -> std::collections::BTreeMap<String, (FileType, u32, Vec<u8>)> {
    let mut out = std::collections::BTreeMap::new();
    let mut dirs = vec!["/m".to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in s.read_dir(&dir).await.unwrap() {
            let path = format!("{dir}/{}", entry.name);
            let meta = s.lstat(&path).await.unwrap();
            let content = match entry.file_type {
                FileType::File => s.read_file(&path).await.unwrap().to_vec(),
                FileType::Dir => {
                    dirs.push(path.clone());
                    Vec::new()
                }
                FileType::Symlink => Vec::new(),
            };
            out.insert(path, (entry.file_type, meta.mode, content));
        }
    }
    out
}

/// `diff()` of a fork names every path whose kind, mode or content differs from its parent,
/// with the right change kind and sizes.
async fn diff_is_complete(setup: Vec<Op>, ops: Vec<Op>) {
    let mirage = Mirage::new();
    mirage.mount("/m", Arc::new(MemoryResource::new()), MountOptions::default()).unwrap();
    let main = mirage.create_session("main").unwrap();
    for op in &setup {
        let _ = session(&main, op).await;
    }
    let fork = main.fork().unwrap();
    for op in &ops {
        if !matches!(op, Op::Commit | Op::Fork) {
            let _ = session(&fork, op).await;
        }
    }
    let (before, after) = (seen(&main).await, seen(&fork).await);
    let diff = fork.diff().await.unwrap();
    let listed: std::collections::BTreeMap<String, &mirage_core::Change> =
        diff.iter().map(|c| (c.path.to_string(), c)).collect();
    for path in before.keys().chain(after.keys()) {
        let (old, new) = (before.get(path), after.get(path));
        if old == new {
            continue;
        }
        let change = listed.get(path).unwrap_or_else(|| panic!("{path} differs but is not in {diff:?}"));
        let want = match (old, new) {
            (None, Some(_)) => mirage_core::ChangeKind::Added,
            (Some(_), None) => mirage_core::ChangeKind::Deleted,
            _ => mirage_core::ChangeKind::Modified,
        };
        assert_eq!(change.kind, want, "{path}");
        let size = |e: Option<&(FileType, u32, Vec<u8>)>| {
            e.map(|(t, _, c)| if *t == FileType::File { c.len() as u64 } else { 0 })
        };
        if change.file_type == FileType::File {
            assert_eq!((change.old_size, change.new_size), (size(old), size(new)), "{path}");
        }
    }
    for change in &diff {
        let path = change.path.to_string();
        let (old, new) = (before.get(&path), after.get(&path));
        match change.kind {
            mirage_core::ChangeKind::Added => assert!(old.is_none() && new.is_some(), "{path} added"),
            mirage_core::ChangeKind::Deleted => assert!(old.is_some() && new.is_none(), "{path} deleted"),
            mirage_core::ChangeKind::Modified => assert!(old.is_some() && new.is_some(), "{path} modified"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn a_forks_diff_names_every_difference(
        setup in proptest::collection::vec(op(), 0..20),
        ops in proptest::collection::vec(op(), 1..25),
    ) {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(diff_is_complete(setup, ops));
    }
}
