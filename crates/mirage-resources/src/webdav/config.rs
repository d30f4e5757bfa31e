//! Opening a WebDAV server from a URL: the scheme picks the protocol and the layout
//! (`nextcloud://` stands for a Nextcloud user's files), the query string sets the options,
//! and the options, the URL and the environment supply the credentials.

use std::fmt;
use std::time::Duration;

use mirage_core::Result;
use url::Url;

use crate::options::{self, invalid};

/// How a [`super::WebDavResource`] talks to its server. Every field can also be set in the
/// URL's query string (`davs://host/dav?cache_ttl=30s&user=alice`).
#[derive(Clone)]
pub struct WebDavOptions {
    /// How long listings and entry metadata are trusted before the server is asked again
    /// (`cache_ttl`). Changes made through this resource refresh them at once; changes by
    /// others show after at most this long. Zero turns the cache off.
    pub cache_ttl: Duration,
    /// The longest one request may take (`timeout`); an upload streamed from a large file may
    /// take longer, as long as it never stalls for this long.
    pub timeout: Duration,
    /// The longest connecting may take (`connect_timeout`).
    pub connect_timeout: Duration,
    /// How often a request that reads (PROPFIND, GET) is retried after a connection failure or
    /// a `429`, `502`, `503` or `504` answer (`retries`). Requests that change something are
    /// never retried.
    pub retries: usize,
    /// Refuse every change (`read_only`).
    pub read_only: bool,
    /// The user to log in as (`user`); else the URL's user, `WEBDAV_USER`, or for
    /// `nextcloud://` the user whose files the URL names.
    pub user: Option<String>,
    /// The password (`password`); else the URL's password or `WEBDAV_PASSWORD`. For Nextcloud,
    /// an app password (Settings, Security, Devices & sessions).
    pub password: Option<String>,
    /// Talk plain HTTP to a `nextcloud://` server (`http`), as on a test machine.
    pub http: bool,
}

impl fmt::Debug for WebDavOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebDavOptions")
            .field("cache_ttl", &self.cache_ttl)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retries", &self.retries)
            .field("read_only", &self.read_only)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("http", &self.http)
            .finish()
    }
}

impl Default for WebDavOptions {
    fn default() -> Self {
        WebDavOptions {
            cache_ttl: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            retries: 3,
            read_only: false,
            user: None,
            password: None,
            http: false,
        }
    }
}

impl WebDavOptions {
    /// Applies the options in `url`'s query string on top of these, and returns the URL
    /// without its query.
    ///
    /// # Errors
    /// `InvalidInput` for a URL that does not parse, or an option or value that does not.
    pub fn from_url(self, url: &str) -> Result<(Self, Url)> {
        options::apply_query(self, url, Self::set)
    }

    /// Sets one option by its query-string name.
    ///
    /// # Errors
    /// `InvalidInput` for an unknown option or a value that does not parse.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "cache_ttl" => self.cache_ttl = options::duration(key, value)?,
            "timeout" => self.timeout = options::duration(key, value)?,
            "connect_timeout" => self.connect_timeout = options::duration(key, value)?,
            "retries" => self.retries = options::number(key, value)?,
            "read_only" => self.read_only = options::flag(key, value)?,
            "user" => self.user = Some(value.to_owned()),
            "password" => self.password = Some(value.to_owned()),
            "http" => self.http = options::flag(key, value)?,
            _ => {
                return Err(invalid(format!(
                    "unknown option '{key}' (WebDAV URLs take cache_ttl, timeout, connect_timeout, retries, \
                     read_only, user, password and http)"
                )));
            }
        }
        Ok(())
    }
}

/// The server a URL names: the collection that is the resource's root, and who to log in as.
pub(super) struct Target {
    /// An `http` or `https` URL ending in `/`, without credentials.
    pub(super) base: Url,
    pub(super) user: Option<String>,
    pub(super) password: Option<String>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target").field("base", &self.base.as_str()).field("user", &self.user).finish_non_exhaustive()
    }
}

/// Where `url` (its query already applied to `options`) points; `env` reads the environment.
pub(super) fn target(url: &Url, options: &WebDavOptions, env: impl Fn(&str) -> Option<String>) -> Result<Target> {
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| invalid(format!("'{url}' names no server")))?;
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    let mut segments: Vec<String> =
        url.path_segments().into_iter().flatten().filter(|s| !s.is_empty()).map(decode).collect();
    let (secure, nextcloud_user) = match url.scheme() {
        "webdav" => (false, None),
        "davs" | "webdavs" => (true, None),
        "nextcloud" => {
            if segments.is_empty() {
                return Err(invalid(format!(
                    "'{url}' names no user (expected nextcloud://HOST/USER/PATH, for the files of USER)"
                )));
            }
            let user = segments[0].clone();
            segments.splice(0..0, ["remote.php", "dav", "files"].map(String::from));
            (!options.http, Some(user))
        }
        other => return Err(invalid(format!("'{url}': {other}:// is not a WebDAV URL"))),
    };
    let mut base = Url::parse(&format!("{}://{host}/", if secure { "https" } else { "http" }))
        .map_err(|e| invalid(format!("'{url}': {e}")))?;
    // The default port of `webdav://` and friends is the one of the protocol spoken.
    base.set_port(url.port()).map_err(|()| invalid(format!("'{url}': bad port")))?;
    base.path_segments_mut()
        .map_err(|()| invalid(format!("'{url}': not a server URL")))?
        .pop_if_empty()
        .extend(segments.iter().map(String::as_str).chain([""]));
    let url_user = Some(decode(url.username())).filter(|u| !u.is_empty());
    let url_password = url.password().map(decode);
    let user = options.user.clone().or(url_user).or_else(|| env("WEBDAV_USER")).or(nextcloud_user);
    let password = options.password.clone().or(url_password).or_else(|| env("WEBDAV_PASSWORD"));
    Ok(Target { base, user, password })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(url: &str) -> Target {
        let (options, url) = WebDavOptions::default().from_url(url).unwrap();
        target(&url, &options, |_| None).unwrap()
    }

    #[test]
    fn the_schemes_map_to_http_and_https() {
        assert_eq!(open("webdav://127.0.0.1:8080/dav").base.as_str(), "http://127.0.0.1:8080/dav/");
        assert_eq!(open("davs://files.example/a%20b/c/").base.as_str(), "https://files.example/a%20b/c/");
        assert_eq!(open("webdavs://files.example").base.as_str(), "https://files.example/");
    }

    #[test]
    fn the_nextcloud_form_names_a_users_files() {
        let t = open("nextcloud://cloud.example/alice/Documents/work?password=app-pass");
        assert_eq!(t.base.as_str(), "https://cloud.example/remote.php/dav/files/alice/Documents/work/");
        assert_eq!((t.user.as_deref(), t.password.as_deref()), (Some("alice"), Some("app-pass")));
        let t = open("nextcloud://127.0.0.1:8081/bob?http=true&user=bob%40example.com");
        assert_eq!(t.base.as_str(), "http://127.0.0.1:8081/remote.php/dav/files/bob/");
        assert_eq!(t.user.as_deref(), Some("bob@example.com"), "the login may differ from the user id");
        let (options, url) = WebDavOptions::default().from_url("nextcloud://cloud.example/").unwrap();
        assert!(target(&url, &options, |_| None).unwrap_err().to_string().contains("USER"));
    }

    #[test]
    fn credentials_come_from_the_options_before_the_url() {
        let t = open("davs://carol:s%3Acret@files.example/dav");
        assert_eq!((t.user.as_deref(), t.password.as_deref()), (Some("carol"), Some("s:cret")));
        assert_eq!(t.base.as_str(), "https://files.example/dav/", "no credentials in the base URL");
        let t = open("davs://carol:secret@files.example/dav?user=dave&password=other");
        assert_eq!((t.user.as_deref(), t.password.as_deref()), (Some("dave"), Some("other")));
        let env = |name: &str| Some(format!("{name} from the environment"));
        let (options, url) = WebDavOptions::default().from_url("nextcloud://cloud.example/alice").unwrap();
        let t = target(&url, &options, env).unwrap();
        assert_eq!(t.user.as_deref(), Some("WEBDAV_USER from the environment"));
        assert_eq!(t.password.as_deref(), Some("WEBDAV_PASSWORD from the environment"));
    }

    #[test]
    fn options_parse_and_unknown_ones_are_refused() {
        let (options, url) =
            WebDavOptions::default().from_url("webdav://h/d?cache_ttl=1s&read_only=true&retries=0&timeout=2s").unwrap();
        assert_eq!(url.as_str(), "webdav://h/d");
        assert_eq!((options.cache_ttl, options.timeout), (Duration::from_secs(1), Duration::from_secs(2)));
        assert!(options.read_only);
        assert_eq!(options.retries, 0);
        let e = WebDavOptions::default().from_url("webdav://h/d?region=x").unwrap_err();
        assert!(e.to_string().contains("unknown option 'region'"), "{e}");
        let e = WebDavOptions::default().from_url("webdav://h/d?timeout=soon").unwrap_err();
        assert!(e.to_string().contains("timeout=soon"), "{e}");
        let debug = format!("{:?}", WebDavOptions::default().from_url("webdav://h/?password=hunter2").unwrap().0);
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
