//! Talking to the server: requests with the credentials and time limits, retries for those
//! that only read, uploads streamed under a watchdog, and HTTP answers turned into Mirage's
//! errors, each naming the server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use mirage_core::{ByteStream, Error, ErrorKind, Result, VPath};
use reqwest::header::{CONTENT_TYPE, LOCATION};
use reqwest::{Body, Method, RequestBuilder, Response, StatusCode};
use url::Url;

use super::config::{Target, WebDavOptions};
use super::multistatus::{self, Entry, PROPFIND_BODY};
use crate::options::invalid;

/// The pause before the first retry; each further one doubles it.
const BACKOFF: Duration = Duration::from_millis(100);

/// What to tell someone whose credentials the server refused.
const CREDENTIALS_HINT: &str = "check the credentials: the user and password options, or WEBDAV_USER and \
     WEBDAV_PASSWORD (for Nextcloud, an app password)";

/// One WebDAV server and the collection on it that is the resource's root.
pub(super) struct Server {
    http: reqwest::Client,
    /// The root collection's URL, ending in `/`.
    base: Url,
    /// The base URL's path, one decoded string per segment.
    base_segments: Vec<String>,
    user: Option<String>,
    password: Option<String>,
    timeout: Duration,
    retries: usize,
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

/// `error` and its sources, as one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A method WebDAV adds to HTTP.
pub(super) fn method(name: &'static str) -> Method {
    Method::from_bytes(name.as_bytes()).expect("WebDAV method names are valid tokens")
}

impl Server {
    /// A client for `target`; nothing is sent yet.
    pub(super) fn new(target: Target, options: &WebDavOptions) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            // A redirect is reported (with where it points), not followed: the credentials are
            // for this server, and a moved collection should be mounted where it now lives.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| invalid(format!("cannot set up an HTTP client for {}: {}", target.base, chain(&e))))?;
        let base_segments = target.base.path_segments().into_iter().flatten().filter(|s| !s.is_empty()).map(decode);
        Ok(Server {
            http,
            base_segments: base_segments.collect(),
            base: target.base,
            user: target.user,
            password: target.password,
            timeout: options.timeout,
            retries: options.retries,
        })
    }

    /// The root collection's URL.
    pub(super) fn base(&self) -> &Url {
        &self.base
    }

    /// The URL of `path`; a collection's ends in `/`.
    pub(super) fn url(&self, path: &VPath, collection: bool) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(path.components());
            if collection || path.is_root() {
                segments.push("");
            }
        }
        url
    }

    /// The components of the resource path an `href` of a PROPFIND answer stands for (it may
    /// be a full URL, an absolute path or a relative one); `None` when it lies outside the
    /// root collection.
    pub(super) fn inner_components(&self, href: &str) -> Option<Vec<String>> {
        let url = self.base.join(href).ok()?;
        let segments: Vec<String> = url.path_segments()?.filter(|s| !s.is_empty()).map(decode).collect();
        segments.strip_prefix(self.base_segments.as_slice()).map(<[String]>::to_vec)
    }

    /// A request for `url`, with the credentials.
    pub(super) fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let request = self.http.request(method, url);
        match &self.user {
            Some(user) => request.basic_auth(user, self.password.as_deref()),
            None => request,
        }
    }

    /// Sends `request` once, within the time limit.
    pub(super) async fn send(&self, op: &'static str, path: &VPath, request: RequestBuilder) -> Result<Response> {
        request.timeout(self.timeout).send().await.map_err(|e| self.unreachable(op, path, &e))
    }

    /// Sends the request `build` makes, and again after a connection failure or an answer
    /// that asks to come back later, up to `retries` more times: for requests that only read.
    pub(super) async fn send_retrying(
        &self,
        op: &'static str,
        path: &VPath,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response> {
        let mut attempt = 0;
        loop {
            let result = build().timeout(self.timeout).send().await;
            let again = match &result {
                Ok(response) => matches!(response.status().as_u16(), 429 | 502 | 503 | 504),
                Err(e) => e.is_connect() || e.is_timeout() || e.is_request(),
            };
            if !again || attempt >= self.retries {
                return result.map_err(|e| self.unreachable(op, path, &e));
            }
            tokio::time::sleep(BACKOFF * 2u32.saturating_pow(attempt as u32)).await;
            attempt += 1;
        }
    }

    /// Sends `request` with `content` streamed as its body, and returns the answer and the
    /// number of bytes sent. There is no limit on the whole, but the request fails once no
    /// chunk has gone out for the time limit (or, after the last, no answer has come). A
    /// failure of `content` itself is returned as it is.
    pub(super) async fn send_streamed(
        &self,
        op: &'static str,
        path: &VPath,
        request: RequestBuilder,
        content: ByteStream,
    ) -> Result<(Response, u64)> {
        let progress = Arc::new(Progress::new());
        let tracked = progress.clone();
        let body = Body::wrap_stream(content.map(move |chunk| match chunk {
            Ok(bytes) => {
                tracked.moved(bytes.len());
                Ok(bytes)
            }
            Err(e) => {
                let message = e.to_string();
                tracked.fail(e);
                Err(std::io::Error::other(message))
            }
        }));
        let sending = request.body(body).send();
        tokio::pin!(sending);
        let mut check = tokio::time::interval((self.timeout / 4).max(Duration::from_millis(10)));
        loop {
            tokio::select! {
                sent = &mut sending => {
                    let response =
                        sent.map_err(|e| progress.failure().unwrap_or_else(|| self.unreachable(op, path, &e)))?;
                    return Ok((response, progress.bytes.load(Ordering::Relaxed)));
                }
                _ = check.tick() => {
                    if progress.idle() >= self.timeout {
                        return Err(Error::new(ErrorKind::Io, op).with_path(path.clone()).with_detail(format!(
                            "the upload to {} stalled for {:?}",
                            self.base, self.timeout
                        )));
                    }
                }
            }
        }
    }

    /// PROPFIND of `path` at `depth` (0: itself, 1: and its members): what the server
    /// reports, or `None` when nothing is there. Apache answers `400 Bad Request` for a path
    /// below a file, which counts as nothing there too.
    pub(super) async fn propfind(
        &self,
        op: &'static str,
        path: &VPath,
        depth: u8,
        collection: bool,
    ) -> Result<Option<Vec<Entry>>> {
        let mut url = self.url(path, collection);
        let mut response = self.propfind_once(op, path, depth, &url).await?;
        // A server that wants a collection's URL to end in `/` may redirect there.
        if response.status().is_redirection() && !collection {
            let slashed = self.url(path, true);
            let location = response.headers().get(LOCATION).and_then(|l| l.to_str().ok());
            if location.and_then(|l| self.base.join(l).ok()).is_some_and(|l| l.path() == slashed.path()) {
                url = slashed;
                response = self.propfind_once(op, path, depth, &url).await?;
            }
        }
        match response.status().as_u16() {
            207 => {}
            400 | 404 | 410 => return Ok(None),
            _ => return Err(self.refusal(op, path, &response)),
        }
        let body = response.bytes().await.map_err(|e| self.unreachable(op, path, &e))?;
        multistatus::parse(&body)
            .map(Some)
            .map_err(|e| Error::new(ErrorKind::Io, op).with_path(path.clone()).with_detail(format!("{url}: {e}")))
    }

    async fn propfind_once(&self, op: &'static str, path: &VPath, depth: u8, url: &Url) -> Result<Response> {
        self.send_retrying(op, path, || {
            self.request(method("PROPFIND"), url.clone())
                .header("Depth", depth.to_string())
                .header(CONTENT_TYPE, "application/xml; charset=utf-8")
                .body(Bytes::from_static(PROPFIND_BODY.as_bytes()))
        })
        .await
    }

    /// The error for a request that got no answer: names the server.
    pub(super) fn unreachable(&self, op: &'static str, path: &VPath, error: &reqwest::Error) -> Error {
        let what = if error.is_timeout() {
            format!("no answer from {} within {:?}", self.base, self.timeout)
        } else {
            format!("cannot reach {}", self.base)
        };
        Error::new(ErrorKind::Io, op).with_path(path.clone()).with_detail(format!("{what}: {}", chain(error)))
    }

    /// The error for a failure status the operation has no better explanation for.
    pub(super) fn refusal(&self, op: &'static str, path: &VPath, response: &Response) -> Error {
        let status = response.status();
        if status == StatusCode::PRECONDITION_FAILED {
            return self.conflict(op, path, "changed");
        }
        let kind = match status.as_u16() {
            404 | 410 => ErrorKind::NotFound,
            401 | 403 => ErrorKind::PermissionDenied,
            405 | 501 => ErrorKind::Unsupported,
            414 => ErrorKind::NameTooLong,
            _ => ErrorKind::Io,
        };
        let hint = match status.as_u16() {
            401 | 403 => format!("; {CREDENTIALS_HINT}"),
            423 => "; someone holds a WebDAV lock on it".to_owned(),
            507 => "; the server has no space left".to_owned(),
            300..=399 => match response.headers().get(LOCATION).and_then(|l| l.to_str().ok()) {
                Some(location) => format!("; it redirects to '{location}': mount that URL instead"),
                None => "; it redirects elsewhere".to_owned(),
            },
            _ => String::new(),
        };
        Error::new(kind, op).with_path(path.clone()).with_detail(format!("{} answered {status}{hint}", self.base))
    }

    /// A `Conflict`: `path` was `what` (changed, created, removed) on the server since the
    /// session saw it.
    pub(super) fn conflict(&self, op: &'static str, path: &VPath, what: &str) -> Error {
        Error::conflict(op, vec![path.clone()], format!("{what} on {} since the session saw it", self.base))
    }
}

/// How a streamed upload is going: when a chunk last went out, how much has, and the
/// content's own error if reading it failed.
struct Progress {
    start: Instant,
    /// Milliseconds after `start` when the last chunk went out.
    last: AtomicU64,
    bytes: AtomicU64,
    failure: Mutex<Option<Error>>,
}

impl Progress {
    fn new() -> Self {
        Progress { start: Instant::now(), last: AtomicU64::new(0), bytes: AtomicU64::new(0), failure: Mutex::new(None) }
    }

    fn moved(&self, len: usize) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
        self.bytes.fetch_add(len as u64, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        self.start.elapsed().saturating_sub(Duration::from_millis(self.last.load(Ordering::Relaxed)))
    }

    fn fail(&self, error: Error) {
        self.failure.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(error);
    }

    fn failure(&self) -> Option<Error> {
        self.failure.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}
