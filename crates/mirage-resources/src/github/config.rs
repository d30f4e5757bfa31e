//! `github://OWNER/REPO[@REF][/PATH]` URLs and their options.

use std::path::PathBuf;
use std::time::Duration;

use mirage_core::Result;

use crate::options::{bad_value, duration, flag, invalid, number, split_query};

/// How a [`super::GitHubResource`] reaches GitHub. Every field can also be set in the URL's
/// query string (`github://owner/repo@main?refresh=5m&concurrency=16`).
#[derive(Clone, Debug)]
pub struct GitHubOptions {
    /// The token (`token`); `GITHUB_TOKEN` (or `GH_TOKEN`) when not given. Public
    /// repositories need none, at a much lower rate limit.
    pub token: Option<String>,
    /// The API's base URL (`base_url`): `https://api.github.com` or, for GitHub Enterprise
    /// Server, `https://HOST/api/v3`.
    pub base_url: String,
    /// The branch, tag or commit (`ref`, or `@REF` in the URL); the default branch when none.
    pub reference: Option<String>,
    /// How long the commit a branch pointed at is used before asking whether the branch
    /// moved (`refresh`; a conditional request, which costs no rate limit when nothing
    /// changed). By default never: the mount stays at the commit it first read, so that a
    /// commit back refuses a branch that moved meanwhile. With a refresh, the mount follows
    /// the branch, and a commit goes on top of its newest commit, conflicting only on paths
    /// both changed.
    pub refresh: Duration,
    /// File contents fetched at once, at most (`concurrency`).
    pub concurrency: usize,
    /// Where file contents are kept, by their git sha, for every session and fork
    /// (`cache_dir`; `$XDG_CACHE_HOME/mirage/github`, or `~/.cache/mirage/github`).
    pub cache_dir: PathBuf,
    /// The longest one request may take (`timeout`).
    pub timeout: Duration,
    /// The longest to wait when GitHub says to retry later (`rate_limit_wait`); a longer
    /// wait fails at once, saying when to try again.
    pub rate_limit_wait: Duration,
    /// Refuse every change (`read_only`).
    pub read_only: bool,
    /// Commit onto this new branch (`branch`), made from the mounted commit, rather than
    /// onto the mounted branch; the mount follows it from then on. Needed to commit on a
    /// mount of a tag or a commit.
    pub branch: Option<String>,
}

impl Default for GitHubOptions {
    fn default() -> Self {
        let token = ["GITHUB_TOKEN", "GH_TOKEN"].iter().find_map(|v| std::env::var(v).ok()).filter(|t| !t.is_empty());
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        GitHubOptions {
            token,
            base_url: "https://api.github.com".into(),
            reference: None,
            refresh: Duration::MAX,
            concurrency: 8,
            cache_dir: cache.join("mirage/github"),
            timeout: Duration::from_secs(30),
            rate_limit_wait: Duration::from_secs(60),
            read_only: false,
            branch: None,
        }
    }
}

/// The repository, and the directory of it that is the resource's root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Location {
    pub(super) owner: String,
    pub(super) repo: String,
    /// Path components below the repository's root (empty: the whole repository).
    pub(super) subdir: Vec<String>,
}

impl GitHubOptions {
    /// Sets one option by its query-string name.
    ///
    /// # Errors
    /// `InvalidInput` for an unknown option or a value that does not parse.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "token" => self.token = Some(value.to_owned()),
            "base_url" => self.base_url = value.trim_end_matches('/').to_owned(),
            "ref" => self.reference = Some(value.to_owned()),
            "refresh" => self.refresh = duration(key, value)?,
            "concurrency" => match number(key, value)? {
                0 => return Err(bad_value(key, value, "a positive number")),
                n => self.concurrency = n,
            },
            "cache_dir" => self.cache_dir = PathBuf::from(value),
            "timeout" => self.timeout = duration(key, value)?,
            "rate_limit_wait" => self.rate_limit_wait = duration(key, value)?,
            "read_only" => self.read_only = flag(key, value)?,
            "branch" => self.branch = Some(value.to_owned()),
            _ => {
                return Err(invalid(format!(
                    "unknown option '{key}' (token, base_url, ref, branch, refresh, concurrency, cache_dir, timeout, rate_limit_wait, read_only)"
                )));
            }
        }
        Ok(())
    }

    /// Reads `github://OWNER/REPO[@REF][/PATH][?OPTIONS]` on top of these options.
    ///
    /// `@REF` runs up to the next `/`; a branch whose name has slashes goes in the `ref`
    /// option instead (`github://owner/repo/docs?ref=feature/x`).
    ///
    /// # Errors
    /// `InvalidInput` for another scheme, a missing owner or repository, or a bad option.
    pub(super) fn apply_url(mut self, url: &str) -> Result<(Self, Location)> {
        if !url.starts_with("github://") {
            return Err(invalid(format!("'{url}' is not a github:// URL")));
        }
        // Checked before parsing, which would resolve them away.
        let path = url.split('?').next().unwrap_or_default();
        if path.split('/').any(|p| p == "." || p == "..") {
            return Err(invalid(format!("'{url}': the path may not contain . or ..")));
        }
        let (parsed, pairs) = split_query(url)?;
        let usage = || invalid(format!("'{url}': expected github://OWNER/REPO[@REF][/PATH]"));
        let owner = parsed.host_str().filter(|h| !h.is_empty()).ok_or_else(usage)?.to_owned();
        let mut parts = parsed.path().split('/').filter(|p| !p.is_empty());
        let repo_ref = parts.next().ok_or_else(usage)?;
        let (repo, reference) = match repo_ref.split_once('@') {
            Some((repo, reference)) if !reference.is_empty() => (repo, Some(reference.to_owned())),
            Some(_) => return Err(usage()),
            None => (repo_ref, None),
        };
        if repo.is_empty() {
            return Err(usage());
        }
        let subdir = parts.map(percent_decode).collect::<Result<Vec<_>>>()?;
        self.reference = reference.or(self.reference);
        for (key, value) in pairs {
            self.set(&key, &value)?;
        }
        Ok((self, Location { owner, repo: repo.to_owned(), subdir }))
    }
}

/// A path component of the URL, percent-decoded.
fn percent_decode(part: &str) -> Result<String> {
    let decoded = percent_encoding::percent_decode_str(part).decode_utf8();
    Ok(decoded.map_err(|_| invalid(format!("'{part}' is not UTF-8 once decoded")))?.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_the_repository_the_ref_and_the_directory() {
        let (options, at) =
            GitHubOptions::default().apply_url("github://octo/hello@v1.2/docs/api?refresh=5s&token=t").unwrap();
        assert_eq!(
            at,
            Location { owner: "octo".into(), repo: "hello".into(), subdir: vec!["docs".into(), "api".into()] }
        );
        assert_eq!(options.reference.as_deref(), Some("v1.2"));
        assert_eq!(options.refresh, Duration::from_secs(5));
        assert_eq!(options.token.as_deref(), Some("t"));
        let (options, at) = GitHubOptions::default().apply_url("github://octo/hello?ref=feature/x").unwrap();
        assert_eq!((at.subdir.len(), options.reference.as_deref()), (0, Some("feature/x")));
        let (options, _) =
            GitHubOptions::default().apply_url("github://o/r?base_url=https://ghe.example.com/api/v3/").unwrap();
        assert_eq!(options.base_url, "https://ghe.example.com/api/v3");
    }

    #[test]
    fn bad_urls_and_options_are_refused_with_a_reason() {
        for (url, says) in [
            ("github://octo", "OWNER/REPO"),
            ("github://octo/r@", "OWNER/REPO"),
            ("s3://b/p", "github://"),
            ("github://o/r/../x", ". or .."),
            ("github://o/r?colour=red", "unknown option 'colour'"),
            ("github://o/r?concurrency=0", "concurrency=0"),
            ("github://o/r?read_only=maybe", "read_only=maybe"),
        ] {
            let e = GitHubOptions::default().apply_url(url).unwrap_err();
            assert_eq!(e.kind(), mirage_core::ErrorKind::InvalidInput, "{url}");
            assert!(e.to_string().contains(says), "{url}: {e}");
        }
    }
}
