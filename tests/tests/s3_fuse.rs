//! A FUSE mount of a session over an S3 prefix (a real server, moto): `rg` and `cp -r` read
//! the bucket through the kernel, and a file written through the mount reaches the bucket
//! when the session commits.

mod common;

use std::sync::Arc;

use mirage_core::{CommitOptions, Resource, VPath};
use mirage_resources::testing::Moto;

use common::{mount_root, rg_files, run};

#[test]
fn rg_and_cp_work_through_a_mount_of_an_s3_prefix() {
    let moto = Moto::start();
    moto.bucket("mounted");
    for d in 0..5 {
        for f in 0..20 {
            let body = if (d * 20 + f) % 7 == 0 {
                format!("file {d}/{f}\nlet needle = 1;\n")
            } else {
                format!("file {d}/{f}\n")
            };
            assert_eq!(moto.request("PUT", &format!("/mounted/project/src{d}/f{f:02}.rs"), body.as_bytes()), 200);
        }
    }
    let url = moto.url("mounted", "project", "");
    let bucket: Arc<dyn Resource> = mirage_resources::open(&url).unwrap();
    let mounted = mount_root(bucket.clone());
    let point = mounted.point.path();

    let expected: Vec<String> =
        (0..100).filter(|n| n % 7 == 0).map(|n| format!("./src{}/f{:02}.rs", n / 20, n % 20)).collect();
    assert_eq!(rg_files("needle", point), expected);

    let copy = tempfile::tempdir().unwrap();
    run("cp", &["-r", &point.join("src3").to_string_lossy(), &copy.path().to_string_lossy()], point);
    for f in 0..20 {
        let copied = std::fs::read_to_string(copy.path().join(format!("src3/f{f:02}.rs"))).unwrap();
        assert!(copied.starts_with(&format!("file 3/{f}\n")), "{copied}");
    }

    std::fs::write(point.join("src0/new.rs"), "written through the mount\n").unwrap();
    let common::Mounted { runtime, session, mount, .. } = mounted;
    mount.unmount().unwrap();
    runtime.block_on(async {
        session.commit(CommitOptions::default()).await.unwrap();
        let body = bucket.read(&VPath::parse("/src0/new.rs").unwrap(), 0, 100).await.unwrap();
        assert_eq!(body.as_ref(), b"written through the mount\n");
    });
}
