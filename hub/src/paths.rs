//! The parts of the URLs the hub makes: path segments percent-encoded
//! (and decoded from the ones it is asked for), and the host a request
//! reached.

/// Percent-encodes everything but unreserved characters (RFC 3986 §2.3).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decodes one path segment (`+` stays `+`).
pub fn decode_segment(segment: &str) -> Option<String> {
    if segment.is_empty() || segment.contains('/') {
        return None;
    }
    sseloop::http::percent_decode(segment)
}

/// The request's `Host`, when it is one (a name or address and a port:
/// what a URL's authority may hold, so it cannot break the URL or a quoted
/// challenge it goes into); else `localhost`.
pub fn host_of(req: &sseloop::Request) -> &str {
    req.header("Host")
        .filter(|host| {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
        })
        .unwrap_or("localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments() {
        assert_eq!(decode_segment("%40user-1").as_deref(), Some("@user-1"));
        assert_eq!(decode_segment("a+b").as_deref(), Some("a+b"));
        assert_eq!(decode_segment("a/b"), None);
        assert_eq!(decode_segment(""), None);
    }

    #[test]
    fn encoded_segments_decode_back() {
        for s in ["https://example.com/books/{id}", "urn:uuid:1", "a b+c%"] {
            assert_eq!(decode_segment(&encode_segment(s)).as_deref(), Some(s));
        }
    }
}
