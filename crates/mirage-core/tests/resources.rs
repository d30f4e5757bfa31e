//! The conformance suite against the built-in resources, and the local resource's
//! confinement to its directory.

use std::sync::Arc;

use mirage_core::{
    CommitOptions, ErrorKind, LocalResource, MemoryResource, Mirage, MountOptions, Resource, VPath, conformance,
};

#[tokio::test]
async fn memory_passes_the_conformance_suite() {
    conformance::run_all(&MemoryResource::new()).await;
}

#[tokio::test]
async fn local_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run_all(&LocalResource::new(dir.path()).unwrap()).await;
}

/// A directory with a secret outside the mounted `root`, and links planted inside it.
fn planted() -> (tempfile::TempDir, std::path::PathBuf) {
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(top.path().join("secret"), "host secret").unwrap();
    std::os::unix::fs::symlink(top.path(), root.join("escape_dir")).unwrap();
    std::os::unix::fs::symlink(top.path().join("secret"), root.join("escape_file")).unwrap();
    std::os::unix::fs::symlink("../secret", root.join("escape_rel")).unwrap();
    (top, root)
}

#[tokio::test]
async fn local_resource_refuses_dot_dot_and_planted_links() {
    let (top, root) = planted();
    let local = LocalResource::new(&root).unwrap();
    let p = |s: &str| VPath::parse(s).unwrap();
    assert_eq!(p("/../secret"), p("/secret"), "`..` never climbs above the root");
    assert_eq!(local.stat(&p("/../secret")).await.unwrap_err().kind(), ErrorKind::NotFound);
    for link in ["/escape_dir/secret", "/escape_dir/root/escape_file"] {
        let e = local.read(&p(link), 0, 100).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::FilesystemLoop, "{link}: {e}");
        let e = local.write(&p(link), 0, b"pwned").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::FilesystemLoop, "{link}: {e}");
        assert!(local.list(&p("/escape_dir")).await.is_err());
    }
    for link in ["/escape_file", "/escape_rel"] {
        assert!(local.read(&p(link), 0, 100).await.is_err(), "{link} must not be followed");
        assert!(local.write(&p(link), 0, b"pwned").await.is_err());
        assert!(local.truncate(&p(link), 0).await.is_err());
        assert!(local.set_mode(&p(link), 0o777).await.is_err());
    }
    assert!(
        local
            .put(&p("/escape_dir/new"), mirage_core::resource::once_stream("x".into()), mirage_core::Precondition::None)
            .await
            .is_err()
    );
    assert_eq!(std::fs::read_to_string(top.path().join("secret")).unwrap(), "host secret");
    assert!(!top.path().join("new").exists());
}

#[tokio::test]
async fn sessions_resolve_planted_links_inside_the_virtual_tree_only() {
    let (top, root) = planted();
    let mirage = Mirage::new();
    mirage.mount("/w", Arc::new(LocalResource::new(&root).unwrap()), MountOptions::default()).unwrap();
    let s = mirage.create_session("s").unwrap();
    for link in ["/w/escape_file", "/w/escape_rel", "/w/escape_dir/secret", "/w/../../secret"] {
        let e = s.read_file(link).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{link}: {e}");
    }
    let e = s.write_file("/w/escape_file", "pwned").await.unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ReadOnly), "{e}");
    s.commit(CommitOptions::default()).await.unwrap();
    assert_eq!(std::fs::read_to_string(top.path().join("secret")).unwrap(), "host secret");
}

mod agreement {
    //! The memory resource is the reference the session tests lean on; the local resource must
    //! answer every primitive the same way, errors included.

    use super::*;
    use mirage_core::{FileType, Result};
    use proptest::prelude::*;

    const PATHS: [&str; 6] = ["/a", "/b", "/d", "/d/x", "/d/y", "/l"];

    #[derive(Clone, Debug)]
    enum ROp {
        Create(usize),
        Write(usize, u64, Vec<u8>),
        Truncate(usize, u64),
        Mkdir(usize),
        Remove(usize),
        Rmdir(usize),
        Rename(usize, usize),
        Symlink(usize, usize),
        Read(usize, u64, u64),
        Stat(usize),
        List(usize),
        Readlink(usize),
    }

    fn rop() -> impl Strategy<Value = ROp> {
        let p = 0..PATHS.len();
        prop_oneof![
            p.clone().prop_map(ROp::Create),
            (p.clone(), 0..8u64, proptest::collection::vec(any::<u8>(), 0..6))
                .prop_map(|(a, o, d)| ROp::Write(a, o, d)),
            (p.clone(), 0..8u64).prop_map(|(a, l)| ROp::Truncate(a, l)),
            p.clone().prop_map(ROp::Mkdir),
            p.clone().prop_map(ROp::Remove),
            p.clone().prop_map(ROp::Rmdir),
            (p.clone(), p.clone()).prop_map(|(a, b)| ROp::Rename(a, b)),
            (p.clone(), p.clone()).prop_map(|(a, b)| ROp::Symlink(a, b)),
            (p.clone(), 0..8u64, 0..8u64).prop_map(|(a, o, l)| ROp::Read(a, o, l)),
            p.clone().prop_map(ROp::Stat),
            p.clone().prop_map(ROp::List),
            p.prop_map(ROp::Readlink),
        ]
    }

    /// One primitive's observable outcome.
    async fn apply(r: &dyn Resource, op: &ROp) -> Result<String> {
        let p = |i: &usize| VPath::parse(PATHS[*i]).unwrap();
        Ok(match op {
            ROp::Create(a) => format!("{:?}", r.create(&p(a), 0o644).await?),
            ROp::Write(a, o, d) => format!("{:?}", r.write(&p(a), *o, d).await?),
            ROp::Truncate(a, l) => format!("{:?}", r.truncate(&p(a), *l).await?),
            ROp::Mkdir(a) => format!("{:?}", r.mkdir(&p(a), 0o755).await?),
            ROp::Remove(a) => format!("{:?}", r.remove(&p(a)).await?),
            ROp::Rmdir(a) => format!("{:?}", r.rmdir(&p(a)).await?),
            ROp::Rename(a, b) => format!("{:?}", r.rename(&p(a), &p(b)).await?),
            ROp::Symlink(a, b) => format!("{:?}", r.symlink(PATHS[*a], &p(b)).await?),
            ROp::Read(a, o, l) => format!("{:?}", r.read(&p(a), *o, *l).await?),
            ROp::Stat(a) => {
                let m = r.stat(&p(a)).await?;
                let size = if m.file_type == FileType::Dir { 0 } else { m.size };
                format!("{:?} {size}", m.file_type)
            }
            ROp::List(a) => {
                let mut list = r.list(&p(a)).await?;
                list.sort();
                format!("{list:?}")
            }
            ROp::Readlink(a) => r.readlink(&p(a)).await?,
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 150, ..ProptestConfig::default() })]

        #[test]
        fn local_answers_like_memory(ops in proptest::collection::vec(rop(), 1..40)) {
            let dir = tempfile::tempdir().unwrap();
            let local = LocalResource::new(dir.path()).unwrap();
            let memory = MemoryResource::new();
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            for op in &ops {
                let (want, got) = rt.block_on(async { (apply(&memory, op).await, apply(&local, op).await) });
                let want = want.map_err(|e| e.kind());
                let got = got.map_err(|e| e.kind());
                prop_assert_eq!(got, want, "{:?}", op);
            }
        }
    }
}
