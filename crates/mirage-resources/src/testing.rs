//! Real servers for tests and benchmarks (enable the `testing` feature), each started on a
//! free port of 127.0.0.1 and killed when dropped:
//!
//! - [`Moto`]: `moto_server` for S3. The test command installs it into the workspace's
//!   `.venv`; `MIRAGE_MOTO_SERVER` names another one.
//! - [`Apache`]: Apache httpd with mod_dav for WebDAV (Debian's `apache2` package);
//!   `MIRAGE_APACHE` names another binary and `MIRAGE_APACHE_MODULES` its modules directory.
//! - [`GitHub`]: the workspace's stand-in for GitHub's REST API (`tests/github/server.mjs`,
//!   run by Node.js), over real git repositories; `MIRAGE_GITHUB_SERVER` names another script.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process: killed (SIGKILL, as a crash would) when dropped or asked to.
struct Process(Option<Child>);

impl Process {
    /// Spawns `command` and waits until something listens on `port`; `log` says why not.
    fn start(command: &mut Command, port: u16, name: &str, log: impl Fn() -> String) -> Process {
        let child = command.stdout(Stdio::null()).spawn().unwrap_or_else(|e| panic!("cannot start {name} ({e})"));
        let mut process = Process(Some(child));
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = process.0.as_mut().and_then(|c| c.try_wait().ok().flatten());
            assert!(exited.is_none() && start.elapsed() < Duration::from_secs(30), "{name} did not start: {}", log());
            std::thread::sleep(Duration::from_millis(20));
        }
        process
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends one HTTP/1.0 request to `127.0.0.1:port` (the answer is never chunked, and ends when
/// the connection closes) and returns the status and the body.
fn raw_request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n", body.len());
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

/// A running moto server.
pub struct Moto {
    process: Process,
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

/// Runs `git ARGS` in `dir` as a fixed author, without the user's or the system's
/// configuration, and returns what it printed (trimmed); panics with git's message when it
/// fails. For making the repositories tests and benchmarks work on.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Ada")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Ada")
        .env("GIT_COMMITTER_EMAIL", "ada@example.com")
        .output()
        .unwrap_or_else(|e| panic!("cannot run git ({e})"));
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
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
        let mut command = Command::new(moto_server());
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stderr(std::fs::File::create(&log).unwrap());
        let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
        let name = "moto_server (run tests/run.sh, which installs it into .venv, or set MIRAGE_MOTO_SERVER)";
        let process = Process::start(&mut command, port, name, log_text);
        Moto { process, port, log, _dir: dir }
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
        raw_request(self.port, method, path, &[("Authorization", AUTH)], body).0
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
        self.process.kill();
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
    process: Process,
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
"#
        ));
        for served in ["dav", "nextcloud"] {
            conf.push_str(&format!(
                "<Directory \"{r}/{served}\">\n    Dav On\n    AuthType Basic\n    AuthName \"Mirage tests\"\n    AuthUserFile \"{r}/htpasswd\"\n    Require valid-user\n</Directory>\n"
            ));
        }
        let conf_path = root.join("httpd.conf");
        std::fs::write(&conf_path, conf).unwrap();
        // One process (`-X`) with many threads: a kill stops all of it.
        let mut command = Command::new(apache_binary());
        command.arg("-f").arg(&conf_path).arg("-X").stderr(std::fs::File::create(root.join("stderr.log")).unwrap());
        let log_text = || std::fs::read_to_string(root.join("error.log")).unwrap_or_default();
        let name = "Apache (install apache2, as tests/run.sh does, or set MIRAGE_APACHE)";
        let process = Process::start(&mut command, port, name, log_text);
        Apache { process, port, dir }
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
        let headers: Vec<(&str, &str)> =
            std::iter::once(("Authorization", DAV_AUTH)).chain(headers.iter().copied()).collect();
        raw_request(self.port, method, path, &headers, body)
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
        self.process.kill();
    }
}

/// A running stand-in for GitHub's REST API: `tests/github/server.mjs` under Node.js, serving
/// the git repositories at `REPOS/OWNER/REPO` (or `REPOS/OWNER/REPO.git`), bare or not, with
/// real shas, modes and sizes read through the git command line. A file named `PRIVATE` in a
/// repository's directory makes it private (404 without a valid token). It logs every API
/// request it answers, for [`GitHub::requests`]; `tests/github/README.md` tells the rest.
pub struct GitHub {
    process: Process,
    /// The port it listens on.
    pub port: u16,
    dir: tempfile::TempDir,
}

/// The server script to run.
fn github_server() -> PathBuf {
    if let Some(path) = std::env::var_os("MIRAGE_GITHUB_SERVER") {
        return path.into();
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/github/server.mjs")
}

impl GitHub {
    /// Starts a server over the repositories below `repos`, accepting any token (and no token,
    /// for public repositories), with GitHub's own limits on recursive trees.
    pub fn start(repos: &Path) -> GitHub {
        Self::start_with(repos, None, None)
    }

    /// Starts a server over the repositories below `repos`. With `token`, requests that carry
    /// credentials must carry that one (`Authorization: Bearer TOKEN` or `token TOKEN`), else
    /// they get 401; with `tree_limit`, recursive tree listings longer than that are cut short
    /// and marked `truncated`, as GitHub does past 100,000 entries.
    pub fn start_with(repos: &Path, token: Option<&str>, tree_limit: Option<usize>) -> GitHub {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut command = Command::new("node");
        command
            .arg(github_server())
            .args(["--port", &port.to_string()])
            .arg("--repos")
            .arg(repos)
            .arg("--log")
            .arg(dir.path().join("requests.log"));
        if let Some(token) = token {
            command.args(["--token", token]);
        }
        if let Some(limit) = tree_limit {
            command.args(["--tree-limit", &limit.to_string()]);
        }
        command.stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap());
        let log_text = || std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
        let process =
            Process::start(&mut command, port, "the GitHub API server (it needs Node.js 20 or newer)", log_text);
        GitHub { process, port, dir }
    }

    /// The root of the API, to give a client as its base URL: `http://127.0.0.1:PORT/`.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Sends one request, as another client would, and returns the status and the body. `path`
    /// is the URL path (`/repos/OWNER/REPO`), percent-encoded, with its query string.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Vec<u8>) {
        raw_request(self.port, method, path, headers, body)
    }

    /// The API requests the server has answered so far, as `METHOD PATH STATUS` lines (the
    /// path with its query string). The server logs a request before it answers, so the list
    /// is complete once a client has its answers. Calls to the test controls are left out.
    pub fn requests(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.dir.path().join("requests.log")).unwrap_or_default();
        log.lines().map(str::to_owned).collect()
    }

    /// Exhausts the rate limit for `retry_after` seconds: until then every API request gets
    /// `status` (403 or 429, as GitHub answers either) with `retry-after` and
    /// `x-ratelimit-remaining: 0`; then a new window starts with the full limit.
    pub fn set_rate_limit(&self, status: u16, retry_after: u64) {
        let body = format!(r#"{{"remaining":0,"retry_after":{retry_after},"status":{status}}}"#);
        let (answer, text) = self.request("POST", "/_mirage/rate-limit", &[], body.as_bytes());
        assert_eq!(answer, 200, "setting the rate limit: {}", String::from_utf8_lossy(&text));
    }

    /// What the server wrote to its standard error.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Stops the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.process.kill();
    }
}
