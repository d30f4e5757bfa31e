//! POSIX behaviour of the mount, call by call, from the specification's descriptions and its
//! required errors (and Linux's where POSIX leaves a choice): chmod, chown, link, mkdir,
//! mkfifo, open, rename, rmdir, symlink, truncate, unlink, utimensat, plus what programs rely
//! on beyond them: files removed while open, O_APPEND, pwrite holes, mmap, statfs, xattrs.

mod common;

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use common::Mounted;

fn c(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

/// The errno of a failed libc call (`ret` is its return value), or 0 on success.
fn errno_of(ret: i32) -> i32 {
    if ret == 0 { 0 } else { std::io::Error::last_os_error().raw_os_error().unwrap() }
}

fn io_errno<T>(result: std::io::Result<T>) -> i32 {
    match result {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().expect("an OS error"),
    }
}

#[test]
fn chmod_sets_the_permission_bits_and_the_exec_bit_works() {
    let m = Mounted::new();
    let f = m.path("script.sh");
    fs::write(&f, "#!/bin/sh\necho ran\n").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o751)).unwrap();
    assert_eq!(fs::metadata(&f).unwrap().permissions().mode() & 0o7777, 0o751);
    assert_eq!(m.sh("./script.sh"), "ran\n");
    assert_eq!(m.api(m.session.stat("/script.sh")).mode, 0o751);
    fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(io_errno(std::process::Command::new(&f).status()), libc::EACCES, "no exec bit, no exec");
    assert_eq!(io_errno(fs::set_permissions(m.path("missing"), fs::Permissions::from_mode(0o600))), libc::ENOENT);
}

#[test]
fn chown_to_the_owner_succeeds_and_to_anyone_else_is_eperm() {
    let m = Mounted::new();
    let f = m.path("f");
    fs::write(&f, "x").unwrap();
    let meta = fs::metadata(&f).unwrap();
    // SAFETY: valid path; plain syscalls.
    unsafe {
        assert_eq!(errno_of(libc::chown(c(&f).as_ptr(), meta.uid(), meta.gid())), 0);
        assert_eq!(errno_of(libc::chown(c(&f).as_ptr(), meta.uid() + 1, u32::MAX)), libc::EPERM);
        assert_eq!(errno_of(libc::chown(c(&f).as_ptr(), u32::MAX, meta.gid() + 1)), libc::EPERM);
    }
    assert_eq!(fs::metadata(&f).unwrap().uid(), meta.uid());
}

#[test]
fn link_is_refused_with_eperm() {
    let m = Mounted::new();
    fs::write(m.path("f"), "x").unwrap();
    assert_eq!(io_errno(fs::hard_link(m.path("f"), m.path("g"))), libc::EPERM);
    assert!(!m.path("g").exists());
}

#[test]
fn mkdir_creates_with_the_mode_and_reports_the_required_errors() {
    let m = Mounted::new();
    // SAFETY: valid paths; plain syscalls.
    unsafe {
        let old = libc::umask(0o022);
        assert_eq!(errno_of(libc::mkdir(c(&m.path("d")).as_ptr(), 0o777)), 0);
        libc::umask(old);
        assert_eq!(errno_of(libc::mkdir(c(&m.path("d")).as_ptr(), 0o755)), libc::EEXIST);
        assert_eq!(errno_of(libc::mkdir(c(&m.path("no/such")).as_ptr(), 0o755)), libc::ENOENT);
    }
    assert_eq!(fs::metadata(m.path("d")).unwrap().permissions().mode() & 0o777, 0o755, "umask applies");
    fs::write(m.path("file"), "").unwrap();
    assert_eq!(io_errno(fs::create_dir(m.path("file/sub"))), libc::ENOTDIR);
    assert_eq!(io_errno(fs::create_dir(m.path("file"))), libc::EEXIST);
}

#[test]
fn mkfifo_and_device_nodes_are_not_supported() {
    let m = Mounted::new();
    // SAFETY: valid paths; plain syscalls.
    unsafe {
        assert_eq!(errno_of(libc::mkfifo(c(&m.path("fifo")).as_ptr(), 0o644)), libc::EOPNOTSUPP);
        // EPERM comes from the kernel for a caller without CAP_MKNOD, ENOTSUP from the mount.
        let device = errno_of(libc::mknod(c(&m.path("dev")).as_ptr(), libc::S_IFCHR | 0o644, 0));
        assert!([libc::EOPNOTSUPP, libc::EPERM].contains(&device), "mknod of a device: errno {device}");
    }
    assert!(!m.path("fifo").exists());
}

#[test]
fn open_honours_creat_excl_trunc_append_and_directory() {
    let m = Mounted::new();
    let f = m.path("f");
    let mut new = OpenOptions::new().write(true).create_new(true).open(&f).unwrap();
    new.write_all(b"0123456789").unwrap();
    drop(new);
    assert_eq!(io_errno(OpenOptions::new().write(true).create_new(true).open(&f)), libc::EEXIST);
    assert_eq!(io_errno(File::open(m.path("missing"))), libc::ENOENT);
    assert_eq!(io_errno(OpenOptions::new().custom_flags(libc::O_DIRECTORY).read(true).open(&f)), libc::ENOTDIR);
    fs::create_dir(m.path("dir")).unwrap();
    assert_eq!(io_errno(OpenOptions::new().write(true).open(m.path("dir"))), libc::EISDIR);

    let mut a = OpenOptions::new().append(true).open(&f).unwrap();
    let mut b = OpenOptions::new().append(true).open(&f).unwrap();
    a.write_all(b"A").unwrap();
    b.write_all(b"B").unwrap();
    a.write_all(b"A").unwrap();
    assert_eq!(fs::read(&f).unwrap(), b"0123456789ABA", "every O_APPEND write lands at the end");

    OpenOptions::new().write(true).truncate(true).open(&f).unwrap();
    assert_eq!(fs::metadata(&f).unwrap().len(), 0);
    assert_eq!(m.api(m.session.read_file("/f")), "");
}

#[test]
fn pwrite_past_the_end_leaves_a_hole_of_zeros_and_reads_are_ranged() {
    let m = Mounted::new();
    let mut f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(m.path("f")).unwrap();
    f.write_all(b"head").unwrap();
    f.seek(SeekFrom::Start(100_000)).unwrap();
    f.write_all(b"tail").unwrap();
    f.sync_all().unwrap();
    let content = fs::read(m.path("f")).unwrap();
    assert_eq!(content.len(), 100_004);
    assert_eq!(&content[..4], b"head");
    assert!(content[4..100_000].iter().all(|&b| b == 0));
    f.seek(SeekFrom::Start(99_998)).unwrap();
    let mut buf = [0u8; 6];
    f.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"\0\0tail");
}

#[test]
fn rename_replaces_atomically_and_reports_the_required_errors() {
    let m = Mounted::new();
    fs::write(m.path("a"), "new").unwrap();
    fs::write(m.path("b"), "old").unwrap();
    let reader = File::open(m.path("b")).unwrap();
    fs::rename(m.path("a"), m.path("b")).unwrap();
    assert_eq!(fs::read_to_string(m.path("b")).unwrap(), "new");
    assert!(!m.path("a").exists());
    let mut old = String::new();
    (&reader).read_to_string(&mut old).unwrap();
    assert_eq!(old, "old", "a reader of the replaced file keeps reading it");

    fs::create_dir_all(m.path("d1/sub")).unwrap();
    fs::create_dir_all(m.path("d2/sub")).unwrap();
    fs::write(m.path("d2/sub/x"), "").unwrap();
    assert_eq!(io_errno(fs::rename(m.path("d1/sub"), m.path("d2/sub"))), libc::ENOTEMPTY);
    assert_eq!(io_errno(fs::rename(m.path("b"), m.path("d1/sub"))), libc::EISDIR);
    assert_eq!(io_errno(fs::rename(m.path("d1/sub"), m.path("b"))), libc::ENOTDIR);
    assert_eq!(io_errno(fs::rename(m.path("d1"), m.path("d1/sub/inside"))), libc::EINVAL);
    assert_eq!(io_errno(fs::rename(m.path("missing"), m.path("x"))), libc::ENOENT);
    fs::rename(m.path("d1"), m.path("moved")).unwrap();
    assert!(m.path("moved/sub").is_dir());
    fs::write(m.path("moved/sub/f"), "deep").unwrap();
    assert_eq!(m.api(m.session.read_file("/moved/sub/f")), "deep");
    fs::rename(m.path("d2/sub/x"), m.path("d2/sub/x")).unwrap();
}

#[test]
fn rmdir_removes_only_empty_directories() {
    let m = Mounted::new();
    fs::create_dir_all(m.path("d/sub")).unwrap();
    fs::write(m.path("f"), "").unwrap();
    assert_eq!(io_errno(fs::remove_dir(m.path("d"))), libc::ENOTEMPTY);
    assert_eq!(io_errno(fs::remove_dir(m.path("f"))), libc::ENOTDIR);
    assert_eq!(io_errno(fs::remove_dir(m.path("missing"))), libc::ENOENT);
    fs::remove_dir(m.path("d/sub")).unwrap();
    fs::remove_dir(m.path("d")).unwrap();
    assert!(!m.path("d").exists());
    assert!(!m.api(m.session.exists("/d")));
}

#[test]
fn symlinks_resolve_dangle_and_refuse_to_overwrite() {
    let m = Mounted::new();
    fs::write(m.path("target"), "content").unwrap();
    std::os::unix::fs::symlink("target", m.path("link")).unwrap();
    std::os::unix::fs::symlink("nowhere", m.path("dangling")).unwrap();
    assert_eq!(fs::read_link(m.path("link")).unwrap(), Path::new("target"));
    assert_eq!(fs::read_to_string(m.path("link")).unwrap(), "content");
    assert!(fs::symlink_metadata(m.path("dangling")).unwrap().file_type().is_symlink());
    assert_eq!(io_errno(fs::metadata(m.path("dangling"))), libc::ENOENT);
    assert_eq!(io_errno(std::os::unix::fs::symlink("x", m.path("link"))), libc::EEXIST);
    assert_eq!(io_errno(fs::read_link(m.path("target"))), libc::EINVAL);
    assert_eq!(m.api(m.session.readlink("/link")), "target");
}

#[test]
fn truncate_shrinks_and_extends_with_zeros() {
    let m = Mounted::new();
    fs::write(m.path("f"), "0123456789").unwrap();
    let f = OpenOptions::new().write(true).open(m.path("f")).unwrap();
    f.set_len(4).unwrap();
    assert_eq!(fs::read(m.path("f")).unwrap(), b"0123");
    f.set_len(8).unwrap();
    assert_eq!(fs::read(m.path("f")).unwrap(), b"0123\0\0\0\0");
    // SAFETY: valid paths; plain syscalls.
    unsafe {
        assert_eq!(errno_of(libc::truncate(c(&m.path("missing")).as_ptr(), 0)), libc::ENOENT);
        fs::create_dir(m.path("d")).unwrap();
        assert_eq!(errno_of(libc::truncate(c(&m.path("d")).as_ptr(), 0)), libc::EISDIR);
    }
}

#[test]
fn unlink_removes_files_only_and_open_files_live_on() {
    let m = Mounted::new();
    fs::write(m.path("f"), "still here").unwrap();
    let mut open = OpenOptions::new().read(true).write(true).open(m.path("f")).unwrap();
    fs::remove_file(m.path("f")).unwrap();
    assert!(!m.path("f").exists());
    assert!(!m.api(m.session.exists("/f")));
    let mut content = String::new();
    open.read_to_string(&mut content).unwrap();
    assert_eq!(content, "still here");
    open.write_all(b", and growing").unwrap();
    open.seek(SeekFrom::Start(0)).unwrap();
    content.clear();
    open.read_to_string(&mut content).unwrap();
    assert_eq!(content, "still here, and growing");
    assert_eq!(open.metadata().unwrap().nlink(), 0);
    fs::write(m.path("f"), "a new file").unwrap();
    assert_eq!(fs::read_to_string(m.path("f")).unwrap(), "a new file", "the name is free again");
    drop(open);

    fs::create_dir(m.path("d")).unwrap();
    assert_eq!(io_errno(fs::remove_file(m.path("d"))), libc::EISDIR);
    assert_eq!(io_errno(fs::remove_file(m.path("missing"))), libc::ENOENT);
}

#[test]
fn an_open_removed_file_grows_sparse() {
    use std::os::unix::fs::FileExt;
    let m = Mounted::new();
    fs::write(m.path("f"), "head").unwrap();
    let open = OpenOptions::new().read(true).write(true).open(m.path("f")).unwrap();
    fs::remove_file(m.path("f")).unwrap();
    // An exabyte, as on a filesystem with sparse files: it costs the server nothing.
    let huge = 1u64 << 62;
    open.set_len(huge).unwrap();
    open.write_all_at(b"tail", huge - 4).unwrap();
    open.write_all_at(b"mid", 100_000).unwrap();
    assert_eq!(open.metadata().unwrap().len(), huge);
    let mut buf = [1u8; 8];
    open.read_exact_at(&mut buf, huge - 8).unwrap();
    assert_eq!(&buf, b"\0\0\0\0tail");
    open.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"head\0\0\0\0", "the old bytes, then the hole");
    open.read_exact_at(&mut buf, 99_998).unwrap();
    assert_eq!(&buf, b"\0\0mid\0\0\0");
    // The largest size a file may have.
    open.write_all_at(b"z", i64::MAX as u64 - 1).unwrap();
    assert_eq!(open.metadata().unwrap().len(), i64::MAX as u64);
    open.set_len(2).unwrap();
    open.set_len(6).unwrap();
    open.read_exact_at(&mut buf[..6], 0).unwrap();
    assert_eq!(&buf[..6], b"he\0\0\0\0", "what grows again reads as zeros");
    assert!(m.path("").metadata().is_ok(), "the server is still serving");
}

#[test]
fn utimensat_sets_given_times_and_now() {
    let m = Mounted::new();
    let f = m.path("f");
    fs::write(&f, "").unwrap();
    let times = [
        libc::timespec { tv_sec: 1_000_000_000, tv_nsec: 0 },
        libc::timespec { tv_sec: 1_234_567_890, tv_nsec: 500_000_000 },
    ];
    // SAFETY: valid path and array of two timespecs.
    assert_eq!(errno_of(unsafe { libc::utimensat(libc::AT_FDCWD, c(&f).as_ptr(), times.as_ptr(), 0) }), 0);
    let meta = fs::metadata(&f).unwrap();
    assert_eq!((meta.atime(), meta.mtime(), meta.mtime_nsec()), (1_000_000_000, 1_234_567_890, 500_000_000));
    let now = [
        libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT },
        libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_NOW },
    ];
    // SAFETY: as above.
    assert_eq!(errno_of(unsafe { libc::utimensat(libc::AT_FDCWD, c(&f).as_ptr(), now.as_ptr(), 0) }), 0);
    let meta = fs::metadata(&f).unwrap();
    assert_eq!(meta.atime(), 1_000_000_000, "UTIME_OMIT leaves atime");
    let age = std::time::SystemTime::now().duration_since(meta.modified().unwrap()).unwrap_or_default();
    assert!(age.as_secs() < 60, "UTIME_NOW sets mtime to now");
    // SAFETY: as above.
    assert_eq!(
        errno_of(unsafe { libc::utimensat(libc::AT_FDCWD, c(&m.path("missing")).as_ptr(), times.as_ptr(), 0) }),
        libc::ENOENT
    );
}

#[test]
fn shared_mmap_writes_reach_the_session() {
    let m = Mounted::new();
    let f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(m.path("mapped")).unwrap();
    f.set_len(4096).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: a fresh shared mapping of a 4096-byte file, unmapped below.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        std::ptr::copy_nonoverlapping(b"mapped!".as_ptr(), p.cast::<u8>(), 7);
        assert_eq!(libc::msync(p, 4096, libc::MS_SYNC), 0);
        libc::munmap(p, 4096);
    }
    assert_eq!(&m.api(m.session.read_file("/mapped"))[..7], b"mapped!");
}

#[test]
fn statfs_answers_and_xattrs_are_not_supported() {
    let m = Mounted::new();
    fs::write(m.path("f"), "").unwrap();
    // SAFETY: valid path and out-structure.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        assert_eq!(errno_of(libc::statvfs(c(m.mnt.path()).as_ptr(), &mut st)), 0);
        assert!(st.f_bavail > 0 && st.f_namemax == 255);
        let name = CString::new("user.test").unwrap();
        let ret = libc::setxattr(c(&m.path("f")).as_ptr(), name.as_ptr(), b"v".as_ptr().cast(), 1, 0);
        assert_eq!(errno_of(ret), libc::EOPNOTSUPP);
        let mut buf = [0u8; 16];
        let ret = libc::getxattr(c(&m.path("f")).as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len());
        assert_eq!(errno_of(ret as i32), libc::EOPNOTSUPP);
    }
}
