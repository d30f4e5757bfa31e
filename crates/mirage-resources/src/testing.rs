//! Real servers for tests and benchmarks (enable the `testing` feature), each started on a
//! free port of 127.0.0.1 and killed when dropped:
//!
//! - [`Moto`]: `moto_server` for S3. The test command installs it into the workspace's
//!   `.venv`; `MIRAGE_MOTO_SERVER` names another one.
//! - [`Apache`]: Apache httpd with mod_dav for WebDAV (Debian's `apache2` package);
//!   `MIRAGE_APACHE` names another binary and `MIRAGE_APACHE_MODULES` its modules directory.

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

/// The user and password [`Apache`] accepts.
pub const DAV_USER: &str = "test";
/// The password of [`DAV_USER`].
pub const DAV_PASSWORD: &str = "secret";
/// `Basic` credentials for `test:secret`, as another client sends them.
const DAV_AUTH: &str = "Basic dGVzdDpzZWNyZXQ=";
/// The password file line for `test:secret` (`{SHA}` and the base64 of its SHA-1).
const DAV_HTPASSWD: &str = "test:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n";

/// A running Apache httpd serving WebDAV (mod_dav, mod_dav_fs) from a fresh directory at
/// `/dav/` (and again at `/whole/`, where it ignores `Range` headers), and from another one
/// where Nextcloud keeps user `test`'s files (`/remote.php/dav/files/test/`), all behind basic
/// authentication as [`DAV_USER`]:[`DAV_PASSWORD`]. Every request is logged, for
/// [`Apache::requests`].
pub struct Apache {
    child: Option<Child>,
    /// The port it listens on.
    pub port: u16,
    dir: tempfile::TempDir,
}

/// One request [`Apache`] answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DavRequest {
    /// `PROPFIND`, `GET`, `PUT`, ...
    pub method: String,
    /// The URL path.
    pub path: String,
    /// The status it answered.
    pub status: u16,
    /// The body came in chunks (streamed, of no length announced up front).
    pub chunked: bool,
}

/// The `apache2` (or `httpd`) binary to run.
fn apache_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MIRAGE_APACHE") {
        return path.into();
    }
    ["/usr/sbin/apache2", "/usr/sbin/httpd"].iter().map(PathBuf::from).find(|p| p.exists()).unwrap_or("apache2".into())
}

/// The directory of Apache's loadable modules.
fn apache_modules() -> PathBuf {
    if let Some(path) = std::env::var_os("MIRAGE_APACHE_MODULES") {
        return path.into();
    }
    ["/usr/lib/apache2/modules", "/usr/lib64/httpd/modules", "/usr/lib/httpd/modules"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("mod_dav.so").exists())
        .unwrap_or_else(|| panic!("Apache's mod_dav not found: install apache2, or set MIRAGE_APACHE_MODULES"))
}

impl Apache {
    /// Starts a server on a free port.
    pub fn start() -> Apache {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};

        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for sub in ["www", "dav", "nextcloud", "lock"] {
            std::fs::create_dir(root.join(sub)).unwrap();
        }
        // Started as root, Apache serves as www-data, which must reach and change the data.
        let as_root = std::fs::metadata(root).unwrap().uid() == 0;
        if as_root {
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
            let status = Command::new("chown")
                .args(["-R", "www-data:www-data"])
                .args(["dav", "nextcloud", "lock"].map(|sub| root.join(sub)))
                .status()
                .unwrap();
            assert!(status.success(), "chown www-data failed");
        }
        std::fs::write(root.join("htpasswd"), DAV_HTPASSWD).unwrap();
        let port = free_port();
        let modules = apache_modules();
        let module = |name: &str, file: &str| {
            format!(
                "<IfModule !{name}_module>\nLoadModule {name}_module {}\n</IfModule>\n",
                modules.join(file).display()
            )
        };
        let mut conf = String::new();
        for (name, file) in [
            ("mpm_event", "mod_mpm_event.so"),
            ("unixd", "mod_unixd.so"),
            ("log_config", "mod_log_config.so"),
            ("authz_core", "mod_authz_core.so"),
            ("authn_core", "mod_authn_core.so"),
            ("authn_file", "mod_authn_file.so"),
            ("auth_basic", "mod_auth_basic.so"),
            ("authz_user", "mod_authz_user.so"),
            ("alias", "mod_alias.so"),
            ("dav", "mod_dav.so"),
            ("dav_fs", "mod_dav_fs.so"),
        ] {
            conf.push_str(&module(name, file));
        }
        let r = root.display();
        if as_root {
            conf.push_str("User www-data\nGroup www-data\n");
        }
        conf.push_str(&format!(
            r#"ServerRoot "{r}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{r}/httpd.pid"
DefaultRuntimeDir "{r}"
ErrorLog "{r}/error.log"
LogLevel warn
LogFormat "%m\t%U\t%>s\t%{{Transfer-Encoding}}i" requests
CustomLog "{r}/access.log" requests
ThreadLimit 64
ThreadsPerChild 64
MaxKeepAliveRequests 0
DavLockDB "{r}/lock/DavLock"
DocumentRoot "{r}/www"
Alias /dav "{r}/dav"
Alias /remote.php/dav/files/test "{r}/nextcloud"
Alias /whole "{r}/dav"
<Location /whole>
    MaxRanges none
</Location>
<Directory "{r}/dav">
    Dav On
    AuthType Basic
    AuthName "Mirage tests"
    AuthUserFile "{r}/htpasswd"
    Require valid-user
</Directory>
<Directory "{r}/nextcloud">
    Dav On
    AuthType Basic
    AuthName "Mirage tests"
    AuthUserFile "{r}/htpasswd"
    Require valid-user
</Directory>
"#
        ));
        let conf_path = root.join("httpd.conf");
        std::fs::write(&conf_path, conf).unwrap();
        // One process (`-X`) with many threads: a kill stops all of it.
        let child = Command::new(apache_binary())
            .arg("-f")
            .arg(&conf_path)
            .arg("-X")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(root.join("stderr.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start Apache ({e}): install apache2 (tests/run.sh does), or set MIRAGE_APACHE")
            });
        let mut apache = Apache { child: Some(child), port, dir };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = apache.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none() && start.elapsed() < Duration::from_secs(30),
                "Apache did not start: {}",
                apache.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        apache
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A `webdav://` URL for `path` below `/dav` (`""` for `/dav` itself, else starting with
    /// `/`), with the test credentials and quick retries, plus `extra` options (`&key=value...`).
    pub fn url(&self, path: &str, extra: &str) -> String {
        format!(
            "webdav://127.0.0.1:{}/dav{path}?user={DAV_USER}&password={DAV_PASSWORD}&retries=1&connect_timeout=2s{extra}",
            self.port
        )
    }

    /// A `nextcloud://` URL for user `test`'s files (plain HTTP, the password as an option,
    /// the user implied by the path), plus `extra` options.
    pub fn nextcloud_url(&self, extra: &str) -> String {
        format!("nextcloud://127.0.0.1:{}/{DAV_USER}?http=true&password={DAV_PASSWORD}{extra}", self.port)
    }

    /// Sends one request with the test credentials, as another client would, and returns the
    /// status and the body. `path` is the URL path (`/dav/...`), percent-encoded.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Vec<u8>) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        // HTTP/1.0: the answer is never chunked, and ends when the connection closes.
        let mut head = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nAuthorization: {DAV_AUTH}\r\nContent-Length: {}\r\n",
            self.port,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let split = response.windows(4).position(|w| w == b"\r\n\r\n").map_or(response.len(), |i| i + 4);
        let status_line = String::from_utf8_lossy(&response[..split]);
        let status = status_line.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
        (status, response[split..].to_vec())
    }

    /// Writes a file as another client would.
    pub fn put(&self, path: &str, body: &[u8]) {
        let (status, _) = self.request("PUT", path, &[], body);
        assert!(matches!(status, 201 | 204), "PUT {path}: {status}: {}", self.log_text());
    }

    /// Makes a collection as another client would.
    pub fn mkcol(&self, path: &str) {
        let (status, _) = self.request("MKCOL", path, &[], b"");
        assert_eq!(status, 201, "MKCOL {path}: {}", self.log_text());
    }

    /// Reads a file as another client would; `None` when it is not there.
    pub fn get(&self, path: &str) -> Option<Vec<u8>> {
        match self.request("GET", path, &[], b"") {
            (200, body) => Some(body),
            (404, _) => None,
            (status, _) => panic!("GET {path}: {status}: {}", self.log_text()),
        }
    }

    /// What the server wrote to its error logs.
    pub fn log_text(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("error.log"))
    }

    /// The requests the server has answered so far. The server logs a request just after
    /// answering it, so this waits until the log stops growing.
    pub fn requests(&self) -> Vec<DavRequest> {
        let read = || std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        let mut text = read();
        loop {
            std::thread::sleep(Duration::from_millis(60));
            let again = read();
            if again.len() == text.len() {
                break;
            }
            text = again;
        }
        text.lines()
            .filter_map(|line| {
                let mut fields = line.split('\t');
                Some(DavRequest {
                    method: fields.next()?.to_owned(),
                    path: fields.next()?.to_owned(),
                    status: fields.next()?.parse().ok()?,
                    chunked: fields.next().is_some_and(|te| te.contains("chunked")),
                })
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

impl Drop for Apache {
    fn drop(&mut self) {
        self.kill();
    }
}
