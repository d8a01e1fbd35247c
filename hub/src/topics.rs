//! Topic selectors: which updates a subscriber (or a token) selects.
//!
//! A selector matches a topic when it is `*`, when it equals the topic byte
//! for byte, or when it is an RFC 6570 URI template (levels 1 to 4) that
//! matches the whole topic: the topic is one the template could expand to.
//! `{var}` expands to unreserved characters only, so it never matches `/`;
//! `{+var}` and `{#var}` expand to reserved characters too, so they do.
//!
//! Selectors are compiled once, when first seen, and kept in a
//! [`SelectorStore`] by their text: matching costs follow the number of
//! distinct selectors, never the number of subscribers that use them.

use std::collections::HashMap;

use regex::Regex;

/// One compiled selector.
#[derive(Debug)]
enum Compiled {
    /// `*`: every topic.
    Any,
    /// A topic to compare byte for byte (no template expression in it).
    Exact(String),
    /// A URI template, as an anchored regular expression.
    Template(Regex),
    /// A template with a syntax error: it selects nothing (and is not taken
    /// for an exact topic, which its braces show it was not meant to be).
    Invalid,
}

/// The index of a selector in its [`SelectorStore`].
pub type SelectorId = usize;

/// Selectors by their text, each compiled once.
#[derive(Debug, Default)]
pub struct SelectorStore {
    compiled: Vec<Compiled>,
    texts: Vec<String>,
    by_text: HashMap<String, SelectorId>,
}

impl SelectorStore {
    /// The id of `selector`, compiling it the first time it is seen.
    pub fn intern(&mut self, selector: &str) -> SelectorId {
        if let Some(&id) = self.by_text.get(selector) {
            return id;
        }
        let id = self.compiled.len();
        self.compiled.push(compile(selector));
        self.texts.push(selector.to_owned());
        self.by_text.insert(selector.to_owned(), id);
        id
    }

    /// The text of selector `id`.
    pub fn text(&self, id: SelectorId) -> &str {
        &self.texts[id]
    }

    /// How many selectors have been seen.
    pub fn len(&self) -> usize {
        self.compiled.len()
    }

    /// Whether none has.
    pub fn is_empty(&self) -> bool {
        self.compiled.is_empty()
    }

    /// Whether selector `id` matches `topic`.
    pub fn matches(&self, id: SelectorId, topic: &str) -> bool {
        match &self.compiled[id] {
            Compiled::Any => true,
            Compiled::Exact(exact) => exact == topic,
            Compiled::Template(regex) => regex.is_match(topic),
            Compiled::Invalid => false,
        }
    }

    /// Whether any selector in `selectors` matches any of `topics`.
    pub fn any_matches(&self, selectors: &[SelectorId], topics: &[String]) -> bool {
        topics
            .iter()
            .any(|topic| selectors.iter().any(|&id| self.matches(id, topic)))
    }
}

/// Whether the selector texts in `selectors` match `topic`, without a
/// store (for a one-off check, such as a token's claims at publish time).
pub fn matches_any(selectors: &[String], topic: &str) -> bool {
    selectors.iter().any(|s| match compile(s) {
        Compiled::Any => true,
        Compiled::Exact(exact) => exact == topic,
        Compiled::Template(regex) => regex.is_match(topic),
        Compiled::Invalid => false,
    })
}

fn compile(selector: &str) -> Compiled {
    if selector == "*" {
        return Compiled::Any;
    }
    if !selector.contains('{') && !selector.contains('}') {
        return Compiled::Exact(selector.to_owned());
    }
    match template_regex(selector).and_then(|pattern| Regex::new(&pattern).ok()) {
        Some(regex) => Compiled::Template(regex),
        None => Compiled::Invalid,
    }
}

/// RFC 6570 §1.5: unreserved characters, and percent-encoded octets.
const UNRESERVED: &str = r"(?:[A-Za-z0-9\-._~]|%[0-9A-Fa-f]{2})";
/// Unreserved, reserved (gen-delims and sub-delims) and percent-encoded.
const RESERVED: &str = r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})";

/// The anchored regular expression for a URI template: its literals as
/// they are, each expression as what it can expand to. `None` for a
/// template that does not parse (an unclosed brace, an unknown operator, a
/// bad variable name).
fn template_regex(template: &str) -> Option<String> {
    let mut pattern = String::from("^");
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return None;
        }
        pattern.push_str(&regex::escape(&rest[..open]));
        let close = rest[open..].find('}')? + open;
        pattern.push_str(&expression_regex(&rest[open + 1..close])?);
        rest = &rest[close + 1..];
    }
    pattern.push_str(&regex::escape(rest));
    pattern.push('$');
    Some(pattern)
}

/// What one expression (`+path`, `?x,y`, `var:3`, `list*`) can expand to.
/// Every variable may be undefined, so every part is optional.
fn expression_regex(expression: &str) -> Option<String> {
    let (operator, variables) = match expression.chars().next()? {
        c @ ('+' | '#' | '.' | '/' | ';' | '?' | '&') => (Some(c), &expression[1..]),
        _ => (None, expression),
    };
    let names: Vec<&str> = variables
        .split(',')
        .map(|v| v.trim_end_matches('*'))
        .map(|v| v.split(':').next().unwrap_or(v))
        .collect();
    let valid_name = |name: &&str| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'%')
    };
    if !names.iter().all(valid_name) {
        return None;
    }
    // (what starts the expansion, what separates values, what a value is,
    // whether values are named `name=`).
    let (first, separator, value, named) = match operator {
        None => ("", ",", UNRESERVED, false),
        Some('+') => ("", ",", RESERVED, false),
        Some('#') => ("#", ",", RESERVED, false),
        Some('.') => (r"\.", r"\.", UNRESERVED, false),
        Some('/') => ("/", "/", UNRESERVED, false),
        Some(';') => (";", ";", UNRESERVED, true),
        Some('?') => (r"\?", "&", UNRESERVED, true),
        Some('&') => ("&", "&", UNRESERVED, true),
        Some(_) => return None,
    };
    // A value of a list or an exploded map may hold `,` or `=` too.
    let item = if named {
        format!(r"(?:{UNRESERVED}+(?:={value}*)?)")
    } else {
        format!("{value}*(?:,{value}*)*")
    };
    Some(format!("(?:{first}{item}(?:{separator}{item})*)?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(selector: &str, topic: &str) -> bool {
        let mut store = SelectorStore::default();
        let id = store.intern(selector);
        let direct = matches_any(&[selector.to_owned()], topic);
        assert_eq!(store.matches(id, topic), direct, "{selector} ~ {topic}");
        direct
    }

    #[test]
    fn selectors_table() {
        let table: &[(&str, &str, bool)] = &[
            ("*", "https://example.com/books/1", true),
            ("*", "", true),
            (
                "https://example.com/books/1",
                "https://example.com/books/1",
                true,
            ),
            (
                "https://example.com/books/1",
                "https://example.com/books/10",
                false,
            ),
            (
                "https://example.com/books/1",
                "https://example.com/books/",
                false,
            ),
            // {var}: one segment, never a `/`.
            (
                "https://example.com/books/{id}",
                "https://example.com/books/1",
                true,
            ),
            (
                "https://example.com/books/{id}",
                "https://example.com/books/abc-1_2.x~",
                true,
            ),
            (
                "https://example.com/books/{id}",
                "https://example.com/books/a/b",
                false,
            ),
            (
                "https://example.com/books/{id}",
                "https://example.com/users/1",
                false,
            ),
            (
                "https://example.com/books/{id}",
                "https://example.com/books/%20x",
                true,
            ),
            (
                "https://example.com/books/{id}",
                "https://example.com/books/1?x",
                false,
            ),
            // {+var}: reserved characters too, so `/`.
            (
                "https://example.com/{+path}",
                "https://example.com/books/1/chapters",
                true,
            ),
            (
                "https://example.com/{+path}/end",
                "https://example.com/a/b/end",
                true,
            ),
            ("{+url}", "https://example.com/anything?x=1#y", true),
            // Anchored: the whole topic must match.
            (
                "https://example.com/books/{id}",
                "xhttps://example.com/books/1",
                false,
            ),
            ("/books/{id}", "/books/1/", false),
            // Literals are not patterns.
            (
                "https://example.com/b.oks/{id}",
                "https://example.com/bXoks/1",
                false,
            ),
            // Level 3-4 operators.
            ("/search{?q,lang}", "/search?q=rust&lang=en", true),
            ("/search{?q,lang}", "/search", true),
            ("/search{?q}", "/search?q=a/b", false),
            ("/files{/path*}", "/files/a/b/c", true),
            ("/file{.ext}", "/file.tar.gz", true),
            ("/x{;id}", "/x;id=3", true),
            ("/page{#section}", "/page#a/b", true),
            ("/p{/id:3}", "/p/abc", true),
            ("/a/{x}/{y}", "/a/1/2", true),
            ("/a/{x}/{y}", "/a/1/2/3", false),
            // A broken template selects nothing, not even itself.
            ("/books/{id", "/books/{id", false),
            ("/books/id}", "/books/id}", false),
            ("/books/{!id}", "/books/1", false),
            ("/books/{}", "/books/", false),
        ];
        for &(selector, topic, want) in table {
            assert_eq!(check(selector, topic), want, "{selector} ~ {topic}");
        }
    }

    #[test]
    fn a_selector_is_compiled_once() {
        let mut store = SelectorStore::default();
        let a = store.intern("/books/{id}");
        let b = store.intern("/books/{id}");
        assert_eq!(a, b);
        assert_eq!(store.compiled.len(), 1);
        let topics = ["/users/1".to_owned(), "/books/2".to_owned()];
        assert!(store.any_matches(&[a], &topics));
        assert!(!store.any_matches(&[a], &topics[..1]));
    }
}
