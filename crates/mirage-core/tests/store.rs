//! The persistent store: sessions survive a restart, and a process killed with SIGKILL in
//! the middle of writes and commits loses nothing it reported done.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use mirage_core::{CommitOptions, ErrorKind, MemoryResource, Mirage, MountOptions};

fn mount_data(m: &Mirage) {
    m.mount("/data", Arc::new(MemoryResource::new()), MountOptions::default()).unwrap();
}

#[tokio::test]
async fn sessions_and_forks_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let m = Mirage::open(dir.path()).unwrap();
        mount_data(&m);
        let root = m.create_session("main").unwrap();
        root.write_file("/data/base", "base").await.unwrap();
        root.chdir("/data").await.unwrap();
        root.set_env("AGENT", Some("codex")).unwrap();
        let fork = root.fork_named("try").unwrap();
        fork.write_file("notes", "in the fork").await.unwrap();
        fork.write("/data/base", 4, "+more").await.unwrap();
    }
    let m = Mirage::open(dir.path()).unwrap();
    mount_data(&m);
    let names: Vec<String> = m.sessions().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["main", "try"]);
    let (root, fork) = (m.session("main").unwrap(), m.session("try").unwrap());
    assert_eq!(fork.cwd().unwrap().as_str(), "/data");
    assert_eq!(fork.env().unwrap().get("AGENT").map(String::as_str), Some("codex"));
    assert_eq!(fork.read_file("notes").await.unwrap(), "in the fork");
    assert_eq!(fork.read_file("/data/base").await.unwrap(), "base+more");
    assert!(!root.exists("/data/notes").await.unwrap(), "still isolated after reopening");
    fork.commit(CommitOptions::default()).await.unwrap();
    assert_eq!(root.read_file("/data/base").await.unwrap(), "base+more");
}

fn content(i: usize) -> String {
    format!("file {i} ").repeat(i % 50 + 1)
}

/// Run as a child process by `kill_9_mid_commit_loses_nothing_reported`: forks, writes
/// and commits until it is killed, printing each completed commit.
#[tokio::test]
#[ignore = "a child process of the crash test"]
async fn crash_child() {
    let Ok(dir) = std::env::var("MIRAGE_CRASH_STORE") else { return };
    let m = Mirage::open(&dir).unwrap();
    mount_data(&m);
    let root = m.session("main").or_else(|_| m.create_session("main")).unwrap();
    let start = root.read_dir("/data").await.unwrap().len();
    for i in start.. {
        let fork = root.fork().unwrap();
        fork.write_file(&format!("/data/{i}"), content(i)).await.unwrap();
        fork.append(&format!("/data/{i}"), "!").await.unwrap();
        fork.commit(CommitOptions::default()).await.unwrap();
        fork.abort().unwrap();
        println!("committed {i}");
    }
}

#[test]
fn kill_9_mid_commit_loses_nothing_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut reported = None;
    for (round, wait_for) in [7usize, 19, 33].into_iter().enumerate() {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--ignored", "--nocapture", "--test-threads=1"])
            .env("MIRAGE_CRASH_STORE", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0;
        while let Some(Ok(line)) = lines.next() {
            // libtest prints "test NAME ... " before the test's own first line.
            if let Some((_, n)) = line.split_once("committed ") {
                reported = Some(n.parse::<usize>().unwrap());
                seen += 1;
                if seen == wait_for {
                    break;
                }
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(seen == wait_for, "round {round}: the child died early after {seen} commits");
        // A write cut short by a crash leaves a torn record at the tail: it must be dropped.
        use std::io::Write;
        let mut journal = std::fs::OpenOptions::new().append(true).open(dir.path().join("journal")).unwrap();
        journal.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, 5, 6]).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let m = Mirage::open(dir.path()).unwrap();
            mount_data(&m);
            let root = m.session("main").unwrap();
            for i in 0..=reported.unwrap() {
                let got = root.read_to_string(&format!("/data/{i}")).await.unwrap();
                assert_eq!(got, content(i) + "!", "round {round}: file {i}");
            }
        });
    }
}

/// A resource whose `stat` waits for a signal, to hold an operation in flight.
#[derive(Debug, Default)]
struct Gate {
    inner: MemoryResource,
    open: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl mirage_core::Resource for Gate {
    fn capabilities(&self) -> mirage_core::Capabilities {
        self.inner.capabilities()
    }
    async fn stat(&self, path: &mirage_core::VPath) -> mirage_core::Result<mirage_core::Metadata> {
        if !path.is_root() {
            self.open.notified().await;
        }
        self.inner.stat(path).await
    }
    async fn read(&self, path: &mirage_core::VPath, offset: u64, len: u64) -> mirage_core::Result<bytes::Bytes> {
        self.inner.read(path, offset, len).await
    }
    async fn list(&self, path: &mirage_core::VPath) -> mirage_core::Result<Vec<mirage_core::DirEntry>> {
        self.inner.list(path).await
    }
}

#[tokio::test]
async fn a_session_aborted_under_a_write_in_flight_leaves_the_store_openable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let m = Mirage::open(dir.path()).unwrap();
        let gate = Arc::new(Gate::default());
        m.mount("/g", gate.clone(), MountOptions::default()).unwrap();
        let main = m.create_session("main").unwrap();
        let fork = main.fork().unwrap();
        let writer = {
            let fork = fork.clone();
            tokio::spawn(async move { fork.write_file("/g/file", "late").await })
        };
        tokio::task::yield_now().await;
        fork.abort().unwrap();
        gate.open.notify_one();
        let e = writer.await.unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        m.flush().unwrap();
    }
    let m = Mirage::open(dir.path()).unwrap();
    assert_eq!(m.sessions().into_iter().map(|s| s.name).collect::<Vec<_>>(), ["main"]);
}

fn expected(i: usize) -> String {
    format!("file {i} written through the session\n")
}

/// Run as a child process by `kill_9_mid_root_commit_loses_nothing`: writes files in a
/// session over a host directory and commits them to it, until killed.
#[tokio::test]
#[ignore = "a child process of the crash test"]
async fn root_commit_child() {
    let (Ok(store), Ok(target)) = (std::env::var("MIRAGE_CRASH_STORE"), std::env::var("MIRAGE_CRASH_TARGET")) else {
        return;
    };
    let m = Mirage::open(&store).unwrap();
    m.mount("/w", Arc::new(mirage_core::LocalResource::new(&target).unwrap()), MountOptions::default()).unwrap();
    let s = m.create_session("main").unwrap();
    for i in 0..300 {
        s.write_file(&format!("/w/{i}"), expected(i)).await.unwrap();
    }
    m.flush().unwrap();
    println!("committing");
    s.commit(CommitOptions::default()).await.unwrap();
    println!("committed");
}

#[test]
fn kill_9_mid_root_commit_loses_nothing() {
    // Delays grow until a few kills have landed in the middle of the commit, whatever the
    // machine's speed.
    let mut killed_midway = 0;
    for delay_ms in [0u64, 2, 5, 10, 20, 40, 80, 160, 320, 640] {
        if killed_midway >= 3 {
            break;
        }
        let (store, target) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "root_commit_child", "--ignored", "--nocapture", "--test-threads=1"])
            .env("MIRAGE_CRASH_STORE", store.path())
            .env("MIRAGE_CRASH_TARGET", target.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        while let Some(Ok(line)) = lines.next() {
            // libtest prints "test NAME ... " before the test's own first line.
            if line.ends_with("committing") {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        let on_disk_at_kill = std::fs::read_dir(target.path())
            .unwrap()
            .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().parse::<usize>().is_ok()))
            .count();
        eprintln!("killed after {delay_ms} ms with {on_disk_at_kill} entries on disk");
        killed_midway += usize::from((1..300).contains(&on_disk_at_kill));

        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let m = Mirage::open(store.path()).unwrap();
            let local = mirage_core::LocalResource::new(target.path()).unwrap();
            m.mount("/w", Arc::new(local), MountOptions::default()).unwrap();
            let s = m.session("main").unwrap();
            for i in 0..300 {
                assert_eq!(s.read_to_string(&format!("/w/{i}")).await.unwrap(), expected(i), "the session keeps {i}");
            }
            match s.commit(CommitOptions::default()).await {
                Ok(_) => {
                    for i in 0..300 {
                        let on_disk = std::fs::read_to_string(target.path().join(i.to_string())).unwrap();
                        assert_eq!(on_disk, expected(i), "delay {delay_ms} ms: file {i}");
                    }
                }
                Err(e) => {
                    // Only the path in flight can be written but unrecorded, and what is on
                    // disk there is the session's own content.
                    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
                    assert_eq!(e.conflicts().len(), 1, "{e}");
                    let i: usize = e.conflicts()[0].file_name().unwrap().parse().unwrap();
                    let on_disk = std::fs::read_to_string(target.path().join(i.to_string())).unwrap();
                    assert_eq!(on_disk, expected(i));
                }
            }
        });
    }
    assert!(killed_midway > 0, "no kill landed in the middle of the commit");
}

#[tokio::test]
async fn two_openers_of_one_store_see_each_other_and_the_first_commit_wins() {
    // Two handles on one store stand for two processes: each keeps its own state and journal
    // descriptor (and its own lock on it).
    let dir = tempfile::tempdir().unwrap();
    let a = Mirage::open(dir.path()).unwrap();
    mount_data(&a);
    let main = a.create_session("main").unwrap();
    main.write_file("/data/shared", "base").await.unwrap();
    let b = Mirage::open(dir.path()).unwrap();
    mount_data(&b);
    let main_b = b.session("main").unwrap();
    assert_eq!(main_b.read_file("/data/shared").await.unwrap(), "base", "b sees what a recorded");
    let (fa, fb) = (main.fork_named("fa").unwrap(), main_b.fork_named("fb").unwrap());
    assert_ne!(fa.name().unwrap(), fb.name().unwrap());
    fa.write_file("/data/shared", "from a").await.unwrap();
    fb.write_file("/data/shared", "from b").await.unwrap();
    fb.write_file("/data/only-b", "b").await.unwrap();
    let names: Vec<String> = a.sessions().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["main", "fa", "fb"], "a sees b's fork");
    fa.commit(CommitOptions::default()).await.unwrap();
    let lost = fb.commit(CommitOptions::default()).await.unwrap_err();
    assert_eq!(lost.kind(), ErrorKind::Conflict, "b's commit sees a's: {lost}");
    assert_eq!(lost.conflicts().iter().map(|p| p.as_str()).collect::<Vec<_>>(), ["/data/shared"]);
    assert_eq!(fb.read_file("/data/only-b").await.unwrap(), "b", "the loser keeps its work");
    assert_eq!(main_b.read_file("/data/shared").await.unwrap(), "from a");
    drop((a, b));
    let reopened = Mirage::open(dir.path()).unwrap();
    mount_data(&reopened);
    assert_eq!(reopened.session("main").unwrap().read_file("/data/shared").await.unwrap(), "from a");
    assert_eq!(reopened.session("fb").unwrap().read_file("/data/only-b").await.unwrap(), "b");
}

#[tokio::test]
async fn a_store_with_no_session_left_starts_its_journal_over_and_ids_carry_on() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let a = Mirage::open(dir.path()).unwrap();
    mount_data(&a);
    let old = a.create_session("old").unwrap();
    old.write_file("/data/big", vec![7u8; 1 << 20]).await.unwrap();
    let old_name = old.name().unwrap();
    assert!(std::fs::metadata(&journal).unwrap().len() > 1 << 20);
    old.abort().unwrap();
    assert!(std::fs::metadata(&journal).unwrap().len() < 1024, "no session left: started over");
    let b = Mirage::open(dir.path()).unwrap();
    mount_data(&b);
    // Both read the new journal from the start; no id is handed out twice.
    let fresh = a.create_session("fresh").unwrap();
    fresh.write_file("/data/x", "x").await.unwrap();
    assert_eq!(old.name().unwrap_err().kind(), ErrorKind::NotFound, "{old_name} stays gone");
    assert_eq!(b.session("fresh").unwrap().read_file("/data/x").await.unwrap(), "x");
    assert_eq!(a.sessions().len(), 1);
    drop((a, b));
    let reopened = Mirage::open(dir.path()).unwrap();
    mount_data(&reopened);
    assert_eq!(reopened.session("fresh").unwrap().read_file("/data/x").await.unwrap(), "x");
}

#[tokio::test]
async fn a_journal_of_mostly_dead_records_is_compacted_and_keeps_every_session_and_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let a = Mirage::open(dir.path()).unwrap();
    mount_data(&a);
    let main = a.create_session("main").unwrap();
    main.write_file("/data/shared", "base").await.unwrap();
    let (fa, fb) = (main.fork_named("fa").unwrap(), main.fork_named("fb").unwrap());
    fb.write_file("/data/shared", "from b").await.unwrap();
    fa.write_file("/data/shared", "from a").await.unwrap();
    fa.commit(CommitOptions::default()).await.unwrap();
    // The same 1 MiB file rewritten 24 times: 24 MiB of journal, 1 MiB of it live.
    for i in 0..24u8 {
        main.write_file("/data/big", vec![i; 1 << 20]).await.unwrap();
    }
    fb.write_file("/data/only-b", "b").await.unwrap();
    // Compacted as it grew, by the writer itself; a second opener reads the new journal.
    let size = std::fs::metadata(&journal).unwrap().len();
    assert!(size < 4 << 20, "compacted to {size} bytes");
    let b = Mirage::open(dir.path()).unwrap();
    mount_data(&b);
    for m in [&a, &b] {
        let names: Vec<String> = m.sessions().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["main", "fa", "fb"]);
        assert_eq!(m.session("main").unwrap().read_file("/data/big").await.unwrap(), vec![23u8; 1 << 20]);
        assert_eq!(m.session("fb").unwrap().read_file("/data/only-b").await.unwrap(), "b");
        assert_eq!(m.session("main").unwrap().read_file("/data/shared").await.unwrap(), "from a");
    }
    // What fb started from survived: its commit still conflicts with fa's.
    let lost = b.session("fb").unwrap().commit(CommitOptions::default()).await.unwrap_err();
    assert_eq!(lost.kind(), ErrorKind::Conflict, "{lost}");
    // The first opener goes on writing into the new journal, and a reopen sees it all.
    main.write_file("/data/after", "after").await.unwrap();
    drop((a, b));
    let reopened = Mirage::open(dir.path()).unwrap();
    mount_data(&reopened);
    let main = reopened.session("main").unwrap();
    assert_eq!(main.read_file("/data/after").await.unwrap(), "after");
    assert_eq!(main.read_file("/data/shared").await.unwrap(), "from a");
    assert_eq!(reopened.session("fb").unwrap().read_file("/data/shared").await.unwrap(), "from b");
}

#[tokio::test]
async fn a_dropped_session_takes_its_records_with_it_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let len = || std::fs::metadata(&journal).unwrap().len();
    let m = Mirage::open(dir.path()).unwrap();
    mount_data(&m);
    let kept = m.create_session("kept").unwrap();
    kept.write_file("/data/kept", "kept").await.unwrap();
    // A run that wrote 4 MiB and is then discarded.
    let run = m.create_session("run").unwrap();
    for i in 0..4 {
        run.write_file(&format!("/data/f{i}"), vec![7u8; 1 << 20]).await.unwrap();
    }
    assert!(len() > 4 << 20);
    run.abort().unwrap();
    assert!(len() < 64 << 10, "compacted when the run was dropped, not at the next open: {} bytes", len());
    // A live session of 2 MiB: dropping a small one is not worth a rewrite.
    let big = m.create_session("big").unwrap();
    big.write_file("/data/big", vec![1u8; 2 << 20]).await.unwrap();
    let small = m.create_session("small").unwrap();
    small.write_file("/data/small", "x").await.unwrap();
    let before = len();
    small.abort().unwrap();
    assert!(len() >= before, "a journal of mostly live records is left as it is");
    drop(m);
    let reopened = Mirage::open(dir.path()).unwrap();
    mount_data(&reopened);
    let names: Vec<String> = reopened.sessions().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["kept", "big"]);
    assert_eq!(reopened.session("kept").unwrap().read_file("/data/kept").await.unwrap(), "kept");
    assert_eq!(reopened.session("big").unwrap().read_file("/data/big").await.unwrap(), vec![1u8; 2 << 20]);
}

#[tokio::test]
async fn a_session_rewriting_a_file_without_end_keeps_its_journal_small() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let m = Mirage::open(dir.path()).unwrap();
    mount_data(&m);
    let s = m.create_session("loop").unwrap();
    s.write_file("/data/f", "").await.unwrap();
    let mut largest = 0;
    // 64 MiB written into one 256 KiB file, a chunk at a time, as a tool rewriting it would.
    for i in 0..1024u64 {
        s.write("/data/f", (i % 4) * 65536, vec![i as u8; 65536]).await.unwrap();
        largest = largest.max(std::fs::metadata(&journal).unwrap().len());
    }
    assert!(largest < 4 << 20, "compacted as it grew, not only when a session ends: {largest} bytes");
    drop(s);
    drop(m);
    let reopened = Mirage::open(dir.path()).unwrap();
    mount_data(&reopened);
    let content = reopened.session("loop").unwrap().read_file("/data/f").await.unwrap();
    let expected: Vec<u8> = (1020..1024u64).flat_map(|i| vec![i as u8; 65536]).collect();
    assert_eq!(content, expected, "the last writes survive the compactions");
}

#[tokio::test]
async fn an_opener_compacts_a_large_journal_of_mostly_dead_records() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let m = Mirage::open(dir.path()).unwrap();
    mount_data(&m);
    let s = m.create_session("big").unwrap();
    s.write_file("/data/f", "").await.unwrap();
    // A 10 MiB file, then rewritten twice: the writer's last try (at 16 MiB, most of it live
    // then) puts its next at 32 MiB, so it leaves some 30 MiB, two thirds of it dead.
    for round in 0..3u8 {
        for mib in 0..10u64 {
            s.write("/data/f", mib << 20, vec![round; 1 << 20]).await.unwrap();
        }
    }
    let before = std::fs::metadata(&journal).unwrap().len();
    assert!(before > 28 << 20, "{before} bytes");
    drop(s);
    drop(m);
    let reopened = Mirage::open(dir.path()).unwrap();
    mount_data(&reopened);
    let after = std::fs::metadata(&journal).unwrap().len();
    assert!(after < 11 << 20, "compacted on open: {after} bytes");
    assert_eq!(reopened.session("big").unwrap().read_file("/data/f").await.unwrap(), vec![2u8; 10 << 20]);
}

#[tokio::test]
async fn a_compaction_by_another_process_keeps_watchers_and_change_counters_going() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let a = Mirage::open(dir.path()).unwrap();
    mount_data(&a);
    let kept = a.create_session("kept").unwrap();
    let doomed = a.create_session("doomed").unwrap();
    kept.write_file("/data/f", "one").await.unwrap();
    let counter = kept.changes().unwrap();
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let _watch = {
        let heard = heard.clone();
        kept.watch(move |notice| heard.lock().unwrap().push(format!("{notice:?}"))).unwrap()
    };
    let doomed_heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let _doomed_watch = {
        let heard = doomed_heard.clone();
        doomed.watch(move |notice| heard.lock().unwrap().push(notice == mirage_core::Notice::Ended)).unwrap()
    };
    // Another process changes `kept`, ends `doomed`, and drops a large run: it compacts.
    let b = Mirage::open(dir.path()).unwrap();
    mount_data(&b);
    b.session("kept").unwrap().write_file("/data/f", "two").await.unwrap();
    b.session("doomed").unwrap().abort().unwrap();
    let run = b.create_session("run").unwrap();
    run.write_file("/data/big", vec![1u8; 2 << 20]).await.unwrap();
    run.abort().unwrap();
    assert!(std::fs::metadata(dir.path().join("journal")).unwrap().len() < 64 << 10, "compacted");
    // This process reads the new journal from the start at its next look.
    let seen = counter.load(Ordering::Acquire);
    assert_eq!(kept.read_file("/data/f").await.unwrap(), "two");
    assert_ne!(counter.load(Ordering::Acquire), seen, "the counter a cache holds moved");
    kept.write_file("/data/g", "mine").await.unwrap();
    let heard_now = heard.lock().unwrap().clone();
    assert!(heard_now.iter().any(|n| n.contains("/data/f")), "heard what the other process changed: {heard_now:?}");
    assert_eq!(*doomed_heard.lock().unwrap(), [true], "heard that its session ended");
    // Later changes by the other process still move the same counter.
    let seen = counter.load(Ordering::Acquire);
    b.session("kept").unwrap().write_file("/data/f", "three").await.unwrap();
    assert_eq!(kept.read_file("/data/f").await.unwrap(), "three");
    assert_ne!(counter.load(Ordering::Acquire), seen, "still the counter that moves");
}

#[tokio::test]
async fn a_journal_damaged_in_the_middle_or_from_another_version_is_refused_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    {
        let m = Mirage::open(dir.path()).unwrap();
        mount_data(&m);
        let s = m.create_session("main").unwrap();
        s.write_file("/data/a", "first").await.unwrap();
        s.write_file("/data/b", "second").await.unwrap();
        s.flush().unwrap();
    }
    let good = std::fs::read(&journal).unwrap();
    // A whole record (its checksum holds) that this version cannot read.
    let junk: &[u8] = &[0xff, 0xff, 0xff, 0xff, b'?', b'?'];
    let mut foreign = good.clone();
    foreign.extend_from_slice(&(junk.len() as u32).to_le_bytes());
    foreign.extend_from_slice(&crc32fast::hash(junk).to_le_bytes());
    foreign.extend_from_slice(junk);
    std::fs::write(&journal, &foreign).unwrap();
    let e = Mirage::open(dir.path()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("another version"), "{e}");
    assert_eq!(std::fs::read(&journal).unwrap(), foreign, "left as it is");
    // A damaged byte in an early record, with records after it.
    let mut damaged = good.clone();
    let middle = 17 + 12;
    damaged[middle] ^= 0xff;
    std::fs::write(&journal, &damaged).unwrap();
    let e = Mirage::open(dir.path()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_eq!(std::fs::read(&journal).unwrap(), damaged, "left as it is");
    // A torn last record is still dropped, as after a crash.
    std::fs::write(&journal, &good[..good.len() - 3]).unwrap();
    let m = Mirage::open(dir.path()).unwrap();
    mount_data(&m);
    assert_eq!(m.session("main").unwrap().read_file("/data/a").await.unwrap(), "first");
}
