//! Real programs at work on a mount of a host directory's session, each checked by what it
//! prints and by what the session holds afterwards.

mod common;

use std::fs;

use common::Mounted;

#[test]
fn git_init_add_commit_status_log() {
    let m = Mounted::new();
    let out = m.sh("git init -q -b main repo && cd repo
         printf 'one\\n' > a.txt && mkdir src && printf 'fn main() {}\\n' > src/main.rs
         git add . && git commit -qm first
         printf 'two\\n' >> a.txt && git status --porcelain
         git commit -qam second && git status --porcelain && git log --format=%s");
    assert_eq!(out, " M a.txt\nsecond\nfirst\n");
    assert_eq!(m.api(m.session.read_file("/repo/a.txt")), "one\ntwo\n");
    assert!(m.api(m.session.exists("/repo/.git/HEAD")));
}

#[test]
fn git_clone_of_a_local_repository_into_the_mount() {
    let source = tempfile::tempdir().unwrap();
    let src = source.path().display();
    let m = Mounted::new();
    m.sh(&format!(
        "cd {src} && git init -q -b main && printf 'hello\\n' > README && chmod +x README && git add . && git commit -qm init"
    ));
    let out = m.sh(&format!(
        "git clone -q {src} clone && cd clone && git log --format=%s && git status --porcelain && stat -c %a README && cat README"
    ));
    assert_eq!(out, "init\n755\nhello\n");
    let again =
        m.sh("git clone -q clone second && git -C second log --format=%s && git -C second fsck --no-progress 2>&1");
    assert_eq!(again, "init\n", "a clone inside the mount is complete and consistent");
}

#[test]
fn tar_create_and_extract() {
    let m = Mounted::new();
    m.sh(
        "mkdir -p tree/a/b && printf 'x%.0s' $(seq 1 100000) > tree/a/big && echo small > tree/a/b/s
         ln -s a/b/s tree/link && chmod 750 tree/a/b
         tar czf t.tgz tree && mkdir out && tar xzf t.tgz -C out
         diff -r tree out/tree && test \"$(readlink out/tree/link)\" = a/b/s && test \"$(stat -c %a out/tree/a/b)\" = 750",
    );
    assert_eq!(m.api(m.session.read_file("/out/tree/a/big")).len(), 100_000);
}

#[test]
fn rg_grep_and_find_over_a_tree() {
    let m = Mounted::with_host(|host| {
        for d in 0..20 {
            fs::create_dir_all(host.join(format!("d{d}"))).unwrap();
            for f in 0..25 {
                let body = if (d * 25 + f) % 50 == 0 { "the needle is here\n" } else { "hay\n" };
                fs::write(host.join(format!("d{d}/f{f}.txt")), body).unwrap();
            }
        }
    });
    m.sh("echo 'a new needle' > d3/added.txt && rm d0/f0.txt");
    let expected = "d10/f0.txt\nd12/f0.txt\nd14/f0.txt\nd16/f0.txt\nd18/f0.txt\nd2/f0.txt\nd3/added.txt\nd4/f0.txt\nd6/f0.txt\nd8/f0.txt\n";
    assert_eq!(m.sh("rg -l needle . | sed 's|^./||' | sort"), expected);
    assert_eq!(m.sh("grep -rl needle . | sed 's|^./||' | sort"), expected);
    assert_eq!(m.sh("find . -type f -name '*.txt' | wc -l").trim(), "500");
    assert_eq!(m.sh("find . -type d | wc -l").trim(), "21");
}

#[test]
fn cp_a_keeps_modes_times_and_links() {
    let m = Mounted::new();
    m.sh("mkdir -p src/sub && echo data > src/sub/file && chmod 640 src/sub/file && ln -s sub/file src/link
         touch -d '2001-02-03 04:05:06' src/sub/file
         cp -a src dst
         test \"$(stat -c '%a %Y' dst/sub/file)\" = \"$(stat -c '%a %Y' src/sub/file)\"
         test \"$(readlink dst/link)\" = sub/file && cat dst/link");
    assert_eq!(m.api(m.session.readlink("/dst/link")), "sub/file");
}

#[test]
fn sqlite3_creates_and_queries_a_database() {
    let m = Mounted::new();
    let out = m.sh("sqlite3 db.sqlite 'create table t(x integer); insert into t values (1),(2),(3);'
         sqlite3 db.sqlite 'begin; update t set x = x * 10; commit; select sum(x) from t;'
         sqlite3 db.sqlite 'pragma integrity_check;'");
    assert_eq!(out, "60\nok\n");
    assert!(!m.api(m.session.exists("/db.sqlite-journal")), "the rollback journal is gone");
}

#[test]
fn python3_venv_is_created_and_runs() {
    let m = Mounted::new();
    let out = m.sh(
        "python3 -m venv --without-pip venv && venv/bin/python -c 'import sys; print(sys.prefix != sys.base_prefix)'",
    );
    assert_eq!(out, "True\n");
    assert!(m.api(m.session.exists("/venv/pyvenv.cfg")));
}

#[test]
fn npm_install_of_a_local_package() {
    let m = Mounted::new();
    let out = m.sh("mkdir -p pkg app
         echo '{\"name\":\"greeting\",\"version\":\"1.0.0\",\"main\":\"index.js\"}' > pkg/package.json
         echo 'module.exports = (n) => `hello ${n}`' > pkg/index.js
         cd app && echo '{\"name\":\"app\",\"version\":\"1.0.0\"}' > package.json
         npm install --offline --no-audit --no-fund --install-links ../pkg >/dev/null 2>&1
         node -e 'console.log(require(\"greeting\")(\"mirage\"))'");
    assert_eq!(out, "hello mirage\n");
    assert!(m.api(m.session.exists("/app/node_modules/greeting/index.js")));
    assert!(m.api(m.session.exists("/app/package-lock.json")));
}

#[test]
fn cargo_builds_a_small_crate() {
    let m = Mounted::new();
    let out = m.sh("cargo new --quiet --vcs none hello && cd hello
         sed -i 's/Hello, world!/built in a session/' src/main.rs
         cargo build --quiet --offline && ./target/debug/hello");
    assert_eq!(out, "built in a session\n");
}
