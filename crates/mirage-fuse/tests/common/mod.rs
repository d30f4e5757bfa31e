//! A session over a temporary host directory, mounted with FUSE on another temporary
//! directory, and ways to run programs in it.

// Each test binary uses a different part of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use mirage_core::{LocalResource, Mirage, MountOptions, Session};
use tempfile::TempDir;

/// A mounted session over a host directory.
pub(crate) struct Mounted {
    /// The host directory the session reads through to (untouched until a commit).
    pub(crate) host: TempDir,
    /// The session served.
    pub(crate) session: Session,
    /// Where it is mounted.
    pub(crate) mnt: TempDir,
    pub(crate) mount: Option<mirage_fuse::Mount>,
}

impl Mounted {
    /// An empty host directory, mounted.
    pub(crate) fn new() -> Self {
        Self::with_host(|_| {})
    }

    /// A host directory prepared by `fill`, mounted.
    pub(crate) fn with_host(fill: impl FnOnce(&Path)) -> Self {
        Self::with_options(fill, &mirage_fuse::Options::default())
    }

    /// A host directory prepared by `fill`, mounted with `options`.
    pub(crate) fn with_options(fill: impl FnOnce(&Path), options: &mirage_fuse::Options) -> Self {
        assert!(
            Path::new("/dev/fuse").exists(),
            "these tests need /dev/fuse (and root or fusermount3): see docs/DEVELOPMENT.md"
        );
        let host = tempfile::tempdir().unwrap();
        fill(host.path());
        let mirage = Mirage::new();
        mirage.mount("/", Arc::new(LocalResource::new(host.path()).unwrap()), MountOptions::default()).unwrap();
        let session = mirage.create_session("fuse-test").unwrap();
        let mnt = tempfile::tempdir().unwrap();
        let mount = mirage_fuse::mount(&session, mnt.path(), options).unwrap();
        Mounted { host, session, mnt, mount: Some(mount) }
    }

    /// A path inside the mount.
    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.mnt.path().join(rel)
    }

    /// Runs `script` with bash in the mount's root; panics with its output if it fails.
    pub(crate) fn sh(&self, script: &str) -> String {
        let out = self.sh_status(script);
        assert!(
            out.status.success(),
            "script failed ({}):\n{script}\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `script` with bash in the mount's root.
    pub(crate) fn sh_status(&self, script: &str) -> Output {
        Command::new("bash")
            .arg("-euo")
            .arg("pipefail")
            .arg("-c")
            .arg(script)
            .current_dir(self.mnt.path())
            .env("GIT_AUTHOR_NAME", "Mirage Test")
            .env("GIT_AUTHOR_EMAIL", "test@mirage.invalid")
            .env("GIT_COMMITTER_NAME", "Mirage Test")
            .env("GIT_COMMITTER_EMAIL", "test@mirage.invalid")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            // No background maintenance left running in the mount when the test ends.
            .env("GIT_CONFIG_COUNT", "2")
            .env("GIT_CONFIG_KEY_0", "gc.auto")
            .env("GIT_CONFIG_VALUE_0", "0")
            .env("GIT_CONFIG_KEY_1", "maintenance.auto")
            .env("GIT_CONFIG_VALUE_1", "false")
            .env_remove("CARGO_TARGET_DIR")
            .output()
            .unwrap()
    }

    /// Runs a session operation to completion.
    pub(crate) fn api<T>(&self, op: impl std::future::Future<Output = mirage_core::Result<T>>) -> T {
        futures_lite(op).unwrap()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(mount) = self.mount.take()
            && let Err(e) = mount.unmount()
        {
            // A program the test started may still be finishing inside: let the mount go
            // once it has.
            assert_eq!(e.raw_os_error(), Some(libc::EBUSY), "unmount: {e}");
            mirage_fuse::detach(self.mnt.path()).unwrap();
        }
    }
}

/// Polls `op` on this thread (memory and local mounts need no runtime).
pub(crate) fn futures_lite<T>(op: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(op)
}
