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
