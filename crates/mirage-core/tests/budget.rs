//! The limit on the content sessions hold in memory (`mirage_core::budget`).
//!
//! The limit is process-wide, so this file holds a single test that walks through every case
//! in turn (each test file is a process of its own).

use std::sync::Arc;

use mirage_core::{
    CommitOptions, ENTRY_COST, ErrorKind, LocalResource, MemoryResource, Mirage, MountOptions, content_held,
    content_refusals, set_content_limit,
};

const KIB: u64 = 1024;

/// What an entry at `path` counts for: `ENTRY_COST` and its path three times.
fn entry(path: &str) -> u64 {
    ENTRY_COST + 3 * path.len() as u64
}

fn kib(n: u64) -> Vec<u8> {
    vec![b'x'; (n * KIB) as usize]
}

#[tokio::test]
async fn sessions_hold_content_up_to_the_limit_and_get_room_back_as_it_goes() {
    let store = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    set_content_limit(Some(1024 * KIB));
    let mirage = Mirage::open(store.path()).unwrap();
    mirage.mount("/m", Arc::new(MemoryResource::new()), MountOptions::default()).unwrap();
    mirage.mount("/p", Arc::new(LocalResource::new(project.path()).unwrap()), MountOptions::default()).unwrap();
    let main = mirage.create_session("main").unwrap();

    let big = entry("/m/big");
    main.write_file("/m/big", kib(600)).await.unwrap();
    assert_eq!(content_held(), 600 * KIB + big);

    // A fork shares its parent's content: only what it writes counts. Its entries count
    // again, inherited ones included.
    let fork = main.fork().unwrap();
    assert_eq!(content_held(), 600 * KIB + 2 * big);
    fork.write_file("/m/more", kib(300)).await.unwrap();
    let both = 900 * KIB + 2 * big + entry("/m/more");
    assert_eq!(content_held(), both);

    // Past the limit a write fails as on a full disk, naming the path, and changes nothing.
    let full = fork.write_file("/m/too-much", kib(200)).await.unwrap_err();
    assert_eq!((full.kind(), full.kind().code(), full.errno()), (ErrorKind::NoSpace, "ENOSPC", libc::ENOSPC));
    assert_eq!(full.path().map(|p| p.as_str()), Some("/m/too-much"), "{full}");
    assert!(!fork.exists("/m/too-much").await.unwrap());
    let full = fork.write("/m/more", 300 * KIB, kib(200)).await.unwrap_err();
    assert_eq!(full.kind(), ErrorKind::NoSpace, "{full}");
    assert_eq!(fork.stat("/m/more").await.unwrap().size, 300 * KIB, "a refused write extends nothing");
    assert_eq!(content_held(), both);
    assert_eq!(content_refusals(), 2);
    assert_eq!(fork.read_file("/m/more").await.unwrap().len() as u64, 300 * KIB, "the fork keeps its work");

    // Aborting the fork gives its room back.
    fork.abort().unwrap();
    drop(fork);
    assert_eq!(content_held(), 600 * KIB + big);

    // A write into part of a chunk holds that chunk (64 KiB) anew; replacing a file gives its
    // old content's room back.
    main.write("/m/big", 10, &b"patch"[..]).await.unwrap();
    assert_eq!(content_held(), 664 * KIB + big);
    main.write_file("/m/big", &b"small"[..]).await.unwrap();
    assert_eq!(content_held(), 5 + big);

    // A file of the resource changed in a session is copied into it, and counts.
    std::fs::write(project.path().join("f"), kib(4)).unwrap();
    main.write("/p/f", 0, &b"y"[..]).await.unwrap();
    let held = 4 * KIB + 5 + big + entry("/p/f");
    assert_eq!(content_held(), held);

    // Reopening the store reads the sessions' content back, and it counts again.
    drop(main);
    drop(mirage);
    assert_eq!(content_held(), 0, "nothing is held once the sessions are gone");
    let mirage = Mirage::open(store.path()).unwrap();
    mirage.mount("/m", Arc::new(MemoryResource::new()), MountOptions::default()).unwrap();
    mirage.mount("/p", Arc::new(LocalResource::new(project.path()).unwrap()), MountOptions::default()).unwrap();
    assert_eq!(content_held(), held);
    let main = mirage.session("main").unwrap();

    // Once committed to the resources, the content is theirs and the session holds no copy,
    // only the entries that mark what it committed.
    main.commit(CommitOptions::default()).await.unwrap();
    assert_eq!(std::fs::read(project.path().join("f")).unwrap()[0], b'y');
    assert_eq!(main.read_file("/m/big").await.unwrap(), "small");
    assert_eq!(content_held(), big + entry("/p/f"));
    drop(main);
    drop(mirage);

    // Entries count too, content or not: creating empty files without end meets the limit.
    set_content_limit(Some(64 * ENTRY_COST));
    let mirage = Mirage::new();
    mirage.mount("/m", Arc::new(MemoryResource::new()), MountOptions::default()).unwrap();
    mirage.mount("/p", Arc::new(LocalResource::new(project.path()).unwrap()), MountOptions::default()).unwrap();
    let main = mirage.create_session("main").unwrap();
    let mut created = 0;
    let full = loop {
        match main.create(&format!("/m/empty-{created}"), 0o644).await {
            Ok(()) => created += 1,
            Err(e) => break e,
        }
        assert!(created <= 64, "the limit never came");
    };
    // Each counts ENTRY_COST and its path three times.
    let weight = ENTRY_COST + 3 * "/m/empty-10".len() as u64;
    assert!((64 * ENTRY_COST / (weight + 3)..=64 * ENTRY_COST / weight).contains(&created), "{created}");
    let next = format!("/m/empty-{created}");
    assert_eq!((full.kind(), full.path().map(|p| p.as_str())), (ErrorKind::NoSpace, Some(next.as_str())), "{full}");
    assert_eq!(main.mkdir("/m/dir", 0o755).await.unwrap_err().kind(), ErrorKind::NoSpace);
    assert_eq!(main.symlink("empty-0", "/m/link").await.unwrap_err().kind(), ErrorKind::NoSpace);
    // Entries and content share the limit.
    assert_eq!(main.write_file("/m/empty-1", vec![0u8; 4096]).await.unwrap_err().kind(), ErrorKind::NoSpace);
    // A full session can still remove, and rewrite what it holds.
    main.write_file("/m/empty-1", &b"still writable"[..]).await.unwrap();
    main.remove("/m/empty-0").await.unwrap();
    main.remove("/p/f").await.unwrap();
    // A fork inherits the entries; dropping it leaves the parent as it was.
    let fork = main.fork().unwrap();
    assert_eq!(fork.create("/m/more", 0o644).await.unwrap_err().kind(), ErrorKind::NoSpace);
    fork.abort().unwrap();
    main.abort().unwrap();
    let fresh = mirage.create_session("fresh").unwrap();
    fresh.create("/m/again", 0o644).await.unwrap();
    // Long link targets count for what they hold.
    let target = "t".repeat(4000);
    let mut links = 0;
    while fresh.symlink(&target, &format!("/m/link-{links}")).await.is_ok() {
        links += 1;
    }
    assert!((11..=12).contains(&links), "{links} links of 4000 bytes in 64 KiB");

    set_content_limit(None);
}
