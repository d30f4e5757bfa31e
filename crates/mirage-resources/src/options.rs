//! The options of a resource URL's query string, as every resource reads them: split off
//! the URL, then parsed as durations (`10s`), sizes (`8MiB`), numbers and flags (`true`).

use std::time::Duration;

use mirage_core::{Error, ErrorKind, Result};
use url::Url;

/// An `InvalidInput` error for a mount that cannot be set up as asked.
pub(crate) fn invalid(detail: String) -> Error {
    Error::new(ErrorKind::InvalidInput, "mount").with_detail(detail)
}

/// Parses `url` and takes its query string off: the URL without it, and its options in order.
pub(crate) fn split_query(url: &str) -> Result<(Url, Vec<(String, String)>)> {
    let mut parsed = Url::parse(url).map_err(|e| invalid(format!("'{url}' is not a URL: {e}")))?;
    let pairs = parsed.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    parsed.set_query(None);
    Ok((parsed, pairs))
}

/// Applies the options of `url`'s query string to `options` with `set`, and returns them
/// with the URL without its query.
pub(crate) fn apply_query<T>(mut options: T, url: &str, set: fn(&mut T, &str, &str) -> Result<()>) -> Result<(T, Url)> {
    let (url, pairs) = split_query(url)?;
    for (key, value) in pairs {
        set(&mut options, &key, &value)?;
    }
    Ok((options, url))
}

/// The error for option `key=value`, saying what was expected instead.
pub(crate) fn bad_value(key: &str, value: &str, expected: &str) -> Error {
    invalid(format!("option {key}={value}: expected {expected}"))
}

/// Option `key` as a duration: `10s`, `500ms`, `2m`, `1h`, or a plain number of seconds.
pub(crate) fn duration(key: &str, value: &str) -> Result<Duration> {
    parse_duration(value).ok_or_else(|| bad_value(key, value, "a duration such as 10s"))
}

/// Option `key` as a size in bytes: `16MiB`, `8M`, `512KiB`, `1GiB`, or a plain number
/// (units are powers of 1024).
pub(crate) fn size(key: &str, value: &str) -> Result<usize> {
    parse_size(value).ok_or_else(|| bad_value(key, value, "a size such as 8MiB"))
}

/// Option `key` as a count.
pub(crate) fn number(key: &str, value: &str) -> Result<usize> {
    value.trim().parse().map_err(|_| bad_value(key, value, "a number"))
}

/// Option `key` as a flag: `true`, `1` or `yes`; `false`, `0` or `no`.
pub(crate) fn flag(key: &str, value: &str) -> Result<bool> {
    match value {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(bad_value(key, value, "true or false")),
    }
}

fn parse_duration(value: &str) -> Option<Duration> {
    let value = value.trim();
    let split = value.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1e3,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

fn parse_size(value: &str) -> Option<usize> {
    let value = value.trim();
    let split = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: usize = number.parse().ok()?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return None,
    };
    number.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_sizes_numbers_and_flags_parse() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_size("8MiB"), Some(8 << 20));
        assert_eq!(parse_size("512k"), Some(512 << 10));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(number("retries", "4").unwrap(), 4);
        assert!(flag("read_only", "yes").unwrap());
        assert!(!flag("read_only", "0").unwrap());
    }

    #[test]
    fn a_bad_value_names_the_option() {
        let e = duration("timeout", "soon").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("timeout=soon"), "{e}");
        assert!(flag("read_only", "maybe").unwrap_err().to_string().contains("true or false"));
    }

    #[test]
    fn the_query_comes_off_the_url_in_order() {
        let (url, pairs) = split_query("s3://bucket/p?a=1&b=two%20words&a=3").unwrap();
        assert_eq!(url.as_str(), "s3://bucket/p");
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(pairs, [("a", "1"), ("b", "two words"), ("a", "3")]);
        assert_eq!(split_query("not a url").unwrap_err().kind(), ErrorKind::InvalidInput);
    }
}
