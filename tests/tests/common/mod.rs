//! What the end-to-end tests over remote resources share: a session whose root is one
//! resource, mounted with FUSE, and programs run in the mount.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use mirage_core::{Mirage, MountOptions, Resource, Session};

/// A session over `resource` at `/`, served at `point` on `runtime` (which remote resources
/// wait on) until `mount` is unmounted.
pub(crate) struct Mounted {
    pub(crate) runtime: tokio::runtime::Runtime,
    pub(crate) session: Session,
    pub(crate) point: tempfile::TempDir,
    pub(crate) mount: mirage_fuse::Mount,
}

/// Mounts a new session whose whole tree is `resource`.
pub(crate) fn mount_root(resource: Arc<dyn Resource>) -> Mounted {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mirage = Mirage::new();
    mirage.mount("/", resource, MountOptions::default()).unwrap();
    let session = mirage.create_session("fuse").unwrap();
    let point = tempfile::tempdir().unwrap();
    let options = mirage_fuse::Options { runtime: Some(runtime.handle().clone()), ..mirage_fuse::Options::default() };
    let mount = mirage_fuse::mount(&session, point.path(), &options).unwrap();
    Mounted { runtime, session, point, mount }
}

/// Runs `program ARGS` in `dir` and returns what it printed, after checking it succeeded.
pub(crate) fn run(program: &str, args: &[&str], dir: &Path) -> String {
    let out = Command::new(program).args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The files `rg -l PATTERN .` names in `dir`, sorted.
pub(crate) fn rg_files(pattern: &str, dir: &Path) -> Vec<String> {
    let mut hits: Vec<String> = run("rg", &["-l", pattern, "."], dir).lines().map(str::to_owned).collect();
    hits.sort();
    hits
}
