//! Virtual paths: absolute, normalised, and validated once at the edge.
//!
//! Every path inside Mirage is a [`VPath`]. Parsing resolves `.` and `..` lexically (`..` at
//! the root stays at the root, as in the kernel), collapses repeated slashes, and refuses NUL
//! bytes, names longer than [`NAME_MAX`] bytes and paths longer than [`PATH_MAX`] bytes.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// Longest accepted file name, in bytes (as Linux's `NAME_MAX`).
pub const NAME_MAX: usize = 255;
/// Longest accepted path, in bytes (as Linux's `PATH_MAX`).
pub const PATH_MAX: usize = 4096;

/// An absolute, normalised virtual path such as `/data/notes.txt`.
///
/// The root is `/`; no other path ends in a slash; no component is empty, `.` or `..`.
/// Ordering is byte-wise, so every descendant of a path sorts in one contiguous run after it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VPath(Arc<str>);

impl VPath {
    /// The root path `/`.
    pub fn root() -> Self {
        VPath(Arc::from("/"))
    }

    /// Parses an absolute path, normalising `.`, `..` and repeated slashes.
    ///
    /// # Errors
    /// `InvalidInput` for a relative or empty path or one containing NUL, `NameTooLong` for a
    /// component over 255 bytes or a path over 4096 bytes.
    pub fn parse(path: &str) -> Result<Self> {
        if !path.starts_with('/') {
            return Err(Error::new(ErrorKind::InvalidInput, "parse path")
                .with_detail(format!("'{path}' is not absolute (virtual paths start with '/')")));
        }
        if is_normal(path) {
            return Ok(VPath(Arc::from(path)));
        }
        Self::root().join(path)
    }

    /// Resolves `rel` against this path: an absolute `rel` replaces it, a relative one is
    /// appended; the result is normalised as in [`VPath::parse`].
    ///
    /// # Errors
    /// As [`VPath::parse`].
    pub fn join(&self, rel: &str) -> Result<Self> {
        let bad = |kind, detail: String| Err(Error::new(kind, "parse path").with_detail(detail));
        if rel.contains('\0') {
            return bad(ErrorKind::InvalidInput, format!("{rel:?} contains a NUL byte"));
        }
        let mut parts: Vec<&str> = if rel.starts_with('/') { Vec::new() } else { self.components().collect() };
        for part in rel.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                name if name.len() > NAME_MAX => {
                    return bad(
                        ErrorKind::NameTooLong,
                        format!("name '{}...' is {} bytes (at most {NAME_MAX})", preview(name), name.len()),
                    );
                }
                name => parts.push(name),
            }
        }
        let mut out = String::with_capacity(rel.len() + self.0.len() + 1);
        for part in &parts {
            out.push('/');
            out.push_str(part);
        }
        if out.is_empty() {
            out.push('/');
        }
        if out.len() > PATH_MAX {
            return bad(ErrorKind::NameTooLong, format!("path is {} bytes (at most {PATH_MAX})", out.len()));
        }
        Ok(VPath(Arc::from(out)))
    }

    /// Appends one validated file name (no slash, not `.` or `..`).
    ///
    /// # Errors
    /// `InvalidInput` for an empty name, `.`, `..` or a name containing `/` or NUL.
    pub fn child(&self, name: &str) -> Result<Self> {
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(
                Error::new(ErrorKind::InvalidInput, "parse path").with_detail(format!("'{name}' is not a file name"))
            );
        }
        self.join(name)
    }

    /// The path as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for `/`.
    pub fn is_root(&self) -> bool {
        self.0.len() == 1
    }

    /// The parent directory; `None` for the root.
    pub fn parent(&self) -> Option<VPath> {
        if self.is_root() {
            return None;
        }
        let cut = last_slash(&self.0).unwrap_or(0);
        Some(if cut == 0 { Self::root() } else { VPath(Arc::from(&self.0[..cut])) })
    }

    /// The last component; `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        if self.is_root() {
            return None;
        }
        self.0.rsplit('/').next()
    }

    /// The components, root first: `/a/b` yields `a`, `b`.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// Every proper ancestor as a string slice, nearest first, ending with `/`; allocates
    /// nothing (maps keyed by `VPath` look these up through `Borrow<str>`).
    pub fn ancestor_strs(&self) -> impl Iterator<Item = &str> {
        ancestor_strs(&self.0)
    }

    /// Every proper ancestor as a string slice, from `/` down to the parent: the order in
    /// which a path is resolved.
    pub fn ancestor_strs_from_root(&self) -> impl Iterator<Item = &str> {
        let s: &str = &self.0;
        let root = (!self.is_root()).then_some("/");
        // A plain scan of the bytes: paths are short, and this runs on every lookup.
        let slashes = s.bytes().enumerate().skip(1).filter(|&(_, b)| b == b'/');
        root.into_iter().chain(slashes.map(move |(i, _)| &s[..i]))
    }

    /// Every proper ancestor, nearest first, ending with `/`.
    pub fn ancestors(&self) -> impl Iterator<Item = VPath> {
        std::iter::successors(self.parent(), VPath::parent)
    }

    /// True when `self` equals `base` or lies below it.
    pub fn starts_with(&self, base: &VPath) -> bool {
        base.is_root()
            || (self.0.starts_with(&*base.0) && matches!(self.0.as_bytes().get(base.0.len()), None | Some(b'/')))
    }

    /// The part of `self` below `base`, as an absolute path (`/a/b` under `/a` is `/b`).
    /// `None` when `self` is not under `base`.
    pub fn strip_prefix(&self, base: &VPath) -> Option<VPath> {
        if !self.starts_with(base) {
            return None;
        }
        if base.is_root() {
            return Some(self.clone());
        }
        let rest = &self.0[base.0.len()..];
        Some(if rest.is_empty() { Self::root() } else { VPath(Arc::from(rest)) })
    }

    /// `base` followed by this path's components: `/b` onto `/a` is `/a/b`.
    pub fn rebase(&self, base: &VPath) -> VPath {
        if self.is_root() {
            base.clone()
        } else if base.is_root() {
            self.clone()
        } else {
            VPath(Arc::from(format!("{}{}", base.0, self.0)))
        }
    }

    /// The exclusive upper bound of the run of descendants of `self` in byte order; the run
    /// is `(self + "/") .. bound`.
    pub(crate) fn descendants_range(&self) -> (String, String) {
        if self.is_root() { ("/".to_owned(), "0".to_owned()) } else { (format!("{}/", self.0), format!("{}0", self.0)) }
    }
}

/// The first few characters of an over-long name, for error messages.
fn preview(name: &str) -> &str {
    let end = name.char_indices().nth(32).map_or(name.len(), |(i, _)| i);
    &name[..end]
}

impl TryFrom<String> for VPath {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        VPath::parse(&s)
    }
}

impl From<VPath> for String {
    fn from(p: VPath) -> String {
        p.0.to_string()
    }
}

impl std::str::FromStr for VPath {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        VPath::parse(s)
    }
}

impl AsRef<str> for VPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for VPath {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for VPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Where the last `/` of `s` is: a plain scan from the end, which for a path's last
/// component costs less than setting up `rfind`'s search (it runs several times per call).
fn last_slash(s: &str) -> Option<usize> {
    s.bytes().rposition(|b| b == b'/')
}

/// Every proper ancestor of the normalised absolute path `s`, nearest first, ending with `/`.
pub(crate) fn ancestor_strs(s: &str) -> impl Iterator<Item = &str> {
    let mut end = if s == "/" { None } else { Some(s.len()) };
    std::iter::from_fn(move || {
        let cut = last_slash(&s[..end?])?;
        end = if cut == 0 { None } else { Some(cut) };
        Some(if cut == 0 { "/" } else { &s[..cut] })
    })
}

/// True when `s` is an absolute path in normal form within the limits (no empty, `.` or `..`
/// component, no trailing slash, no NUL byte, no name over [`NAME_MAX`] bytes, at most
/// [`PATH_MAX`] bytes), so that [`VPath::parse`] takes it as it is. Every call that takes a
/// path asks this, so it looks at each byte once.
pub(crate) fn is_normal(s: &str) -> bool {
    let bytes = s.as_bytes();
    if bytes == b"/" {
        return true;
    }
    if bytes.len() > PATH_MAX || bytes.first() != Some(&b'/') {
        return false;
    }
    // The length of the name being read, and whether it is all dots so far.
    let (mut len, mut dots) = (0, true);
    let dot_name = |len: usize, dots: bool| dots && len <= 2;
    for &b in &bytes[1..] {
        match b {
            b'/' if len == 0 || dot_name(len, dots) => return false,
            b'/' => (len, dots) = (0, true),
            0 => return false,
            _ => {
                len += 1;
                dots &= b == b'.';
                if len > NAME_MAX {
                    return false;
                }
            }
        }
    }
    len > 0 && !dot_name(len, dots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestor_slices_match_ancestors() {
        for path in ["/", "/a", "/a/b", "/a/bc/d"] {
            let p = VPath::parse(path).unwrap();
            let owned: Vec<String> = p.ancestors().map(String::from).collect();
            let slices: Vec<&str> = p.ancestor_strs().collect();
            assert_eq!(owned, slices, "{path}");
            let mut from_root: Vec<&str> = p.ancestor_strs_from_root().collect();
            from_root.reverse();
            assert_eq!(from_root, slices, "{path}");
        }
        for messy in ["/a//b", "/a/./b", "/a/../b", "/a/b/", "//", "/.", "/..", "a/b", "", "/a\0b"] {
            assert!(!is_normal(messy), "{messy:?}");
        }
        for plain in ["/", "/a/b.c/..d", "/...", "/a/.b", "/.a/b.."] {
            assert!(is_normal(plain), "{plain}");
        }
        let longest = format!("/{}", "n".repeat(NAME_MAX));
        assert!(is_normal(&longest) && !is_normal(&format!("{longest}n")));
    }

    fn p(s: &str) -> VPath {
        VPath::parse(s).unwrap()
    }

    proptest::proptest! {
        #[test]
        fn a_path_is_normal_exactly_when_normalising_keeps_it(s in "/?[/.a]{0,10}") {
            let kept = s.starts_with('/') && VPath::root().join(&s).is_ok_and(|p| p.as_str() == s);
            proptest::prop_assert_eq!(is_normal(&s), kept);
        }
    }

    #[test]
    fn normalises() {
        assert_eq!(p("/a//b/./c/").as_str(), "/a/b/c");
        assert_eq!(p("/a/b/../c").as_str(), "/a/c");
        assert_eq!(p("/../../etc").as_str(), "/etc");
        assert_eq!(p("/").as_str(), "/");
        assert_eq!(p("/a/..").as_str(), "/");
        assert_eq!(p("/a").join("../../b").unwrap().as_str(), "/b");
        assert_eq!(p("/a").join("b/c").unwrap().as_str(), "/a/b/c");
        assert_eq!(p("/a").join("/x").unwrap().as_str(), "/x");
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!(VPath::parse("rel").unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(VPath::parse("").unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(VPath::parse("/a\0b").unwrap_err().kind(), ErrorKind::InvalidInput);
        let long = format!("/{}", "x".repeat(256));
        assert_eq!(VPath::parse(&long).unwrap_err().kind(), ErrorKind::NameTooLong);
        assert!(VPath::parse(&format!("/{}", "x".repeat(255))).is_ok());
        let deep = "/abcdefgh".repeat(460);
        assert_eq!(VPath::parse(&deep).unwrap_err().kind(), ErrorKind::NameTooLong);
        assert!(p("/a").child("..").is_err());
        assert!(p("/a").child("b/c").is_err());
    }

    #[test]
    fn relations() {
        assert!(p("/a/b").starts_with(&p("/a")));
        assert!(!p("/ab").starts_with(&p("/a")));
        assert!(p("/a").starts_with(&p("/")));
        assert_eq!(p("/a/b").strip_prefix(&p("/a")).unwrap().as_str(), "/b");
        assert_eq!(p("/a").strip_prefix(&p("/a")).unwrap().as_str(), "/");
        assert_eq!(p("/b").rebase(&p("/a")).as_str(), "/a/b");
        assert_eq!(p("/a/b/c").parent().unwrap().as_str(), "/a/b");
        assert_eq!(p("/a").parent().unwrap().as_str(), "/");
        assert_eq!(p("/a/b").file_name(), Some("b"));
        let anc: Vec<String> = p("/a/b/c").ancestors().map(String::from).collect();
        assert_eq!(anc, ["/a/b", "/a", "/"]);
        let (lo, hi) = p("/a").descendants_range();
        for inside in ["/a/b", "/a/b/c", "/a/\u{ff}"] {
            assert!(lo.as_str() <= inside && inside < hi.as_str(), "{inside}");
        }
        for outside in ["/a", "/a-b", "/a0", "/ab", "/b"] {
            assert!(!(lo.as_str() <= outside && outside < hi.as_str()), "{outside}");
        }
    }
}
