//! Topic selectors: which updates a subscriber (or a token) selects.
//!
//! A selector matches a topic when it is `*`, when it equals the topic byte
//! for byte, or when it is an RFC 6570 URI template (levels 1 to 4) that
//! matches the whole topic: the topic is one the template could expand to.
//! `{var}` expands to unreserved characters only, so it never matches `/`;
//! `{+var}` and `{#var}` expand to reserved characters too, so they do.
//!
//! Every cost here is owned by something live and bounded:
//!
//! - a selector is at most [`Limits::max_selector_bytes`] long, and its
//!   compiled form (a DFA: one table, searched with no cache to grow) at
//!   most [`Limits::max_compiled_bytes`], else it is refused with a
//!   [`SelectorError`] that the routes answer `400`; at most
//!   [`Limits::max_templates`] distinct templates are live at once;
//! - a [`SelectorStore`] compiles each distinct selector once and counts the
//!   references to it; the last [`release`](SelectorStore::release) frees it,
//!   so what the store holds follows the live subscribers, never what
//!   clients once sent;
//! - a topic is tested only against selectors that can match it: literal
//!   selectors are found in a hash map, and templates are indexed by their
//!   literal prefix (the text before the first `{`), so a publish costs what
//!   it delivers, not how many templates are subscribed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use regex_automata::dfa::{dense, Automaton, StartKind};
use regex_automata::{nfa::thompson, Anchored, Input};
use slab::Slab;
use url::Url;

/// The bounds on one selector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest selector, in bytes.
    pub max_selector_bytes: usize,
    /// The largest compiled URI template, in bytes: its DFA's table (and
    /// what building it may use).
    pub max_compiled_bytes: usize,
    /// The most bytes of templates one subscribe may compile (see
    /// [`SelectorStore::intern_all`]): what bounds its time on the loop.
    pub max_subscribe_compiled_bytes: usize,
    /// The most distinct URI templates a store holds at once: with
    /// `max_compiled_bytes`, what bounds its memory and the worst publish.
    pub max_templates: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_selector_bytes: 1024,
            max_compiled_bytes: 16 * 1024,
            max_subscribe_compiled_bytes: 256 * 1024,
            max_templates: 8_192,
        }
    }
}

/// Why a selector was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SelectorError {
    /// Longer than [`Limits::max_selector_bytes`].
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Its compiled form would pass [`Limits::max_compiled_bytes`].
    TooComplex {
        /// The limit.
        max: usize,
    },
    /// What one subscribe made the store compile passes
    /// [`Limits::max_subscribe_compiled_bytes`].
    TooMuchToCompile {
        /// The limit.
        max: usize,
    },
    /// The store already holds [`Limits::max_templates`] distinct templates.
    Full {
        /// The limit.
        max: usize,
    },
    /// A `urlpattern` matcher that is not a URL Pattern.
    NotUrlPattern {
        /// The matcher as given.
        pattern: String,
        /// What the URL Pattern parser said.
        why: String,
    },
}

impl SelectorError {
    /// The HTTP status that answers it: the request's fault (`400`), or
    /// the hub's capacity (`503`).
    pub fn status(&self) -> u16 {
        match self {
            SelectorError::Full { .. } => 503,
            _ => 400,
        }
    }
}

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectorError::TooLong { len, max } => write!(
                f,
                "a topic selector is {len} bytes long; the hub takes at most {max} (--max-selector-bytes)"
            ),
            SelectorError::TooMuchToCompile { max } => write!(
                f,
                "the URI templates of one subscribe (or one token's claim) compile to more than {max} bytes together (--max-subscribe-compiled-bytes)"
            ),
            SelectorError::TooComplex { max } => write!(
                f,
                "a URI template compiles to more than {max} bytes (--max-compiled-bytes)"
            ),
            SelectorError::Full { max } => write!(
                f,
                "the hub holds {max} distinct URI templates and URL patterns, its limit (--max-templates); retry later"
            ),
            SelectorError::NotUrlPattern { pattern, why } => {
                write!(f, "{pattern:?} is not a URL Pattern: {why}")
            }
        }
    }
}

impl std::error::Error for SelectorError {}

/// One compiled selector: what it matches, decided once.
#[derive(Debug)]
pub struct Matcher {
    kind: Kind,
}

/// A compiled URI template: the literals a topic must hold, and the DFA
/// for what lies between its literal prefix and suffix.
#[derive(Debug)]
struct Template {
    dfa: dense::DFA<Vec<u32>>,
    skeleton: Skeleton,
}

#[derive(Debug)]
enum Kind {
    /// `*`: every topic.
    Any,
    /// A topic to compare byte for byte (no template expression in it).
    Exact(Box<str>),
    /// A URI template.
    Template(Box<Template>),
    /// A template with a syntax error: it selects nothing (and is not taken
    /// for an exact topic, which its braces show it was not meant to be).
    Invalid,
    /// A WHATWG URL Pattern (Mercure 1.0's `urlpattern` matcher type).
    UrlPattern(Box<UrlPat>),
}

/// A compiled URL Pattern and the base its relative topics resolve against.
struct UrlPat {
    pattern: urlpattern::UrlPattern<Bounded>,
    base: Url,
    /// Its key in the [`UrlIndex`], when it has one.
    key: Option<UrlKey>,
}

/// The host and the start of the path every URL a pattern matches has:
/// `host\0path-start`, and the path start's length.
#[derive(Clone, Debug)]
struct UrlKey {
    key: Box<[u8]>,
    path: usize,
}

impl UrlKey {
    /// The key of `pattern`, when its host is literal: its literal host and
    /// the path's literal start (up to its first character that may be
    /// syntax, an escape or a dot; the character a modifier follows, and a
    /// `/` a group follows, are left out too). Short rather than wrong: a
    /// shorter start only lets more patterns be tried.
    fn of(pattern: &urlpattern::UrlPattern<Bounded>) -> Option<UrlKey> {
        let host = pattern.hostname();
        let literal_host = host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !literal_host {
            return None;
        }
        let path = pattern.pathname().as_bytes();
        let plain = |b: u8| b.is_ascii_alphanumeric() || b"/_~-".contains(&b);
        let mut end = path.iter().position(|&b| !plain(b)).unwrap_or(path.len());
        if end < path.len() {
            // A modifier makes the character before it optional; and a
            // group's `/` before it is its prefix (`/books/:id?` matches
            // `/books`), optional with it.
            if b"?+*".contains(&path[end]) || path[end - usize::from(end > 0)] == b'/' {
                end = end.saturating_sub(1);
            }
        }
        let mut key = Vec::with_capacity(host.len() + 1 + end);
        key.extend_from_slice(host.as_bytes());
        key.push(0);
        key.extend_from_slice(&path[..end]);
        Some(UrlKey {
            key: key.into(),
            path: end,
        })
    }
}

/// Live URL Patterns, indexed as templates are by their prefix: by the
/// literal host and path start of what they match, so a topic meets only
/// the patterns whose host it has and whose path start its path starts
/// with; patterns whose host is not literal are tried on every topic.
#[derive(Debug, Default)]
struct UrlIndex {
    by_key: HashMap<Box<[u8]>, Vec<SelectorId>>,
    /// The path starts' lengths, with how many patterns have each.
    lengths: BTreeMap<usize, usize>,
    /// Patterns without a key.
    rest: Vec<SelectorId>,
}

impl UrlIndex {
    fn is_empty(&self) -> bool {
        self.by_key.is_empty() && self.rest.is_empty()
    }

    fn insert(&mut self, id: SelectorId, key: Option<&UrlKey>) {
        match key {
            None => self.rest.push(id),
            Some(k) => {
                self.by_key.entry(k.key.clone()).or_default().push(id);
                *self.lengths.entry(k.path).or_default() += 1;
            }
        }
    }

    fn remove(&mut self, id: SelectorId, key: Option<&UrlKey>) {
        let Some(k) = key else {
            self.rest.retain(|&other| other != id);
            return;
        };
        if let Some(bucket) = self.by_key.get_mut(&k.key) {
            bucket.retain(|&other| other != id);
            if bucket.is_empty() {
                self.by_key.remove(&k.key);
            }
        }
        if let Some(count) = self.lengths.get_mut(&k.path) {
            *count -= 1;
            if *count == 0 {
                self.lengths.remove(&k.path);
            }
        }
    }

    /// Adds to `out` each pattern that may match one of `urls`, once.
    fn candidates(&self, urls: &[Option<Url>], out: &mut Vec<SelectorId>) {
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        for url in urls.iter().flatten() {
            let path = url.path().as_bytes();
            let mut key = Vec::with_capacity(64);
            key.extend_from_slice(url.host_str().unwrap_or("").as_bytes());
            key.push(0);
            let host = key.len();
            for &len in self.lengths.range(..=path.len()).map(|(len, _)| len) {
                key.truncate(host);
                key.extend_from_slice(&path[..len]);
                if let Some(bucket) = self.by_key.get(key.as_slice()) {
                    if seen.insert(key.clone()) {
                        out.extend_from_slice(bucket);
                    }
                }
            }
        }
        out.extend_from_slice(&self.rest);
    }
}

impl UrlPat {
    /// Whether it matches `url` (a topic parsed against the base).
    fn test(&self, url: &Url) -> bool {
        let input = urlpattern::UrlPatternMatchInput::Url(url.clone());
        self.pattern.test(input).unwrap_or(false)
    }
}

impl fmt::Debug for UrlPat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "UrlPat({}{})",
            self.pattern.hostname(),
            self.pattern.pathname()
        )
    }
}

/// What building one regular expression of a URL Pattern (one per URL
/// component) may take: the `regex` crate's program and lazy DFA limits, so
/// a crafted pattern is refused rather than compiled large. The engine
/// matches in linear time, so no pattern backtracks (draft-08 §URL Pattern).
const URLPATTERN_REGEX_BYTES: usize = 64 * 1024;

/// How much more a byte of topic costs a URL Pattern than a template's DFA,
/// in a matching's budget (measured: about 5 µs a 1 KiB topic, against
/// about 1 µs for a DFA's pass).
const URLPATTERN_WEIGHT: usize = 4;

/// What one URL Pattern is charged against a subscribe's compile budget,
/// beyond its length: eight small regular expressions.
const URLPATTERN_COST: usize = 2 * 1024;

/// The `regex` crate as URL Pattern's engine, with size limits.
#[derive(Debug)]
struct Bounded(regex::Regex);

impl urlpattern::regexp::RegExp for Bounded {
    fn syntax() -> urlpattern::RegexSyntax {
        urlpattern::RegexSyntax::Rust
    }

    fn parse(pattern: &str, _flags: &str, _force_eval: bool) -> Result<Self, ()> {
        regex::RegexBuilder::new(pattern)
            .size_limit(URLPATTERN_REGEX_BYTES)
            .dfa_size_limit(URLPATTERN_REGEX_BYTES)
            .build()
            .map(Bounded)
            .map_err(|_| ())
    }

    fn matches<'a>(&self, text: &'a str) -> Option<Vec<Option<&'a str>>> {
        let captures = self.0.captures(text)?;
        Some(
            captures
                .iter()
                .skip(1)
                .map(|c| c.map(|m| m.as_str()))
                .collect(),
        )
    }

    fn pattern_string(&self) -> &str {
        self.0.as_str()
    }
}

impl Matcher {
    /// A Mercure topic selector: `*`, an exact topic, or a URI template.
    ///
    /// # Errors
    /// When it passes one of `limits`.
    pub fn selector(text: &str, limits: Limits) -> Result<Matcher, SelectorError> {
        if text.len() > limits.max_selector_bytes {
            return Err(SelectorError::TooLong {
                len: text.len(),
                max: limits.max_selector_bytes,
            });
        }
        let kind = if text == "*" {
            Kind::Any
        } else if !is_template(text) {
            Kind::Exact(text.into())
        } else {
            // The literal prefix and suffix are the skeleton's to check;
            // the DFA takes what lies between (a long literal would cost it
            // a state a byte).
            let skeleton = Skeleton::of(text);
            let middle = &text[skeleton.prefix.len()..text.len() - skeleton.suffix.len()];
            match template_regex(text).and_then(|_| template_regex(middle)) {
                None => Kind::Invalid,
                Some(pattern) => {
                    let max = limits.max_compiled_bytes;
                    let dfa = dense::Builder::new()
                        .configure(
                            dense::Config::new()
                                .start_kind(StartKind::Anchored)
                                .dfa_size_limit(Some(max))
                                .determinize_size_limit(Some(max)),
                        )
                        .thompson(thompson::Config::new().nfa_size_limit(Some(max)))
                        .build(&pattern)
                        // The pattern is ours and always parses: the one
                        // error left is a size limit.
                        .map_err(|_| SelectorError::TooComplex { max })?;
                    Kind::Template(Box::new(Template { dfa, skeleton }))
                }
            }
        };
        Ok(Matcher { kind })
    }

    /// A Mercure 1.0 `urlpattern` matcher: `*`, or a URL Pattern, relative
    /// ones resolved against `base` (the hub's URL). Case-sensitive (the
    /// draft forbids `ignoreCase`), host names aside, as URLs have them.
    ///
    /// # Errors
    /// When it passes `limits`, or is not a URL Pattern.
    pub fn url_pattern(text: &str, base: &Url, limits: Limits) -> Result<Matcher, SelectorError> {
        if text.len() > limits.max_selector_bytes {
            return Err(SelectorError::TooLong {
                len: text.len(),
                max: limits.max_selector_bytes,
            });
        }
        if text == "*" {
            return Ok(Matcher { kind: Kind::Any });
        }
        let bad = |e: urlpattern::Error| SelectorError::NotUrlPattern {
            pattern: text.to_owned(),
            why: e.to_string(),
        };
        let init = urlpattern::UrlPatternInit::parse_constructor_string::<Bounded>(
            text,
            Some(base.clone()),
        )
        .map_err(bad)?;
        let pattern =
            urlpattern::UrlPattern::<Bounded>::parse(init, Default::default()).map_err(bad)?;
        let key = UrlKey::of(&pattern);
        Ok(Matcher {
            kind: Kind::UrlPattern(Box::new(UrlPat {
                pattern,
                base: base.clone(),
                key,
            })),
        })
    }

    /// A Mercure 1.0 `exact` matcher: `*`, else the text byte for byte.
    pub fn exact(text: &str) -> Matcher {
        if text == "*" {
            return Matcher { kind: Kind::Any };
        }
        Matcher::literal(text)
    }

    /// The matcher `spec` describes (relative URL Patterns resolved
    /// against `base`).
    ///
    /// # Errors
    /// As [`selector`](Self::selector) and [`url_pattern`](Self::url_pattern).
    pub fn of(spec: &Spec, base: &Url, limits: Limits) -> Result<Matcher, SelectorError> {
        match spec.reading {
            Reading::Selector => Matcher::selector(&spec.text, limits),
            Reading::Literal => Ok(Matcher::literal(&spec.text)),
            Reading::Exact => Ok(Matcher::exact(&spec.text)),
            Reading::UrlPattern => Matcher::url_pattern(&spec.text, base, limits),
        }
    }

    /// A native topic: matches itself only, braces and `*` included.
    pub fn literal(text: &str) -> Matcher {
        Matcher {
            kind: Kind::Exact(text.into()),
        }
    }

    /// The bytes its compiled form takes (a template's DFA; nothing for
    /// the others).
    pub fn compiled_bytes(&self) -> usize {
        match &self.kind {
            Kind::Template(t) => t.dfa.memory_usage(),
            // The regex crate does not tell its size: charged by estimate.
            Kind::UrlPattern(u) => {
                URLPATTERN_COST + 16 * (u.pattern.pathname().len() + u.pattern.hostname().len())
            }
            _ => 0,
        }
    }

    /// Whether it matches `topic`.
    pub fn matches(&self, topic: &str) -> bool {
        match &self.kind {
            Kind::Any => true,
            Kind::Exact(exact) => **exact == *topic,
            // The literals first: they turn most topics away in a few
            // comparisons, without touching the regex's far larger state.
            Kind::Template(t) => t.skeleton.middle_of(topic).is_some_and(|middle| {
                t.dfa
                    .try_search_fwd(&Input::new(middle).anchored(Anchored::Yes).earliest(true))
                    .is_ok_and(|found| found.is_some())
            }),
            Kind::Invalid => false,
            // A topic that is no URL reference against the base matches no
            // URL Pattern (draft-08 §URL Pattern).
            Kind::UrlPattern(u) => Url::options()
                .base_url(Some(&u.base))
                .parse(topic)
                .is_ok_and(|url| u.test(&url)),
        }
    }
}

/// The literal text of a URI template, outside its expressions: a topic it
/// matches starts with the first piece, ends with the last (when the
/// template ends with a literal) and holds the others in order between.
/// What every expression expands to is optional, so nothing else is
/// certain.
#[derive(Debug)]
struct Skeleton {
    prefix: Box<str>,
    middle: Box<[Box<str>]>,
    suffix: Box<str>,
}

impl Skeleton {
    fn of(template: &str) -> Skeleton {
        // Literal pieces, split at each `{…}` (the template parsed, so
        // braces pair up).
        let mut pieces: Vec<&str> = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            pieces.push(&rest[..open]);
            let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
            rest = &rest[close..];
        }
        let suffix = rest;
        let prefix = if pieces.is_empty() {
            ""
        } else {
            pieces.remove(0)
        };
        Skeleton {
            prefix: prefix.into(),
            middle: pieces
                .into_iter()
                .filter(|p| !p.is_empty())
                .map(Into::into)
                .collect(),
            suffix: suffix.into(),
        }
    }

    /// What lies between the prefix and the suffix of `topic`, when it
    /// holds the skeleton.
    fn middle_of<'t>(&self, topic: &'t str) -> Option<&'t str> {
        let between = topic
            .strip_prefix(&*self.prefix)?
            .strip_suffix(&*self.suffix)?;
        let mut rest = between;
        for piece in &*self.middle {
            let at = rest.find(&**piece)?;
            rest = &rest[at + piece.len()..];
        }
        Some(between)
    }

    #[cfg(test)]
    fn holds(&self, topic: &str) -> bool {
        self.middle_of(topic).is_some()
    }
}

/// The end of a template's literal suffix, kept beside it in the prefix
/// index: most topics that do not end so are turned away without a visit
/// to the template itself.
#[derive(Clone, Copy, Debug)]
struct Tail {
    /// The suffix's length.
    len: usize,
    /// Its last bytes (up to 8), and how many.
    last: [u8; 8],
    kept: u8,
}

impl Tail {
    fn of(suffix: &[u8]) -> Tail {
        let kept = suffix.len().min(8);
        let mut last = [0; 8];
        last[..kept].copy_from_slice(&suffix[suffix.len() - kept..]);
        Tail {
            len: suffix.len(),
            last,
            kept: kept as u8,
        }
    }

    /// Whether `topic`, which starts with a prefix of `prefix` bytes, may
    /// end with the suffix: it is long enough for both and ends with its
    /// last bytes.
    fn fits(&self, topic: &[u8], prefix: usize) -> bool {
        topic.len() >= prefix + self.len && topic.ends_with(&self.last[..usize::from(self.kept)])
    }
}

/// Whether a Mercure selector is a URI template (has an expression).
fn is_template(text: &str) -> bool {
    text.contains(['{', '}'])
}

/// Whether any of `matchers` matches `topic`.
pub fn any_matches(matchers: &[Matcher], topic: &str) -> bool {
    matchers.iter().any(|m| m.matches(topic))
}

/// The index of a selector in its [`SelectorStore`], valid while someone
/// holds a reference to it.
pub type SelectorId = usize;

/// How a selector's text is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reading {
    /// A Mercure 0.x selector: `*`, an exact topic or a URI template.
    Selector,
    /// A native topic: the text itself, whatever it holds.
    Literal,
    /// A Mercure 1.0 `exact` matcher: `*`, else the text byte for byte.
    Exact,
    /// A Mercure 1.0 `urlpattern` matcher: `*`, else a URL Pattern.
    UrlPattern,
}

impl Reading {
    /// Its Mercure 1.0 matcher type name (`match_type`), for the two that
    /// have one.
    pub fn match_type(self) -> Option<&'static str> {
        match self {
            Reading::Exact => Some("exact"),
            Reading::UrlPattern => Some("urlpattern"),
            _ => None,
        }
    }

    /// The Mercure 1.0 matcher type named `name` (case-sensitive).
    pub fn of_match_type(name: &str) -> Option<Reading> {
        match name {
            "exact" => Some(Reading::Exact),
            "urlpattern" => Some(Reading::UrlPattern),
            _ => None,
        }
    }
}

/// A selector as a request or a token gives it: its text, and how to read
/// it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Spec {
    /// How to read it.
    pub reading: Reading,
    /// Its text.
    pub text: String,
}

impl Spec {
    /// `text` read as `reading`.
    pub fn new(reading: Reading, text: impl Into<String>) -> Spec {
        Spec {
            reading,
            text: text.into(),
        }
    }
}

struct Slot {
    text: Box<str>,
    matcher: Matcher,
    refs: usize,
    /// The store's [`generation`](SelectorStore::generation) when it was
    /// made: tells it from a selector freed before whose id it reuses.
    born: u64,
}

/// A publish's topics being matched against the live templates a slice at
/// a time ([`SelectorStore::begin`], [`advance`](SelectorStore::advance),
/// [`finish`](SelectorStore::finish)), so that a publish meeting thousands
/// of costly templates never holds the loop for long. What the store
/// becomes meanwhile counts: a template freed is not matched, one made is
/// tried when the matching finishes.
#[derive(Debug)]
pub struct Matching {
    /// The templates to try.
    candidates: Vec<SelectorId>,
    /// How many of them have been tried.
    next: usize,
    /// Those that matched one of the topics.
    matched: Vec<SelectorId>,
    /// The store's generation when it began: a slot born later is not the
    /// candidate it began with (that one was freed), and is tried when it
    /// finishes.
    since: u64,
    /// The topics parsed as URLs against the store's base, once, when the
    /// first URL Pattern is tried (`None` in a topic's place: not a URL).
    urls: Option<Vec<Option<Url>>>,
}

/// Selectors being interned for one request, maybe over several loop passes
/// (see [`SelectorStore::intern_some`]): the references taken so far, and
/// how much they compiled.
#[derive(Debug, Default)]
pub struct Interning {
    ids: Vec<SelectorId>,
    compiled: usize,
}

/// What trying one template costs a matching's budget, beyond the bytes of
/// the topics it may read.
const CANDIDATE_COST: usize = 32;

/// Live selectors, each compiled once, counted by reference, and indexed so
/// a topic meets only the selectors that can match it.
pub struct SelectorStore {
    limits: Limits,
    slots: Slab<Slot>,
    /// Exact selectors (native topics and Mercure selectors without an
    /// expression) by their text: matched by one lookup.
    exact: HashMap<Box<str>, SelectorId>,
    /// `*` and URI templates (valid or not) by their text.
    patterns: HashMap<Box<str>, SelectorId>,
    /// URL Patterns by their text.
    url_patterns: HashMap<Box<str>, SelectorId>,
    /// URL Patterns by the host and path start every URL they match has.
    url_index: UrlIndex,
    /// What relative URL Patterns and topics resolve against: the hub's URL.
    base: Url,
    /// The selector `*`, while someone holds it.
    any: Option<SelectorId>,
    /// Valid templates by their literal prefix.
    by_prefix: HashMap<Box<[u8]>, Vec<(SelectorId, Tail)>>,
    /// The lengths of the prefixes in `by_prefix`, with how many templates
    /// have each: a topic is looked up once per distinct length.
    prefix_lengths: BTreeMap<usize, usize>,
    /// How many templates (valid or not) and `*` are live.
    templates: usize,
    /// How many selectors were ever made: each one's birth.
    generation: u64,
    /// How many [`Matching`]s are under way.
    in_flight: usize,
    /// Templates made while a matching was under way (cleared once none
    /// is): each one finishing tries those born after it began.
    recent: Vec<SelectorId>,
}

impl fmt::Debug for SelectorStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SelectorStore({} live)", self.slots.len())
    }
}

impl Default for SelectorStore {
    fn default() -> Self {
        SelectorStore::new(Limits::default())
    }
}

/// The hub URL relative URL Patterns resolve against when none is given.
pub const DEFAULT_BASE: &str = "http://localhost/.well-known/mercure";

/// Which index of the store a selector lives in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Index {
    Exact,
    Patterns,
    UrlPatterns,
}

impl SelectorStore {
    /// An empty store whose selectors keep to `limits` (relative URL
    /// Patterns resolved against [`DEFAULT_BASE`]).
    pub fn new(limits: Limits) -> Self {
        let base = Url::parse(DEFAULT_BASE).expect("the default base is a URL");
        SelectorStore::with_base(limits, base)
    }

    /// An empty store whose selectors keep to `limits`, and whose relative
    /// URL Patterns resolve against `base`.
    pub fn with_base(limits: Limits, base: Url) -> Self {
        SelectorStore {
            limits,
            slots: Slab::new(),
            exact: HashMap::new(),
            patterns: HashMap::new(),
            url_patterns: HashMap::new(),
            url_index: UrlIndex::default(),
            base,
            any: None,
            by_prefix: HashMap::new(),
            prefix_lengths: BTreeMap::new(),
            templates: 0,
            generation: 0,
            in_flight: 0,
            recent: Vec::new(),
        }
    }

    /// A reference to `text` read as `reading`, compiling it if no one holds
    /// it yet. Each call must be matched by one [`release`](Self::release).
    ///
    /// # Errors
    /// When the selector passes the store's limits (nothing is kept).
    pub fn intern(&mut self, text: &str, reading: Reading) -> Result<SelectorId, SelectorError> {
        // `*` is every topic's wildcard in each Mercure reading, and an
        // exact matcher is a native topic: one slot serves them alike.
        let reading = match reading {
            Reading::Exact | Reading::UrlPattern if text == "*" => Reading::Selector,
            Reading::Exact => Reading::Literal,
            other => other,
        };
        let index = match reading {
            Reading::Selector if text == "*" || is_template(text) => Index::Patterns,
            Reading::UrlPattern => Index::UrlPatterns,
            _ => Index::Exact,
        };
        if let Some(&id) = self.index(index).get(text) {
            self.slots[id].refs += 1;
            return Ok(id);
        }
        if index != Index::Exact && self.templates >= self.limits.max_templates {
            return Err(SelectorError::Full {
                max: self.limits.max_templates,
            });
        }
        let matcher = match reading {
            Reading::Literal if text.len() > self.limits.max_selector_bytes => {
                return Err(SelectorError::TooLong {
                    len: text.len(),
                    max: self.limits.max_selector_bytes,
                })
            }
            Reading::Literal | Reading::Exact => Matcher::literal(text),
            Reading::Selector => Matcher::selector(text, self.limits)?,
            Reading::UrlPattern => Matcher::url_pattern(text, &self.base, self.limits)?,
        };
        self.generation += 1;
        let id = self.slots.insert(Slot {
            text: text.into(),
            matcher,
            refs: 1,
            born: self.generation,
        });
        let slot = &self.slots[id];
        if !matches!(slot.matcher.kind, Kind::Exact(_)) {
            self.templates += 1;
        }
        match &slot.matcher.kind {
            Kind::Exact(_) => {
                self.exact.insert(text.into(), id);
            }
            Kind::Any => {
                self.patterns.insert(text.into(), id);
                self.any = Some(id);
            }
            Kind::Template(t) => {
                let prefix = t.skeleton.prefix.len();
                self.patterns.insert(text.into(), id);
                let tail = Tail::of(t.skeleton.suffix.as_bytes());
                self.by_prefix
                    .entry(text.as_bytes()[..prefix].into())
                    .or_default()
                    .push((id, tail));
                *self.prefix_lengths.entry(prefix).or_default() += 1;
                if self.in_flight > 0 {
                    self.recent.push(id);
                }
            }
            Kind::Invalid => {
                self.patterns.insert(text.into(), id);
            }
            Kind::UrlPattern(pattern) => {
                self.url_patterns.insert(text.into(), id);
                self.url_index.insert(id, pattern.key.as_ref());
                if self.in_flight > 0 {
                    self.recent.push(id);
                }
            }
        }
        Ok(id)
    }

    fn index(&self, index: Index) -> &HashMap<Box<str>, SelectorId> {
        match index {
            Index::Exact => &self.exact,
            Index::Patterns => &self.patterns,
            Index::UrlPatterns => &self.url_patterns,
        }
    }

    /// The URL relative URL Patterns resolve against.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// References to every selector of `list` read as `reading`, sorted,
    /// each once; nothing is kept on an error. What it compiles (templates
    /// no one held) may total at most
    /// [`Limits::max_subscribe_compiled_bytes`], so one request's time on
    /// the loop stays bounded.
    ///
    /// # Errors
    /// As [`intern`](Self::intern), and
    /// [`SelectorError::TooMuchToCompile`].
    pub fn intern_all<'a>(
        &mut self,
        list: impl IntoIterator<Item = &'a str>,
        reading: Reading,
    ) -> Result<Vec<SelectorId>, SelectorError> {
        let list: Vec<Spec> = list.into_iter().map(|t| Spec::new(reading, t)).collect();
        let (mut interning, mut unbounded) = (Interning::default(), usize::MAX);
        self.intern_some(&list, &mut interning, &mut unbounded)?;
        Ok(self.interned(interning))
    }

    /// Goes on interning `list` (each read as it says) where `interning` left
    /// off, until `budget` (about the bytes compiled) is spent; answers
    /// whether all of it is interned. A request whose selectors take long
    /// to compile is so interned over several loop passes. On an error,
    /// what `interning` held is given back.
    ///
    /// # Errors
    /// As [`intern_all`](Self::intern_all).
    pub fn intern_some(
        &mut self,
        list: &[Spec],
        interning: &mut Interning,
        budget: &mut usize,
    ) -> Result<bool, SelectorError> {
        while let Some(spec) = list.get(interning.ids.len()) {
            if *budget == 0 {
                return Ok(false);
            }
            let interned = self.intern(&spec.text, spec.reading).and_then(|id| {
                interning.ids.push(id);
                let slot = &self.slots[id];
                let compiled = if slot.refs == 1 {
                    slot.matcher.compiled_bytes()
                } else {
                    0
                };
                *budget = budget.saturating_sub(CANDIDATE_COST + compiled);
                interning.compiled += compiled;
                if interning.compiled > self.limits.max_subscribe_compiled_bytes {
                    return Err(SelectorError::TooMuchToCompile {
                        max: self.limits.max_subscribe_compiled_bytes,
                    });
                }
                Ok(())
            });
            if let Err(e) = interned {
                self.abandon(std::mem::take(interning));
                return Err(e);
            }
        }
        Ok(true)
    }

    /// What `interning` holds, sorted, each once (a repeat's reference is
    /// given back).
    pub fn interned(&mut self, interning: Interning) -> Vec<SelectorId> {
        let mut ids = interning.ids;
        ids.sort_unstable();
        let mut kept: Vec<SelectorId> = Vec::with_capacity(ids.len());
        for id in ids {
            if kept.last() == Some(&id) {
                self.release(id);
            } else {
                kept.push(id);
            }
        }
        kept
    }

    /// Gives back what `interning` holds (its request went away).
    pub fn abandon(&mut self, interning: Interning) {
        for id in interning.ids {
            self.release(id);
        }
    }

    /// Gives back one reference to `id`; the last one frees the selector.
    pub fn release(&mut self, id: SelectorId) {
        let Some(slot) = self.slots.get_mut(id) else {
            debug_assert!(false, "released a selector no one held");
            return;
        };
        slot.refs -= 1;
        if slot.refs > 0 {
            return;
        }
        let slot = self.slots.remove(id);
        if !matches!(slot.matcher.kind, Kind::Exact(_)) {
            self.templates -= 1;
        }
        match slot.matcher.kind {
            Kind::Exact(_) => {
                self.exact.remove(&slot.text);
            }
            Kind::Any => {
                self.patterns.remove(&slot.text);
                self.any = None;
            }
            Kind::Template(t) => {
                let prefix = t.skeleton.prefix.len();
                self.patterns.remove(&slot.text);
                let key = &slot.text.as_bytes()[..prefix];
                if let Some(bucket) = self.by_prefix.get_mut(key) {
                    bucket.retain(|&(other, _)| other != id);
                    if bucket.is_empty() {
                        self.by_prefix.remove(key);
                    }
                }
                if let Some(count) = self.prefix_lengths.get_mut(&prefix) {
                    *count -= 1;
                    if *count == 0 {
                        self.prefix_lengths.remove(&prefix);
                    }
                }
            }
            Kind::Invalid => {
                self.patterns.remove(&slot.text);
            }
            Kind::UrlPattern(pattern) => {
                self.url_patterns.remove(&slot.text);
                self.url_index.remove(id, pattern.key.as_ref());
            }
        }
    }

    /// The text of selector `id`.
    pub fn text(&self, id: SelectorId) -> &str {
        &self.slots[id].text
    }

    /// How many selectors are live.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Whether selector `id` matches `topic`.
    pub fn matches(&self, id: SelectorId, topic: &str) -> bool {
        self.slots[id].matcher.matches(topic)
    }

    /// Every live selector that matches one of `topics`, sorted, without
    /// repeats, worked out at once (a [`Matching`] begun and finished).
    pub fn matching(&mut self, topics: &[String]) -> Vec<SelectorId> {
        let matching = self.begin(topics);
        self.finish(matching, topics)
    }

    /// Begins matching `topics`: finds the templates that can match one of
    /// them. Each topic costs one lookup per distinct template prefix
    /// length; only the templates whose literal prefix it starts with are
    /// candidates, never every selector. Must be [`finish`](Self::finish)ed.
    pub fn begin(&mut self, topics: &[String]) -> Matching {
        self.in_flight += 1;
        // Each template lies in one bucket: the buckets the topics reach,
        // each taken once, hold each candidate once.
        let mut buckets: Vec<&[u8]> = Vec::new();
        let mut seen: HashSet<&[u8]> = HashSet::new();
        for topic in topics {
            let bytes = topic.as_bytes();
            for &len in self
                .prefix_lengths
                .range(..=bytes.len())
                .map(|(len, _)| len)
            {
                let prefix = &bytes[..len];
                if self.by_prefix.contains_key(prefix) && seen.insert(prefix) {
                    buckets.push(prefix);
                }
            }
        }
        // A template whose literal suffix no topic ends with is turned away
        // here, from the index alone: thousands of templates under one
        // prefix cost a scan of one array, not a visit to each.
        let candidates = buckets
            .iter()
            .flat_map(|prefix| {
                self.by_prefix[*prefix].iter().filter(|(_, tail)| {
                    topics.iter().any(|t| tail.fits(t.as_bytes(), prefix.len()))
                })
            })
            .map(|&(id, _)| id);
        let mut candidates: Vec<SelectorId> = candidates.collect();
        // URL Patterns by the host and path start of the topics as URLs
        // (parsed once, here, when any pattern is live).
        let urls = (!self.url_index.is_empty()).then(|| {
            let parser = Url::options().base_url(Some(&self.base));
            topics
                .iter()
                .map(|t| parser.parse(t).ok())
                .collect::<Vec<_>>()
        });
        if let Some(urls) = &urls {
            self.url_index.candidates(urls, &mut candidates);
        }
        Matching {
            candidates,
            next: 0,
            matched: Vec::new(),
            since: self.generation,
            urls,
        }
    }

    /// Tries `matching`'s candidates on `topics` until `budget` (about the
    /// bytes their matchers may read) is spent; answers whether all have
    /// been tried. Each candidate is tried on every topic in turn, so its
    /// matcher is brought into the CPU's cache once per publish.
    pub fn advance(&self, matching: &mut Matching, topics: &[String], budget: &mut usize) -> bool {
        let bytes = topics.iter().map(String::len).sum::<usize>();
        let cost = CANDIDATE_COST + bytes;
        // A URL Pattern reads a topic with up to eight regular expressions,
        // each searching (not a DFA's one pass): weighed so that a slice
        // of URL Patterns takes about as long as one of templates.
        let pattern_cost = CANDIDATE_COST + URLPATTERN_WEIGHT * bytes;
        while let Some(&id) = matching.candidates.get(matching.next) {
            if *budget == 0 {
                return false;
            }
            matching.next += 1;
            let Some(slot) = self.slots.get(id).filter(|s| s.born <= matching.since) else {
                continue; // freed meanwhile
            };
            let hit = match &slot.matcher.kind {
                Kind::UrlPattern(pattern) => {
                    *budget = budget.saturating_sub(pattern_cost);
                    let urls = matching.urls.get_or_insert_with(|| {
                        let parser = Url::options().base_url(Some(&self.base));
                        topics.iter().map(|t| parser.parse(t).ok()).collect()
                    });
                    urls.iter().flatten().any(|url| pattern.test(url))
                }
                _ => {
                    *budget = budget.saturating_sub(cost);
                    topics.iter().any(|t| slot.matcher.matches(t))
                }
            };
            if hit {
                matching.matched.push(id);
            }
        }
        true
    }

    /// Finishes `matching` (trying at once whatever is left): the selectors
    /// live now that match one of `topics`, sorted, without repeats. Exact
    /// selectors and `*` are looked up now; templates made since it began
    /// are tried now.
    pub fn finish(&mut self, mut matching: Matching, topics: &[String]) -> Vec<SelectorId> {
        let mut unbounded = usize::MAX;
        self.advance(&mut matching, topics, &mut unbounded);
        let mut found = Vec::new();
        if !topics.is_empty() {
            found.extend(self.any);
            found.extend(topics.iter().filter_map(|t| self.exact.get(t.as_str())));
        }
        let since = matching.since;
        found.extend(
            matching
                .matched
                .iter()
                .copied()
                .filter(|&id| self.slots.get(id).is_some_and(|s| s.born <= since)),
        );
        found.extend(self.recent.iter().copied().filter(|&id| {
            self.slots.get(id).is_some_and(|slot| {
                slot.born > matching.since && topics.iter().any(|t| slot.matcher.matches(t))
            })
        }));
        self.in_flight -= 1;
        if self.in_flight == 0 {
            self.recent.clear();
        } else {
            // Others are under way: keep only what is still live, once, so
            // churn while matchings follow one another cannot grow it past
            // the live templates.
            let slots = &self.slots;
            self.recent.retain(|&id| slots.contains(id));
            self.recent.sort_unstable();
            self.recent.dedup();
        }
        found.sort_unstable();
        found.dedup();
        found
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
    if !named {
        // Values, a list's items (`,`) and the separator in any order:
        // the same language as `value*(,value*)*` between separators,
        // written so its automaton is built in a tenth of the time.
        return Some(format!("(?:{first}(?:{value}|,|{separator})*)?"));
    }
    let item = format!(r"(?:{UNRESERVED}+(?:={value}*)?)");
    Some(format!("(?:{first}{item}(?:{separator}{item})*)?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_patterns_match_as_the_standard_says_relative_ones_against_the_base() {
        let mut store = SelectorStore::default();
        let books = store
            .intern("https://example.com/books/:id", Reading::UrlPattern)
            .unwrap();
        let relative = store.intern("/books/:id", Reading::UrlPattern).unwrap();
        let found = |store: &mut SelectorStore, topic: &str| store.matching(&[topic.to_owned()]);
        assert_eq!(found(&mut store, "https://example.com/books/1"), [books]);
        assert_eq!(
            found(&mut store, "https://EXAMPLE.com/books/1"),
            [books],
            "hosts in any case"
        );
        assert!(
            found(&mut store, "https://example.com/Books/1").is_empty(),
            "paths in one"
        );
        assert!(found(&mut store, "https://example.com/books/1/x").is_empty());
        assert_eq!(
            found(&mut store, "/books/7"),
            [relative],
            "relative to the hub's URL"
        );
        assert_eq!(found(&mut store, "http://localhost/books/7"), [relative]);
        assert!(
            found(&mut store, "http://[::1").is_empty(),
            "no URL: no match"
        );
        // `*` is every topic's wildcard in 1.0's readings; an exact matcher
        // is the text byte for byte.
        let any = store.intern("*", Reading::UrlPattern).unwrap();
        assert_eq!(store.intern("*", Reading::Exact).unwrap(), any);
        let exact = store.intern("/books/:id", Reading::Exact).unwrap();
        assert_ne!(exact, relative);
        assert_eq!(found(&mut store, "/books/:id"), [relative, any, exact]);
        for id in [books, relative, any, any, exact] {
            store.release(id);
        }
        assert!(store.is_empty() && store.url_index.is_empty() && store.url_patterns.is_empty());
        assert!(store.url_index.lengths.is_empty());
    }

    #[test]
    fn the_url_pattern_index_finds_what_the_patterns_match() {
        let patterns = [
            "https://example.com/books/:id",
            "https://example.com/books?",
            "https://example.com/books/*",
            "https://example.com/b*",
            "https://example.com/books{/:id}?",
            "https://example.com/caf%C3%A9/:x",
            "https://example.com/café/:x",
            "https://example.com/a/../books/:id",
            "https://example.com/./books/:id",
            "https://EXAMPLE.com/books/:id",
            "https://*.example.com/books/:id",
            "https://:sub.example.com/:p",
            "http{s}?://example.com/books/:id",
            "https://example.com/books/:id(\\d+)",
            "https://example.com/books/\\:id",
            "https://example.com:8080/books/:id",
            "https://xn--caf-dma.example/:p",
            "urn\\:isbn\\:*",
            "/books/:id",
            "./:id",
            "https://example.com",
            "*",
        ];
        let topics = [
            "https://example.com/books/1",
            "https://example.com/books",
            "https://example.com/book",
            "https://example.com/books/",
            "https://example.com/caf%C3%A9/1",
            "https://example.com/café/1",
            "https://example.com/a/../books/1",
            "https://EXAMPLE.COM/books/1",
            "https://www.example.com/books/1",
            "http://example.com/books/1",
            "https://example.com:8080/books/1",
            "https://café.example/x",
            "urn:isbn:123",
            "/books/2",
            "books/3",
            "http://localhost/books/4",
            "https://example.com/",
            "not a url at all",
            "",
        ];
        let base = Url::parse(DEFAULT_BASE).unwrap();
        for pattern in patterns {
            let mut store = SelectorStore::default();
            let Ok(id) = store.intern(pattern, Reading::UrlPattern) else {
                panic!("{pattern} is a URL Pattern");
            };
            let direct = Matcher::url_pattern(pattern, &base, Limits::default()).unwrap();
            for topic in topics {
                let indexed = store.matching(&[topic.to_owned()]).contains(&id);
                assert_eq!(indexed, direct.matches(topic), "{pattern} ~ {topic}");
            }
        }
    }

    #[test]
    fn a_bad_or_costly_url_pattern_is_refused_with_why() {
        let mut store = SelectorStore::default();
        for bad in [
            "https://example.com/(",
            "https://example.com/:id(\\d{1000}){1000}",
        ] {
            let e = store.intern(bad, Reading::UrlPattern).unwrap_err();
            assert!(
                matches!(e, SelectorError::NotUrlPattern { .. }),
                "{bad}: {e}"
            );
            assert_eq!(e.status(), 400);
        }
        assert!(store.is_empty());
    }

    fn check(selector: &str, topic: &str) -> bool {
        let mut store = SelectorStore::default();
        let id = store.intern(selector, Reading::Selector).unwrap();
        let direct = Matcher::selector(selector, Limits::default()).unwrap();
        let indexed = store.matching(&[topic.to_owned()]).contains(&id);
        assert_eq!(
            store.matches(id, topic),
            direct.matches(topic),
            "{selector} ~ {topic}"
        );
        assert_eq!(
            indexed,
            direct.matches(topic),
            "index: {selector} ~ {topic}"
        );
        direct.matches(topic)
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
    fn the_skeleton_is_what_every_match_holds() {
        let cases: &[(&str, &str, bool)] = &[
            ("/books/{id}", "/books/1", true),
            ("/books/{id}", "/users/1", false),
            ("{+a}x1{+b}", "/a/x1/b", true),
            ("{+a}x1{+b}", "/a/x2/b", false),
            ("/a/{x}/b/{y}/c", "/a/1/b/2/c", true),
            ("/a/{x}/b/{y}/c", "/a/1/c/2/b", false),
            ("/a/{x}.json", "/a/1.json", true),
            ("/a/{x}.json", "/a/1.xml", false),
            // The suffix and the prefix may not overlap.
            ("/ab{x}ba", "/aba", false),
            ("/ab{x}ba", "/abba", true),
        ];
        for &(template, topic, holds) in cases {
            let skeleton = Skeleton::of(template);
            assert_eq!(skeleton.holds(topic), holds, "{template} ~ {topic}");
            let m = Matcher::selector(template, Limits::default()).unwrap();
            if !holds {
                assert!(!m.matches(topic), "{template} ~ {topic}");
            }
        }
    }

    #[test]
    fn a_selector_is_compiled_once_and_freed_with_its_last_holder() {
        let mut store = SelectorStore::default();
        let a = store.intern("/books/{id}", Reading::Selector).unwrap();
        let b = store.intern("/books/{id}", Reading::Selector).unwrap();
        assert_eq!(a, b);
        assert_eq!(store.len(), 1);
        let topics = ["/users/1".to_owned(), "/books/2".to_owned()];
        assert_eq!(store.matching(&topics), [a]);
        assert!(store.matching(&topics[..1]).is_empty());
        store.release(a);
        assert_eq!(store.matching(&topics), [a], "one holder is left");
        store.release(b);
        assert!(store.is_empty());
        assert!(store.matching(&topics).is_empty());
        assert!(store.by_prefix.is_empty() && store.prefix_lengths.is_empty());
        assert!(store.patterns.is_empty() && store.exact.is_empty());
    }

    #[test]
    fn native_topics_are_literal_and_share_exact_selectors() {
        let mut store = SelectorStore::default();
        let native_star = store.intern("*", Reading::Literal).unwrap();
        let mercure_star = store.intern("*", Reading::Selector).unwrap();
        assert_ne!(native_star, mercure_star);
        let braces = store.intern("/a/{x}", Reading::Literal).unwrap();
        let plain = store.intern("/a/b", Reading::Literal).unwrap();
        assert_eq!(store.intern("/a/b", Reading::Selector).unwrap(), plain);
        let mut topic = |t: &str| store.matching(&[t.to_owned()]);
        assert_eq!(topic("/a/b"), {
            let mut v = vec![mercure_star, plain];
            v.sort_unstable();
            v
        });
        assert_eq!(topic("*"), {
            let mut v = vec![native_star, mercure_star];
            v.sort_unstable();
            v
        });
        assert!(topic("/a/{x}").contains(&braces));
    }

    #[test]
    fn a_topic_meets_only_templates_whose_prefix_it_starts_with() {
        let mut store = SelectorStore::default();
        let mut ids = Vec::new();
        for i in 0..1000 {
            let t = format!("https://example.com/users/{i}/{{id}}");
            ids.push(store.intern(&t, Reading::Selector).unwrap());
        }
        let all = store.intern("{+any}", Reading::Selector).unwrap();
        let hit = store.matching(&["https://example.com/users/7/x".to_owned()]);
        assert_eq!(hit, {
            let mut v = vec![ids[7], all];
            v.sort_unstable();
            v
        });
        for id in ids {
            store.release(id);
        }
        assert_eq!(store.len(), 1);
        assert_eq!(store.prefix_lengths.len(), 1);
    }

    #[test]
    fn limits_refuse_long_and_complex_selectors() {
        let limits = Limits {
            max_selector_bytes: 64,
            max_compiled_bytes: 4096,
            max_subscribe_compiled_bytes: 8192,
            max_templates: 2,
        };
        let mut store = SelectorStore::new(limits);
        let long = "x".repeat(65);
        assert_eq!(
            store.intern(&long, Reading::Selector),
            Err(SelectorError::TooLong { len: 65, max: 64 })
        );
        assert!(store.intern(&long, Reading::Literal).is_err());
        let complex = "{a}{b}{c}{d}{e}{f}{g}{h}";
        assert_eq!(
            store.intern(complex, Reading::Selector),
            Err(SelectorError::TooComplex { max: 4096 })
        );
        assert!(store.is_empty(), "a refused selector leaves nothing behind");
        let a = store.intern("/books/{id}", Reading::Selector).unwrap();
        let b = store.intern("/users/{id}", Reading::Selector).unwrap();
        assert_eq!(
            store.intern("/books/{id}", Reading::Selector),
            Ok(a),
            "held ones are shared"
        );
        assert!(
            store.intern("/plain", Reading::Selector).is_ok(),
            "exact ones are cheap"
        );
        let full = store.intern("/pages/{id}", Reading::Selector);
        assert_eq!(full, Err(SelectorError::Full { max: 2 }));
        assert_eq!(full.unwrap_err().status(), 503);
        store.release(b);
        assert!(store.intern("/pages/{id}", Reading::Selector).is_ok());
    }

    #[test]
    fn a_matching_done_in_slices_finds_what_one_done_at_once_finds() {
        let mut store = SelectorStore::default();
        // One prefix and no literal suffix: every template is a candidate.
        let ids: Vec<SelectorId> = (0..100)
            .map(|i| {
                store
                    .intern(&format!("/books/{{id}}/v{i}/{{x}}"), Reading::Selector)
                    .unwrap()
            })
            .collect();
        let topics = vec!["/books/1/v7/a".to_owned(), "/books/2/v42/b".to_owned()];
        let at_once = store.matching(&topics);
        assert_eq!(at_once, [ids[7], ids[42]]);
        let mut matching = store.begin(&topics);
        let mut passes = 0;
        loop {
            passes += 1;
            let mut budget = 100; // about two candidates a pass
            if store.advance(&mut matching, &topics, &mut budget) {
                break;
            }
        }
        assert!(passes > 10, "{passes} passes");
        assert_eq!(store.finish(matching, &topics), at_once);
    }

    #[test]
    fn a_matching_sees_templates_freed_and_made_while_it_runs() {
        let mut store = SelectorStore::default();
        let old = store.intern("/a/{x}", Reading::Selector).unwrap();
        let gone = store.intern("/a/{y}", Reading::Selector).unwrap();
        let topics = vec!["/a/1".to_owned()];
        let mut matching = store.begin(&topics);
        // Freed before it was tried, its slot then reused by another
        // template that also matches: that one counts, as new.
        store.release(gone);
        let reused = store.intern("/a/{z}", Reading::Selector).unwrap();
        assert_eq!(reused, gone, "the slab reuses the slot");
        // Made meanwhile, under another prefix; and an exact selector.
        let new = store.intern("/{+w}", Reading::Selector).unwrap();
        let exact = store.intern("/a/1", Reading::Selector).unwrap();
        let unrelated = store.intern("/b/{x}", Reading::Selector).unwrap();
        let mut budget = usize::MAX;
        assert!(store.advance(&mut matching, &topics, &mut budget));
        let mut want = vec![old, reused, new, exact];
        want.sort_unstable();
        assert_eq!(store.finish(matching, &topics), want);
        assert!(!want.contains(&unrelated));
        // With no matching under way, what was made meanwhile is forgotten.
        assert!(store.recent.is_empty());
    }

    #[test]
    fn an_unnamed_expression_matches_what_its_value_by_value_form_matched() {
        // The regex this module used before the shorter form: values and a
        // list's items between separators.
        let before = |first: &str, separator: &str, value: &str| {
            let item = format!("{value}*(?:,{value}*)*");
            format!("^(?:{first}{item}(?:{separator}{item})*)?$")
        };
        let alphabet = ['a', ',', '/', '.', '#', '%', '4', '?', '='];
        let mut strings = vec![String::new()];
        for _ in 0..5 {
            let longer: Vec<String> = strings
                .iter()
                .filter(|s| s.len() == strings.last().map_or(0, String::len))
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            strings.extend(longer);
        }
        for (expression, first, separator, value) in [
            ("{x,y}", "", ",", UNRESERVED),
            ("{+x}", "", ",", RESERVED),
            ("{#x}", "#", ",", RESERVED),
            ("{.x}", r"\.", r"\.", UNRESERVED),
            ("{/x*}", "/", "/", UNRESERVED),
        ] {
            let old = regex::Regex::new(&before(first, separator, value)).unwrap();
            let inner = &expression[1..expression.len() - 1];
            let new =
                regex::Regex::new(&format!("^{}$", expression_regex(inner).unwrap())).unwrap();
            for s in &strings {
                assert_eq!(old.is_match(s), new.is_match(s), "{expression} on {s:?}");
            }
        }
    }

    #[test]
    fn one_subscribe_compiles_at_most_its_budget_and_what_is_held_is_free() {
        let templates: Vec<String> = (0..8).map(|i| format!("/{i}/{{a}}y{{b}}")).collect();
        let texts = |n: usize| templates[..n].iter().map(String::as_str);
        let each = Matcher::selector(&templates[0], Limits::default())
            .unwrap()
            .compiled_bytes();
        assert!(each > 512 && each < 4096, "{each} bytes a template");
        // Room for two new templates a subscribe, not three.
        let max = 2 * each + each / 2;
        let mut store = SelectorStore::new(Limits {
            max_subscribe_compiled_bytes: max,
            ..Limits::default()
        });
        let two = store.intern_all(texts(2), Reading::Selector).unwrap();
        // Two held already cost nothing: two more fit, with them.
        let four = store.intern_all(texts(4), Reading::Selector).unwrap();
        assert_eq!(
            store.intern_all(texts(7), Reading::Selector),
            Err(SelectorError::TooMuchToCompile { max })
        );
        assert_eq!(store.len(), 4, "nothing kept from the refused one");
        for id in two.into_iter().chain(four) {
            store.release(id);
        }
        assert!(store.is_empty());
    }
}
