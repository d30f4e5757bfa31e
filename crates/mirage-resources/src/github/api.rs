//! The few REST endpoints the resource uses, through octocrab: conditional requests that
//! remember ETags, rate limits waited out (or explained), and errors that say what to do.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{ACCEPT, ETAG, HeaderMap, HeaderValue, IF_NONE_MATCH, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use mirage_core::{Error, ErrorKind, Result};
use octocrab::Octocrab;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::config::GitHubOptions;

/// Answers seen, by route, with their ETags: asked again with `If-None-Match`, an unchanged
/// answer costs no rate limit.
type Remembered = HashMap<String, (HeaderValue, Bytes)>;

/// A client for one GitHub (or GitHub Enterprise) API.
pub(super) struct Api {
    /// Made on first use: octocrab's client starts a task, which needs the runtime.
    octocrab: tokio::sync::OnceCell<Octocrab>,
    base_url: String,
    token: Option<String>,
    timeout: Duration,
    remembered: Mutex<Remembered>,
    rate_limit_wait: Duration,
}

/// `GET /repos/{owner}/{repo}`, the part used.
#[derive(Deserialize)]
pub(super) struct Repository {
    pub(super) default_branch: String,
}

/// `GET /repos/{owner}/{repo}/commits/{ref}`, the part used.
#[derive(Deserialize)]
pub(super) struct Commit {
    pub(super) sha: String,
    pub(super) commit: CommitDetail,
}

#[derive(Deserialize)]
pub(super) struct CommitDetail {
    pub(super) tree: Sha,
    pub(super) committer: Option<Signature>,
}

#[derive(Deserialize)]
pub(super) struct Sha {
    pub(super) sha: String,
}

#[derive(Deserialize)]
pub(super) struct Signature {
    /// An ISO 8601 time.
    pub(super) date: Option<String>,
}

/// The answer to a write that names an object (`POST .../git/blobs`, `.../git/trees`,
/// `.../git/commits`).
#[derive(Deserialize)]
pub(super) struct Created {
    pub(super) sha: String,
}

/// `GET /repos/{owner}/{repo}/git/trees/{sha}`.
#[derive(Deserialize)]
pub(super) struct Tree {
    pub(super) tree: Vec<TreeEntry>,
    #[serde(default)]
    pub(super) truncated: bool,
}

/// One entry of a tree: `mode` as git writes it (`100644`, `100755`, `120000`, `040000`,
/// `160000`), `type` `blob`, `tree` or `commit` (a submodule).
#[derive(Clone, Deserialize)]
pub(super) struct TreeEntry {
    pub(super) path: String,
    pub(super) mode: String,
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) sha: String,
    pub(super) size: Option<u64>,
}

/// `GET /repos/{owner}/{repo}/git/blobs/{sha}` as JSON, for servers that do not answer the
/// raw media type.
#[derive(Deserialize)]
struct Blob {
    content: String,
    encoding: String,
}

/// What one request came to.
enum Outcome {
    Fresh(Bytes, Option<HeaderValue>),
    Unchanged,
    Retry(Duration),
}

impl Api {
    /// A client for the API at `options.base_url`; nothing is sent yet.
    ///
    /// # Errors
    /// `InvalidInput` when the base URL is not one.
    pub(super) fn new(options: &GitHubOptions) -> Result<Self> {
        if http::Uri::try_from(options.base_url.as_str()).map_or(true, |uri| uri.host().is_none()) {
            return Err(Error::new(ErrorKind::InvalidInput, "mount")
                .with_detail(format!("base_url '{}' is not a URL", options.base_url)));
        }
        Ok(Api {
            octocrab: tokio::sync::OnceCell::new(),
            base_url: options.base_url.clone(),
            token: options.token.clone(),
            timeout: options.timeout,
            remembered: Mutex::default(),
            rate_limit_wait: options.rate_limit_wait,
        })
    }

    async fn octocrab(&self) -> Result<&Octocrab> {
        self.octocrab
            .get_or_try_init(|| async {
                let setup = |e: octocrab::Error| {
                    Error::new(ErrorKind::InvalidInput, "github")
                        .with_detail(format!("GitHub API at '{}': {e}", self.base_url))
                };
                let mut builder = Octocrab::builder()
                    .base_uri(self.base_url.as_str())
                    .map_err(setup)?
                    .set_connect_timeout(Some(self.timeout.min(Duration::from_secs(10))))
                    .set_read_timeout(Some(self.timeout));
                if let Some(token) = &self.token {
                    builder = builder.personal_token(token.clone());
                }
                builder.build().map_err(setup)
            })
            .await
    }

    /// GETs `route` as JSON, conditionally when it was asked before.
    pub(super) async fn json<T: DeserializeOwned>(&self, route: &str) -> Result<T> {
        let body = self.get(route, "application/vnd.github+json", true).await?;
        serde_json::from_slice(&body).map_err(|e| {
            Error::new(ErrorKind::Io, "github").with_detail(format!("{}{route}: unexpected answer: {e}", self.base_url))
        })
    }

    /// Sends `body` to `route` with `method` (POST or PATCH, the Git Data API's writes) and
    /// reads the JSON answer. A rate-limited request is sent again once the limit allows:
    /// these writes are content-addressed or name the result, so repeating one is harmless.
    pub(super) async fn send<T: DeserializeOwned>(
        &self,
        method: http::Method,
        route: &str,
        body: &serde_json::Value,
    ) -> Result<T> {
        loop {
            let octocrab = self.octocrab().await?;
            let sent = if method == http::Method::PATCH {
                octocrab._patch(route, Some(body)).await
            } else {
                octocrab._post(route, Some(body)).await
            };
            let response = sent.map_err(|e| {
                Error::new(ErrorKind::Io, "github").with_detail(format!("cannot reach {}: {e}", self.base_url))
            })?;
            match self.outcome(route, response).await? {
                Outcome::Fresh(answer, _) => {
                    return serde_json::from_slice(&answer).map_err(|e| {
                        Error::new(ErrorKind::Io, "github")
                            .with_detail(format!("{}{route}: unexpected answer: {e}", self.base_url))
                    });
                }
                Outcome::Unchanged => {
                    return Err(Error::new(ErrorKind::Io, "github")
                        .with_detail(format!("{}{route}: 304 Not Modified to a write", self.base_url)));
                }
                Outcome::Retry(wait) => self.wait_out(wait).await,
            }
        }
    }

    /// The content of blob `sha`.
    pub(super) async fn blob(&self, route: &str) -> Result<Bytes> {
        let body = self.get(route, "application/vnd.github.raw", false).await?;
        match json_blob(&body) {
            Some(decoded) => decoded.map_err(|e| {
                Error::new(ErrorKind::Io, "github")
                    .with_detail(format!("{}{route}: bad base64 content: {e}", self.base_url))
            }),
            None => Ok(body),
        }
    }

    async fn get(&self, route: &str, accept: &'static str, remember: bool) -> Result<Bytes> {
        loop {
            let mut headers = HeaderMap::new();
            headers.insert(ACCEPT, HeaderValue::from_static(accept));
            let known = if remember {
                self.remembered.lock().unwrap_or_else(|e| e.into_inner()).get(route).cloned()
            } else {
                None
            };
            if let Some((etag, _)) = &known {
                headers.insert(IF_NONE_MATCH, etag.clone());
            }
            let response = self.octocrab().await?._get_with_headers(route, Some(headers)).await.map_err(|e| {
                Error::new(ErrorKind::Io, "github").with_detail(format!("cannot reach {}: {e}", self.base_url))
            })?;
            match self.outcome(route, response).await? {
                Outcome::Fresh(body, etag) => {
                    if let (true, Some(etag)) = (remember, etag) {
                        self.remembered
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(route.to_owned(), (etag, body.clone()));
                    }
                    return Ok(body);
                }
                Outcome::Unchanged => match known {
                    Some((_, body)) => return Ok(body),
                    None => {
                        return Err(Error::new(ErrorKind::Io, "github").with_detail(format!(
                            "{}{route}: 304 Not Modified to an unconditional request",
                            self.base_url
                        )));
                    }
                },
                Outcome::Retry(wait) => self.wait_out(wait).await,
            }
        }
    }

    /// Waits until GitHub's rate limit allows another request, saying so.
    async fn wait_out(&self, wait: Duration) {
        eprintln!(
            "mirage: GitHub's rate limit at {} is reached; retrying in {} s",
            self.base_url,
            wait.as_secs().max(1)
        );
        tokio::time::sleep(wait).await;
    }

    async fn outcome(&self, route: &str, response: Response<BoxBody<Bytes, octocrab::Error>>) -> Result<Outcome> {
        let status = response.status();
        let headers = response.headers().clone();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Outcome::Unchanged);
        }
        let body = response.into_body().collect().await.map_err(|e| {
            Error::new(ErrorKind::Io, "github")
                .with_detail(format!("{}{route}: reading the answer: {e}", self.base_url))
        })?;
        let body = body.to_bytes();
        if status.is_success() {
            return Ok(Outcome::Fresh(body, headers.get(ETAG).cloned()));
        }
        let message = error_message(&body);
        let header =
            |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
        let exhausted = header("x-ratelimit-remaining") == Some(0);
        if status == StatusCode::TOO_MANY_REQUESTS
            || (status == StatusCode::FORBIDDEN && (exhausted || headers.contains_key(RETRY_AFTER)))
        {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
            let wait = header(RETRY_AFTER.as_str())
                .or_else(|| header("x-ratelimit-reset").map(|reset| reset.saturating_sub(now)))
                .map_or(Duration::from_secs(60), Duration::from_secs);
            if wait <= self.rate_limit_wait {
                return Ok(Outcome::Retry(wait));
            }
            return Err(Error::new(ErrorKind::Io, "github").with_detail(format!(
                "{}{route}: rate limit reached ({message}); GitHub says to retry in {} s, longer than rate_limit_wait allows{}",
                self.base_url,
                wait.as_secs(),
                if self.token.is_some() { "" } else { " (a token raises the limit: set GITHUB_TOKEN)" }
            )));
        }
        let (kind, hint) = match status {
            StatusCode::UNAUTHORIZED if self.token.is_none() => {
                (ErrorKind::PermissionDenied, "GitHub asks for a token: set GITHUB_TOKEN or the token option")
            }
            StatusCode::UNAUTHORIZED => {
                (ErrorKind::PermissionDenied, "the token was refused: check GITHUB_TOKEN or the token option")
            }
            StatusCode::FORBIDDEN => (ErrorKind::PermissionDenied, "the token may not read or write this repository"),
            StatusCode::UNPROCESSABLE_ENTITY => (ErrorKind::InvalidInput, ""),
            StatusCode::NOT_FOUND => (
                ErrorKind::NotFound,
                "no such repository, ref or object, or a private repository: a token that may read it goes in GITHUB_TOKEN",
            ),
            _ => (ErrorKind::Io, ""),
        };
        let hint = if hint.is_empty() { String::new() } else { format!("; {hint}") };
        Err(Error::new(kind, "github").with_detail(format!("{}{route}: {status} {message}{hint}", self.base_url)))
    }
}

/// The content of a blob answered in its JSON form (by a server that ignores the raw media
/// type); `None` when `body` is not that form.
fn json_blob(body: &[u8]) -> Option<std::result::Result<Bytes, base64::DecodeError>> {
    use base64::Engine;
    let blob = serde_json::from_slice::<Blob>(body).ok().filter(|b| b.encoding == "base64")?;
    let packed: String = blob.content.split_whitespace().collect();
    Some(base64::engine::general_purpose::STANDARD.decode(packed).map(Bytes::from))
}

/// What an error answer says: GitHub's `message`, or the body itself.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned())
}

#[cfg(test)]
mod tests {
    //! Our parsing of GitHub's answers, against GitHub's published description of its API
    //! (the examples of `@octokit/openapi`) and recordings of real answers
    //! (`@octokit/fixtures`), both installed by `npm install` at the workspace's root.

    use std::path::PathBuf;

    use serde_json::Value;

    use super::*;

    fn node_package(path: &str) -> Value {
        let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../node_modules").join(path);
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{}: {e} (run npm install at the workspace's root)", file.display()));
        serde_json::from_str(&text).unwrap()
    }

    fn parse<T: DeserializeOwned>(value: &Value) -> T {
        serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{e}: {value}"))
    }

    #[test]
    fn the_published_examples_parse() {
        let api = node_package("@octokit/openapi/generated/api.github.com.json");
        let example = |name: &str| api["components"]["examples"][name]["value"].clone();
        let repository: Repository = parse(&example("full-repository"));
        assert_eq!(repository.default_branch, "master");
        let commit: Commit = parse(&example("commit"));
        assert_eq!(commit.sha.len(), 40);
        assert_eq!(commit.commit.tree.sha.len(), 40);
        assert!(commit.commit.committer.and_then(|c| c.date).is_some());
        for name in ["git-tree", "git-tree-default-response", "git-tree-response-recursively-retrieving-a-tree"] {
            let tree: Tree = parse(&example(name));
            assert!(!tree.tree.is_empty(), "{name}");
            for entry in &tree.tree {
                assert!(matches!(entry.kind.as_str(), "blob" | "tree" | "commit"), "{name}: {}", entry.kind);
                assert_eq!(entry.size.is_some(), entry.kind == "blob", "{name}: only blobs have sizes");
            }
        }
        let blob = serde_json::to_vec(&example("blob")).unwrap();
        assert_eq!(json_blob(&blob).unwrap().unwrap(), "Content of the blob");
        assert!(json_blob(b"raw file content").is_none(), "raw content passes through");
    }

    #[test]
    fn recorded_answers_parse() {
        let scenarios = "@octokit/fixtures/scenarios/api.github.com";
        let recorded = node_package(&format!("{scenarios}/get-repository/normalized-fixture.json"));
        let answer = recorded.as_array().unwrap().iter().find(|r| r["status"] == 200).unwrap();
        let repository: Repository = parse(&answer["response"]);
        assert_eq!(repository.default_branch, "master");
        let errors = node_package(&format!("{scenarios}/errors/normalized-fixture.json"));
        let failed = &errors.as_array().unwrap()[0];
        assert_eq!(error_message(&serde_json::to_vec(&failed["response"]).unwrap()), "Validation Failed");
        assert_eq!(error_message(b"plain text\n"), "plain text");
    }
}
