//! Who may publish and subscribe: Mercure's JWT authorization.
//!
//! A token comes from `Authorization: Bearer`, else the `authorization`
//! query parameter, else the `mercureAuthorization` cookie. It is verified
//! with the key and the one algorithm configured (HS256 by default, RS256
//! or ES256 with a PEM public key); `alg: none` and every other algorithm
//! are refused, and `exp`/`nbf` are honoured with no leeway. Every refusal
//! is a [`Refusal`] that says why, in the `401`/`403` body, in
//! `WWW-Authenticate`, in the log and in `/metrics`: mysterious 401s are
//! what users of hubs complain of most.
//!
//! Cryptography is `jsonwebtoken`'s; nothing here handles a signature.

use std::cell::OnceCell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sseloop::{Request, Response};

use crate::topics::{Limits, Matcher};

/// The signing algorithms the hub accepts (one at a time, as configured).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Alg {
    /// HMAC with SHA-256 and a shared secret.
    #[value(name = "HS256")]
    Hs256,
    /// RSA PKCS#1 v1.5 with SHA-256; the key is a PEM public key.
    #[value(name = "RS256")]
    Rs256,
    /// ECDSA on P-256 with SHA-256; the key is a PEM public key.
    #[value(name = "ES256")]
    Es256,
}

impl Alg {
    fn jwt(self) -> Algorithm {
        match self {
            Alg::Hs256 => Algorithm::HS256,
            Alg::Rs256 => Algorithm::RS256,
            Alg::Es256 => Algorithm::ES256,
        }
    }
}

/// Verifies tokens signed with one key and one algorithm.
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
    alg: Alg,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Verifier({:?}, key hidden)", self.alg)
    }
}

impl Verifier {
    /// A verifier for `alg` with `key`: the secret for HS256, a PEM public
    /// key for RS256 and ES256.
    ///
    /// # Errors
    /// A one-line reason when the key cannot be used with `alg`.
    pub fn new(alg: Alg, key: &str) -> Result<Self, String> {
        let decoding = match alg {
            Alg::Hs256 if key.is_empty() => return Err("the HS256 secret is empty".into()),
            Alg::Hs256 => DecodingKey::from_secret(key.as_bytes())
                .map_err(|e| format!("not an HMAC secret: {e}"))?,
            Alg::Rs256 => DecodingKey::from_rsa_pem(key.as_bytes())
                .map_err(|e| format!("not an RSA public key in PEM: {e}"))?,
            Alg::Es256 => DecodingKey::from_ec_pem(key.as_bytes())
                .map_err(|e| format!("not an EC public key in PEM: {e}"))?,
        };
        let mut validation = Validation::new(alg.jwt());
        // Mercure tokens need no `exp`, `aud` or `sub`; `exp` and `nbf` are
        // checked when present, to the second.
        validation.required_spec_claims.clear();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.leeway = 0;
        Ok(Verifier {
            key: decoding,
            validation,
            alg,
        })
    }

    /// The claims of `token`, once its signature, algorithm and times check.
    ///
    /// # Errors
    /// The [`Refusal`] that says why not.
    pub fn verify(&self, token: &str) -> Result<Claims, Refusal> {
        match jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) => Err(match e.kind() {
                ErrorKind::ExpiredSignature => Refusal::Expired,
                ErrorKind::ImmatureSignature => Refusal::NotYetValid,
                ErrorKind::InvalidSignature => Refusal::BadSignature,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    Refusal::WrongAlgorithm(self.alg)
                }
                // An `alg` this library does not know, `none` among them,
                // fails while the header is read.
                ErrorKind::Json(_) if header_alg_unknown(token) => {
                    Refusal::WrongAlgorithm(self.alg)
                }
                _ => Refusal::Malformed,
            }),
        }
    }
}

/// Whether the token has three parts and a header that decodes to a JSON
/// object whose `alg` is a string jsonwebtoken does not accept (`none`,
/// say). Anything else that fails to parse is malformed, not a question of
/// algorithm.
fn header_alg_unknown(token: &str) -> bool {
    use base64::Engine as _;
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(json) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header) else {
        return false;
    };
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(&json) else {
        return false;
    };
    match fields.get("alg") {
        Some(serde_json::Value::String(alg)) => alg.parse::<jsonwebtoken::Algorithm>().is_err(),
        _ => false,
    }
}

/// What the hub keeps of a token it has verified: its claims, and its
/// selectors compiled once.
#[derive(Debug)]
pub struct Grant {
    /// The token's claims.
    pub claims: Claims,
    /// The bounds its selectors keep to.
    limits: TokenLimits,
    /// `mercure.publish`, compiled when first needed: a subscriber's token
    /// never is, and its `mercure.subscribe` is compiled where its stream
    /// uses it (the selector store), so only the subscriptions API compiles
    /// it here.
    publish: OnceCell<Result<Vec<Matcher>, Refusal>>,
    /// `mercure.subscribe`, compiled when first needed.
    subscribe: OnceCell<Result<Vec<Matcher>, Refusal>>,
}

impl Grant {
    /// The grant of verified `claims`; refused when a list of selectors
    /// is longer than `limits` allow.
    fn new(claims: Claims, limits: TokenLimits) -> Result<Grant, Refusal> {
        for list in [&claims.mercure.publish, &claims.mercure.subscribe] {
            let count = list.as_deref().map_or(0, <[String]>::len);
            if count > limits.max_selectors {
                return Err(Refusal::TooManySelectors {
                    count,
                    max: limits.max_selectors,
                });
            }
        }
        Ok(Grant {
            claims,
            limits,
            publish: OnceCell::new(),
            subscribe: OnceCell::new(),
        })
    }

    /// `list` compiled once into `cell`.
    fn compiled<'a>(
        &self,
        cell: &'a OnceCell<Result<Vec<Matcher>, Refusal>>,
        list: &Option<Vec<String>>,
    ) -> Result<&'a [Matcher], Refusal> {
        cell.get_or_init(|| {
            // As for a subscribe, what one token makes the hub compile is
            // bounded: compiling is the loop's time.
            let budget = self.limits.selector.max_subscribe_compiled_bytes;
            let mut compiled = 0usize;
            let mut matchers = Vec::new();
            for text in list.as_deref().unwrap_or_default() {
                let matcher = Matcher::selector(text, self.limits.selector)
                    .map_err(|e| Refusal::BadSelector(e.to_string()))?;
                compiled += matcher.compiled_bytes();
                if compiled > budget {
                    let e = crate::topics::SelectorError::TooMuchToCompile { max: budget };
                    return Err(Refusal::BadSelector(e.to_string()));
                }
                matchers.push(matcher);
            }
            Ok(matchers)
        })
        .as_deref()
        .map_err(Clone::clone)
    }

    /// Whether `mercure.publish` covers `topic`. The topic `*` (a native
    /// broadcast, or managing clients) is covered only by the selector `*`.
    ///
    /// # Errors
    /// A selector of the claim passes the hub's limits.
    pub fn may_publish_to(&self, topic: &str) -> Result<bool, Refusal> {
        let list = &self.claims.mercure.publish;
        if topic == "*" {
            return Ok(list.as_deref().unwrap_or_default().iter().any(|s| s == "*"));
        }
        let matchers = self.compiled(&self.publish, list)?;
        Ok(crate::topics::any_matches(matchers, topic))
    }

    /// Whether `mercure.subscribe` covers `topic`.
    ///
    /// # Errors
    /// A selector of the claim passes the hub's limits.
    pub fn may_subscribe_to(&self, topic: &str) -> Result<bool, Refusal> {
        let matchers = self.compiled(&self.subscribe, &self.claims.mercure.subscribe)?;
        Ok(crate::topics::any_matches(matchers, topic))
    }

    /// Who published with it, for idempotency keys: its issuer and subject
    /// when it has a subject, else the token itself (never shared by two
    /// publishers who cannot already impersonate each other).
    pub fn identity(&self, token: &str) -> String {
        match (&self.claims.iss, &self.claims.sub) {
            (iss, Some(sub)) => format!("jwt\0{}\0{sub}", iss.as_deref().unwrap_or("")),
            _ => format!("token\0{token}"),
        }
    }

    /// The times still hold at `now` (seconds since the epoch), as when it
    /// was verified.
    fn current(&self, now: u64) -> Result<(), Refusal> {
        if self.claims.exp.is_some_and(|exp| exp < now) {
            return Err(Refusal::Expired);
        }
        if self.claims.nbf.is_some_and(|nbf| nbf > now) {
            return Err(Refusal::NotYetValid);
        }
        Ok(())
    }
}

/// The bounds on what one token may make the hub compile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenLimits {
    /// The most selectors in `mercure.publish`, and in `mercure.subscribe`.
    pub max_selectors: usize,
    /// The bounds on each.
    pub selector: Limits,
}

impl Default for TokenLimits {
    fn default() -> Self {
        TokenLimits {
            max_selectors: 64,
            selector: Limits::default(),
        }
    }
}

/// How many verified tokens each verifier remembers.
pub const TOKEN_CACHE: usize = 1024;

/// Verified tokens and their grants, the oldest forgotten first: a token
/// presented again costs a lookup, not a signature check and a compile.
#[derive(Debug, Default)]
struct TokenCache {
    grants: HashMap<Box<str>, Rc<Grant>>,
    order: VecDeque<Box<str>>,
}

impl TokenCache {
    fn get(&self, token: &str) -> Option<Rc<Grant>> {
        self.grants.get(token).cloned()
    }

    fn put(&mut self, token: &str, grant: Rc<Grant>) {
        if self.order.len() >= TOKEN_CACHE {
            if let Some(old) = self.order.pop_front() {
                self.grants.remove(&old);
            }
        }
        self.order.push_back(token.into());
        self.grants.insert(token.into(), grant);
    }
}

/// One verifier with the tokens it has verified.
#[derive(Debug)]
pub struct Issuer {
    verifier: Verifier,
    cache: TokenCache,
}

impl Issuer {
    /// The grant of `token`: from the cache when seen before (its times
    /// checked again), else verified and compiled, then kept.
    ///
    /// # Errors
    /// Why the token is refused.
    pub fn grant(&mut self, token: &str, limits: TokenLimits) -> Result<Rc<Grant>, Refusal> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if let Some(grant) = self.cache.get(token) {
            grant.current(now)?;
            return Ok(grant);
        }
        let grant = Rc::new(Grant::new(self.verifier.verify(token)?, limits)?);
        self.cache.put(token, grant.clone());
        Ok(grant)
    }
}

/// The hub's keys: one verifier for publishers and one for subscribers
/// (the same key for both unless configured apart). No key: no JWT
/// authorization (see each route for what then applies).
#[derive(Debug, Default)]
pub struct Keys {
    /// Verifies publishers' tokens.
    pub publisher: Option<Issuer>,
    /// Verifies subscribers' tokens.
    pub subscriber: Option<Issuer>,
    /// What one token may make the hub compile.
    pub limits: TokenLimits,
}

/// A publisher let through, and who it is.
#[derive(Debug)]
pub struct Publisher {
    /// Its grant.
    pub grant: Rc<Grant>,
    /// Its identity, for idempotency keys.
    pub identity: String,
}

impl Keys {
    /// Verifiers for `alg` with the publishers' and the subscribers' keys
    /// (none: no JWT authorization on that side); tokens keep to `limits`.
    ///
    /// # Errors
    /// A one-line reason when a key does not fit the algorithm.
    pub fn new(
        alg: Alg,
        publisher: Option<&str>,
        subscriber: Option<&str>,
        limits: TokenLimits,
    ) -> Result<Self, String> {
        let make = |key: Option<&str>, which: &str| {
            key.map(|key| {
                Verifier::new(alg, key).map(|verifier| Issuer {
                    verifier,
                    cache: TokenCache::default(),
                })
            })
            .transpose()
            .map_err(|e| format!("the {which} JWT key: {e}"))
        };
        Ok(Keys {
            publisher: make(publisher, "publisher")?,
            subscriber: make(subscriber, "subscriber")?,
            limits,
        })
    }

    /// A publisher allowed to publish to every one of `topics`. The topic
    /// `*` (a native broadcast, or managing clients) is covered only by the
    /// selector `*` itself. A token from the cookie also needs an
    /// `Origin`/`Referer` among `origins` (CSRF).
    ///
    /// # Errors
    /// Why not; `Refusal::NoToken` too when no publisher key is configured.
    pub fn may_publish(
        &mut self,
        req: &Request,
        topics: &[&str],
        origins: &[String],
    ) -> Result<Publisher, Refusal> {
        let issuer = self.publisher.as_mut().ok_or(Refusal::NoToken)?;
        let (token, source) = token_of(req).ok_or(Refusal::NoToken)?;
        let grant = issuer.grant(&token, self.limits)?;
        if source == Source::Cookie && !origin_allowed(req, origins) {
            return Err(Refusal::Csrf);
        }
        for topic in topics {
            if !grant.may_publish_to(topic)? {
                return Err(Refusal::TopicNotCovered((*topic).to_owned()));
            }
        }
        let identity = grant.identity(&token);
        Ok(Publisher { grant, identity })
    }

    /// A subscriber's grant: `None` for an anonymous subscriber, allowed
    /// when `anonymous` is or when no subscriber key is configured (then
    /// nobody can prove a right to private updates).
    ///
    /// # Errors
    /// Why not: a bad token is refused even when anonymous ones are allowed.
    pub fn subscriber_grant(
        &mut self,
        req: &Request,
        anonymous: bool,
    ) -> Result<Option<Rc<Grant>>, Refusal> {
        let Some(issuer) = &mut self.subscriber else {
            return Ok(None);
        };
        match token_of(req) {
            Some((token, _)) => issuer.grant(&token, self.limits).map(Some),
            None if anonymous => Ok(None),
            None => Err(Refusal::NoToken),
        }
    }
}

/// A token's claims.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Claims {
    /// The `mercure` claim.
    #[serde(default)]
    pub mercure: MercureClaim,
    /// When the token expires, in seconds since the epoch.
    #[serde(default)]
    pub exp: Option<u64>,
    /// When the token becomes valid, in seconds since the epoch.
    #[serde(default)]
    pub nbf: Option<u64>,
    /// Who issued it.
    #[serde(default)]
    pub iss: Option<String>,
    /// Whom it was issued to.
    #[serde(default)]
    pub sub: Option<String>,
}

/// The `mercure` claim: what the token may publish and subscribe to.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MercureClaim {
    /// Topic selectors the bearer may publish to.
    #[serde(default)]
    pub publish: Option<Vec<String>>,
    /// Topic selectors of the private updates the bearer may receive.
    #[serde(default)]
    pub subscribe: Option<Vec<String>>,
    /// Data about the subscriber, shown in the subscriptions API.
    #[serde(default)]
    pub payload: Option<serde_json::Value>,
}

/// Where a request's token came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `Authorization: Bearer …`.
    Header,
    /// The `authorization` query parameter.
    Query,
    /// The `mercureAuthorization` cookie (a `POST` then needs an allowed
    /// `Origin` or `Referer`: CSRF).
    Cookie,
}

/// The name of the cookie a browser's token travels in.
pub const COOKIE: &str = "mercureAuthorization";

/// The token a request carries, and where it came from.
pub fn token_of(req: &Request) -> Option<(String, Source)> {
    if let Some(value) = req.header("Authorization") {
        // RFC 9110 §11.1: the scheme is case-insensitive.
        if let Some((scheme, token)) = value.split_once(' ') {
            if scheme.eq_ignore_ascii_case("Bearer") {
                return Some((token.trim().to_owned(), Source::Header));
            }
        }
    }
    if let Some(token) = req.query("authorization").filter(|t| !t.is_empty()) {
        return Some((token.to_owned(), Source::Query));
    }
    req.headers()
        .filter(|(name, _)| name.eq_ignore_ascii_case("cookie"))
        .filter_map(|(_, value)| std::str::from_utf8(value).ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, token)| (token.trim_matches('"').to_owned(), Source::Cookie))
}

/// Why a token was refused, as `/metrics` counts it: one counter per
/// reason, indexed by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// None was presented.
    NoToken,
    /// Not a JWT with Mercure claims.
    Malformed,
    /// Its signature does not verify.
    BadSignature,
    /// Signed with another algorithm than the hub's.
    WrongAlgorithm,
    /// Past its `exp`.
    Expired,
    /// Before its `nbf`.
    NotYetValid,
    /// Its selectors do not cover what was asked.
    TopicNotCovered,
    /// More or larger selectors than the hub takes.
    TokenTooLarge,
    /// A cookie-authorized publish from an origin not allowed.
    Csrf,
}

impl Reason {
    /// Every reason, in the order `/metrics` shows them (each one's index
    /// is its place here).
    pub const ALL: [Reason; 9] = [
        Reason::NoToken,
        Reason::Malformed,
        Reason::BadSignature,
        Reason::WrongAlgorithm,
        Reason::Expired,
        Reason::NotYetValid,
        Reason::TopicNotCovered,
        Reason::TokenTooLarge,
        Reason::Csrf,
    ];

    /// Its `reason` label in `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            Reason::NoToken => "no_token",
            Reason::Malformed => "malformed",
            Reason::BadSignature => "bad_signature",
            Reason::WrongAlgorithm => "wrong_algorithm",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::TopicNotCovered => "topic_not_covered",
            Reason::TokenTooLarge => "token_too_large",
            Reason::Csrf => "csrf",
        }
    }
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No token, and the route needs one.
    NoToken,
    /// The token is not a JWT (or its claims are not Mercure's).
    Malformed,
    /// The signature does not verify with the configured key.
    BadSignature,
    /// The token's `alg` is not the configured one (`none` never is).
    WrongAlgorithm(Alg),
    /// The token's `exp` has passed.
    Expired,
    /// The token's `nbf` has not come yet.
    NotYetValid,
    /// The token does not cover this topic.
    TopicNotCovered(String),
    /// The token's `mercure.subscribe` does not cover this URL.
    NotSubscribable(String),
    /// The token lists more selectors than the hub compiles for one token.
    TooManySelectors {
        /// How many it lists.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A selector in the token passes the hub's limits.
    BadSelector(String),
    /// A cookie-authorized publish without an allowed `Origin`/`Referer`.
    Csrf,
}

impl Refusal {
    /// The status: `401` when the token is missing or bad, `403` when a
    /// good token does not allow this.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::TopicNotCovered(_) | Refusal::NotSubscribable(_) | Refusal::Csrf => 403,
            Refusal::TooManySelectors { .. } | Refusal::BadSelector(_) => 400,
            _ => 401,
        }
    }

    /// Its reason, as `/metrics` counts it.
    pub fn reason(&self) -> Reason {
        match self {
            Refusal::NoToken => Reason::NoToken,
            Refusal::Malformed => Reason::Malformed,
            Refusal::BadSignature => Reason::BadSignature,
            Refusal::WrongAlgorithm(_) => Reason::WrongAlgorithm,
            Refusal::Expired => Reason::Expired,
            Refusal::NotYetValid => Reason::NotYetValid,
            Refusal::TopicNotCovered(_) | Refusal::NotSubscribable(_) => Reason::TopicNotCovered,
            Refusal::TooManySelectors { .. } | Refusal::BadSelector(_) => Reason::TokenTooLarge,
            Refusal::Csrf => Reason::Csrf,
        }
    }

    /// The answer: the status, the reason as the body and in
    /// `WWW-Authenticate` (RFC 6750's `error_description`).
    pub fn response(&self) -> Response {
        let reason = self.to_string();
        let error = match self.status() {
            403 => "insufficient_scope",
            400 => "invalid_token",
            _ if *self == Refusal::NoToken => "invalid_request",
            _ => "invalid_token",
        };
        // Quotes and backslashes cannot appear in a quoted-string as they
        // are; the reason never needs them.
        let quoted = reason.replace(['"', '\\'], "'");
        Response::text(self.status(), format!("{reason}\n")).header(
            "WWW-Authenticate",
            format!("Bearer error=\"{error}\", error_description=\"{quoted}\""),
        )
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoToken => f.write_str(
                "no token: send Authorization: Bearer, the authorization query parameter or the mercureAuthorization cookie",
            ),
            Refusal::Malformed => f.write_str("the token is not a valid JWT with Mercure claims"),
            Refusal::BadSignature => f.write_str("the token's signature does not match the hub's key"),
            Refusal::WrongAlgorithm(alg) => {
                let name = match alg {
                    Alg::Hs256 => "HS256",
                    Alg::Rs256 => "RS256",
                    Alg::Es256 => "ES256",
                };
                write!(f, "the token's algorithm is not the hub's ({name}; alg none is never accepted)")
            }
            Refusal::Expired => f.write_str("the token has expired (exp)"),
            Refusal::NotYetValid => f.write_str("the token is not valid yet (nbf)"),
            Refusal::TopicNotCovered(topic) => {
                write!(f, "the token's mercure.publish does not cover the topic {topic:?}")
            }
            Refusal::NotSubscribable(url) => {
                write!(f, "the token's mercure.subscribe does not cover {url:?}")
            }
            Refusal::TooManySelectors { count, max } => write!(
                f,
                "the token lists {count} topic selectors; the hub takes at most {max} (--max-token-selectors)"
            ),
            Refusal::BadSelector(why) => write!(f, "the token's claims: {why}"),
            Refusal::Csrf => f.write_str(
                "a cookie-authorized publish needs an Origin or Referer among the allowed publish origins",
            ),
        }
    }
}

/// Whether a cookie-authorized `POST` comes from an allowed origin: its
/// `Origin`, else its `Referer`, starts with one of `allowed` (`*` allows
/// any). `Origin: null` (a sandboxed frame, a `data:` page, a redirect
/// across origins) is an origin nobody can allow: refused whatever the
/// `Referer` says, as the reference hub does.
pub fn origin_allowed(req: &Request, allowed: &[String]) -> bool {
    if req.header("Origin") == Some("null") {
        return false;
    }
    let from = req
        .header("Origin")
        .filter(|o| !o.is_empty())
        .or_else(|| req.header("Referer"));
    let Some(from) = from else {
        return false;
    };
    allowed.iter().any(|origin| {
        origin == "*"
            || from == origin
            || from
                .strip_prefix(origin.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_why_in_the_header_too() {
        let r = Refusal::Expired.response();
        assert_eq!(r.status(), 401);
        assert_eq!(Refusal::TopicNotCovered("a".into()).status(), 403);
        assert_eq!(Refusal::Csrf.status(), 403);
        for refusal in [Refusal::NoToken, Refusal::Malformed, Refusal::Csrf] {
            assert!(Reason::ALL.contains(&refusal.reason()));
            assert_eq!(Reason::ALL[refusal.reason() as usize], refusal.reason());
            assert!(!refusal.to_string().contains('\n'));
        }
    }

    #[test]
    fn keys_that_do_not_fit_their_algorithm_are_refused_at_start() {
        assert!(Verifier::new(Alg::Hs256, "").is_err());
        assert!(Verifier::new(Alg::Rs256, "not a pem").is_err());
        assert!(Verifier::new(Alg::Es256, "not a pem").is_err());
        assert!(Verifier::new(Alg::Hs256, "secret").is_ok());
    }

    #[test]
    fn garbage_is_malformed_and_an_unknown_alg_is_the_wrong_algorithm() {
        let v = Verifier::new(Alg::Hs256, "secret").unwrap();
        // `{}`, `{"alg":7}` and `["alg"]` as headers: JSON, but no `alg` string.
        let no_alg = ["e30.e30.e30", "eyJhbGciOjd9.e30.e30", "WyJhbGciXQ.e30.e30"];
        let garbage = ["", "a", "a.b", "a.b.c", "....", "a.b.c.d", "!!.e30.e30"];
        for token in garbage.into_iter().chain(no_alg) {
            let refusal = v.verify(token).unwrap_err();
            assert_eq!(refusal, Refusal::Malformed, "{token}");
        }
        // `{"alg":"none"}` and `{"alg":"XX999"}`: an algorithm, not ours.
        for token in ["eyJhbGciOiJub25lIn0.e30.", "eyJhbGciOiJYWDk5OSJ9.e30.e30"] {
            let refusal = v.verify(token).unwrap_err();
            assert_eq!(refusal, Refusal::WrongAlgorithm(Alg::Hs256), "{token}");
        }
    }
}
