//! Real servers for tests and benchmarks (enable the `testing` feature): `moto_server` for
//! S3, started on a free port of 127.0.0.1 and killed when dropped. The test command installs
//! it into the workspace's `.venv`; `MIRAGE_MOTO_SERVER` names another one.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto server.
pub struct Moto {
    child: Option<Child>,
    /// The port it listens on.
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// Signs nothing: moto accepts any credentials unless told otherwise, but needs an
/// `Authorization` header to tell that a request is meant for S3.
const AUTH: &str =
    "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";

/// The `moto_server` to run.
fn moto_server() -> PathBuf {
    if let Some(path) = std::env::var_os("MIRAGE_MOTO_SERVER") {
        return path.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("moto_server")
}

/// `text` without terminal colour sequences (`ESC [ ... m`).
fn strip_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Moto {
    /// Starts a server on a free port.
    pub fn start() -> Moto {
        Self::start_with(free_port(), &[])
    }

    /// Starts a server on `port` with extra environment variables.
    pub fn start_with(port: u16, env: &[(&str, &str)]) -> Moto {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("moto.log");
        let child = Command::new(moto_server())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start moto_server ({e}): run tests/run.sh, which installs it into .venv, or set MIRAGE_MOTO_SERVER")
            });
        let moto = Moto { child: Some(child), port, log, _dir: dir };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(30), "moto_server did not start: {}", moto.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An `s3://` URL for `bucket/prefix` on this server, with test credentials and quick
    /// retries, plus `extra` options (`&key=value...`).
    pub fn url(&self, bucket: &str, prefix: &str, extra: &str) -> String {
        format!(
            "s3://{bucket}/{prefix}?endpoint={}&region=us-east-1&access_key_id=test&secret_access_key=test&retries=1&retry_timeout=3s&connect_timeout=2s{extra}",
            self.endpoint()
        )
    }

    /// Sends one raw request and returns the status code.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> u16 {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: {AUTH}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
    }

    /// Creates a bucket.
    pub fn bucket(&self, name: &str) {
        let status = self.request("PUT", &format!("/{name}"), b"");
        assert_eq!(status, 200, "creating bucket {name}: {}", self.log_text());
    }

    /// Everything the server logged.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Requests the server has answered so far, as `METHOD path` lines. The server logs a
    /// request just after answering it, so this waits until the log stops growing.
    pub fn requests(&self) -> Vec<String> {
        let mut text = self.log_text();
        loop {
            std::thread::sleep(Duration::from_millis(60));
            let again = self.log_text();
            if again.len() == text.len() {
                break;
            }
            text = again;
        }
        text.lines()
            .filter_map(|line| {
                // Answers other than 200 are coloured with terminal escapes.
                let quoted = strip_escapes(line.split('"').nth(1)?);
                let mut parts = quoted.split_whitespace();
                let (method, path) = (parts.next()?, parts.next()?);
                matches!(method, "GET" | "PUT" | "POST" | "HEAD" | "DELETE").then(|| format!("{method} {path}"))
            })
            .collect()
    }

    /// Stops the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}
