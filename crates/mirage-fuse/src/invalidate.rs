//! Keeping the kernel's caches true to the session when it changes behind the mount's back:
//! another writer of the session, a fork committed into it, an abort.

use std::ffi::OsStr;
use std::sync::{Arc, Mutex};

use fuser::Notifier;
use mirage_core::{Notice, Session, VPath, Watch};

use crate::fs::{mount_id, serving};
use crate::inodes::Inodes;

/// Watches `session` and invalidates what the kernel caches of every path that changes,
/// before the change's operation returns (so the writer's next look through the mount sees
/// it). Changes made by this mount's own requests are skipped: the kernel made them. Stops
/// when the returned watch is dropped.
pub(crate) fn start(session: &Session, inodes: Arc<Inodes>, notifier: Notifier) -> std::io::Result<Watch> {
    let mount = mount_id(&inodes);
    let notifier = Mutex::new(notifier);
    session
        .watch(move |notice| {
            if serving() == mount {
                return;
            }
            let notifier = notifier.lock().unwrap_or_else(|e| e.into_inner());
            match notice {
                Notice::Changed(paths) => paths.iter().for_each(|path| invalidate(&notifier, &inodes, path)),
                Notice::Ended => inodes.all().iter().for_each(|(path, _)| invalidate(&notifier, &inodes, path)),
            }
        })
        .map_err(std::io::Error::other)
}

/// Drops the kernel's attributes, pages and directory entry of `path`, and its parent's
/// attributes and cached listing. Errors are ignored: the kernel answers `ENOENT` for what it does not cache.
fn invalidate(notifier: &Notifier, inodes: &Inodes, path: &VPath) {
    if let Some(ino) = inodes.peek(path) {
        let _ = notifier.inval_inode(ino, 0, 0);
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else { return };
    if let Some(parent) = inodes.peek(&parent) {
        let _ = notifier.inval_entry(parent, OsStr::new(name));
        let _ = notifier.inval_inode(parent, 0, 0);
    }
}
