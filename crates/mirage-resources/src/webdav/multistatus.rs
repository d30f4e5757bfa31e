//! The body of a `207 Multi-Status` answer to PROPFIND (RFC 4918, section 14.16): one
//! `<response>` per resource with its `<href>` and, grouped in `<propstat>` elements by the
//! status the server gives them, the properties asked for. Elements are matched by namespace
//! (`DAV:`) and local name, whatever prefixes the server picked; everything else is skipped.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use quick_xml::NsReader;
use quick_xml::escape::resolve_xml_entity;
use quick_xml::events::Event;
use quick_xml::name::{Namespace, ResolveResult};

/// The body of a PROPFIND that asks for the properties [`parse`] reads.
pub(super) const PROPFIND_BODY: &str = concat!(
    r#"<?xml version="1.0" encoding="utf-8"?>"#,
    r#"<d:propfind xmlns:d="DAV:"><d:prop>"#,
    "<d:resourcetype/><d:getcontentlength/><d:getlastmodified/><d:getetag/>",
    "</d:prop></d:propfind>"
);

/// What a PROPFIND reported about one resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Entry {
    /// Where it is, as the server wrote it: percent-encoded, an absolute path or a full URL.
    pub(super) href: String,
    /// The properties the server could give (those under a `2xx` status).
    pub(super) props: Props,
}

/// The properties [`parse`] reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Props {
    /// `<resourcetype>` holds `<collection/>`.
    pub(super) collection: bool,
    /// `<getcontentlength>`.
    pub(super) length: Option<u64>,
    /// `<getlastmodified>`, an HTTP date.
    pub(super) modified: Option<SystemTime>,
    /// `<getetag>`, verbatim (quoted, perhaps with the `W/` of a weak tag).
    pub(super) etag: Option<String>,
}

impl Props {
    /// Adds what `other` knows.
    fn merge(&mut self, other: Props) {
        self.collection |= other.collection;
        self.length = other.length.or(self.length);
        self.modified = other.modified.or(self.modified);
        self.etag = other.etag.or(self.etag.take());
    }
}

/// The `DAV:` elements the parser looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Element {
    Response,
    Href,
    Propstat,
    Status,
    ResourceType,
    Collection,
    Length,
    Modified,
    ETag,
    Other,
}

fn element(namespace: &ResolveResult<'_>, local: &[u8]) -> Element {
    if !matches!(namespace, ResolveResult::Bound(Namespace(b"DAV:"))) {
        return Element::Other;
    }
    match local {
        b"response" => Element::Response,
        b"href" => Element::Href,
        b"propstat" => Element::Propstat,
        b"status" => Element::Status,
        b"resourcetype" => Element::ResourceType,
        b"collection" => Element::Collection,
        b"getcontentlength" => Element::Length,
        b"getlastmodified" => Element::Modified,
        b"getetag" => Element::ETag,
        _ => Element::Other,
    }
}

/// True for a status line (`HTTP/1.1 200 OK`) that reports success.
fn success(status: &str) -> bool {
    status.split_whitespace().nth(1).is_some_and(|code| code.starts_with('2'))
}

/// The resources a multistatus body reports, in order; a `<response>` whose own status is a
/// failure (a member the server could not read) is left out.
///
/// # Errors
/// What is wrong with a body that is not well-formed XML.
pub(super) fn parse(body: &[u8]) -> Result<Vec<Entry>, String> {
    let mut reader = NsReader::from_reader(body);
    let mut buf = Vec::new();
    let mut open: Vec<Element> = Vec::new();
    let mut text = String::new();
    let mut entries = Vec::new();
    let mut entry = Entry::default();
    let mut entry_ok = true;
    let mut props = Props::default();
    let mut props_ok = true;
    let error = |reader: &NsReader<&[u8]>, e: &dyn std::fmt::Display| {
        format!("malformed multistatus body at byte {}: {e}", reader.buffer_position())
    };
    loop {
        let event = reader.read_resolved_event_into(&mut buf);
        let (namespace, event) = match event {
            Ok(resolved) => resolved,
            Err(e) => return Err(error(&reader, &e)),
        };
        match event {
            Event::Start(start) => {
                let kind = element(&namespace, start.local_name().as_ref());
                match kind {
                    Element::Response => (entry, entry_ok) = (Entry::default(), true),
                    Element::Propstat => (props, props_ok) = (Props::default(), true),
                    Element::Collection if open.last() == Some(&Element::ResourceType) => props.collection = true,
                    _ => {}
                }
                open.push(kind);
                text.clear();
            }
            Event::Empty(empty)
                if element(&namespace, empty.local_name().as_ref()) == Element::Collection
                    && open.last() == Some(&Element::ResourceType) =>
            {
                props.collection = true;
            }
            Event::Text(t) => text.push_str(&t.xml10_content().map_err(|e| error(&reader, &e))?),
            Event::CData(t) => text.push_str(&t.xml10_content().map_err(|e| error(&reader, &e))?),
            Event::GeneralRef(r) => match r.resolve_char_ref().map_err(|e| error(&reader, &e))? {
                Some(c) => text.push(c),
                None => {
                    let name = r.decode().map_err(|e| error(&reader, &e))?;
                    let resolved = resolve_xml_entity(&name)
                        .ok_or_else(|| error(&reader, &format_args!("unknown entity &{name};")))?;
                    text.push_str(resolved);
                }
            },
            Event::End(_) => {
                let kind = open.pop().unwrap_or(Element::Other);
                let value = text.trim();
                match (kind, open.last()) {
                    (Element::Href, Some(Element::Response)) => entry.href = value.to_owned(),
                    (Element::Status, Some(Element::Response)) => entry_ok = success(value),
                    (Element::Status, Some(Element::Propstat)) => props_ok = success(value),
                    (Element::Length, _) => props.length = value.parse().ok(),
                    (Element::Modified, _) => props.modified = http_date(value),
                    (Element::ETag, _) if !value.is_empty() => props.etag = Some(value.to_owned()),
                    (Element::Propstat, _) if props_ok => entry.props.merge(std::mem::take(&mut props)),
                    (Element::Response, _) if entry_ok && !entry.href.is_empty() => {
                        entries.push(std::mem::take(&mut entry));
                    }
                    _ => {}
                }
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(entries)
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`), as servers write `getlastmodified` and
/// `Last-Modified`.
pub(super) fn http_date(value: &str) -> Option<SystemTime> {
    let date = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
    let secs = u64::try_from(date.timestamp()).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Apache's mod_dav answers for a directory with a file and a subdirectory.
    const APACHE: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:" xmlns:ns0="DAV:">
<D:response xmlns:lp1="DAV:" xmlns:lp2="http://apache.org/dav/props/">
<D:href>/dav/some%20dir/</D:href>
<D:propstat>
<D:prop>
<lp1:resourcetype><D:collection/></lp1:resourcetype>
<lp1:getlastmodified>Wed, 25 Nov 2026 19:49:20 GMT</lp1:getlastmodified>
<lp1:getetag>"1000-6611f1f7baa03"</lp1:getetag>
</D:prop>
<D:status>HTTP/1.1 200 OK</D:status>
</D:propstat>
<D:propstat>
<D:prop>
<D:getcontentlength/>
</D:prop>
<D:status>HTTP/1.1 404 Not Found</D:status>
</D:propstat>
</D:response>
<D:response xmlns:lp1="DAV:" xmlns:lp2="http://apache.org/dav/props/">
<D:href>/dav/some%20dir/a%26b.txt</D:href>
<D:propstat>
<D:prop>
<lp1:resourcetype/>
<lp1:getcontentlength>5</lp1:getcontentlength>
<lp1:getlastmodified>Wed, 25 Nov 2026 19:49:26 GMT</lp1:getlastmodified>
<lp1:getetag>W/"5-6611f1fea5748"</lp1:getetag>
</D:prop>
<D:status>HTTP/1.1 200 OK</D:status>
</D:propstat>
</D:response>
<D:response>
<D:href>/dav/some%20dir/sub/</D:href>
<D:propstat>
<D:prop><lp1:resourcetype xmlns:lp1="DAV:"><D:collection/></lp1:resourcetype></D:prop>
<D:status>HTTP/1.1 200 OK</D:status>
</D:propstat>
</D:response>
</D:multistatus>"#;

    /// Nextcloud (sabre/dav) style: another prefix, extra namespaces, full-URL hrefs, entities.
    const NEXTCLOUD: &str = r#"<?xml version="1.0"?>
<d:multistatus xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns" xmlns:oc="http://owncloud.org/ns">
 <d:response>
  <d:href>https://cloud.example/remote.php/dav/files/alice/Tom&amp;Jerry/</d:href>
  <d:propstat>
   <d:prop><d:resourcetype><d:collection/></d:resourcetype><oc:size>12</oc:size><d:getetag>&quot;65f0&quot;</d:getetag></d:prop>
   <d:status>HTTP/1.1 200 OK</d:status>
  </d:propstat>
 </d:response>
 <d:response>
  <d:href>https://cloud.example/remote.php/dav/files/alice/Tom&amp;Jerry/notes.md</d:href>
  <d:propstat>
   <d:prop><d:resourcetype/><d:getcontentlength>12</d:getcontentlength><d:getetag>"a1b2"</d:getetag></d:prop>
   <d:status>HTTP/1.1 200 OK</d:status>
  </d:propstat>
 </d:response>
 <d:response>
  <d:href>/remote.php/dav/files/alice/Tom&amp;Jerry/hidden</d:href>
  <d:status>HTTP/1.1 403 Forbidden</d:status>
 </d:response>
</d:multistatus>"#;

    #[test]
    fn reads_apache_answers() {
        let entries = parse(APACHE.as_bytes()).unwrap();
        let hrefs: Vec<&str> = entries.iter().map(|e| e.href.as_str()).collect();
        assert_eq!(hrefs, ["/dav/some%20dir/", "/dav/some%20dir/a%26b.txt", "/dav/some%20dir/sub/"]);
        let dir = &entries[0].props;
        assert!(dir.collection);
        assert_eq!((dir.length, dir.etag.as_deref()), (None, Some(r#""1000-6611f1f7baa03""#)));
        assert_eq!(dir.modified, Some(UNIX_EPOCH + Duration::from_secs(1_795_636_160)));
        let file = &entries[1].props;
        assert!(!file.collection);
        assert_eq!((file.length, file.etag.as_deref()), (Some(5), Some(r#"W/"5-6611f1fea5748""#)));
        assert!(entries[2].props.collection, "a prefix declared on the element itself");
    }

    #[test]
    fn reads_nextcloud_answers_and_skips_failed_members() {
        let entries = parse(NEXTCLOUD.as_bytes()).unwrap();
        assert_eq!(entries.len(), 2, "{entries:?}");
        assert_eq!(entries[0].href, "https://cloud.example/remote.php/dav/files/alice/Tom&Jerry/");
        assert_eq!(entries[0].props.etag.as_deref(), Some(r#""65f0""#));
        assert_eq!(entries[0].props.length, None, "oc:size is not the DAV length");
        assert_eq!(entries[1].props.length, Some(12));
    }

    #[test]
    fn a_default_namespace_counts_and_other_namespaces_do_not() {
        let body = r#"<multistatus xmlns="DAV:"><response><href>/a</href><propstat><prop>
            <resourcetype><x:collection xmlns:x="urn:other"/></resourcetype><getcontentlength>7</getcontentlength>
            </prop><status>HTTP/1.1 200 OK</status></propstat></response></multistatus>"#;
        let entries = parse(body.as_bytes()).unwrap();
        assert_eq!(entries, [Entry { href: "/a".into(), props: Props { length: Some(7), ..Props::default() } }]);
    }

    #[test]
    fn malformed_bodies_are_refused() {
        let e = parse(b"<d:multistatus xmlns:d=\"DAV:\"><d:response></d:multistatus>").unwrap_err();
        assert!(e.contains("malformed"), "{e}");
    }

    #[test]
    fn http_dates_parse() {
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(UNIX_EPOCH + Duration::from_secs(784_111_777)));
        assert_eq!(http_date("yesterday"), None);
    }
}
