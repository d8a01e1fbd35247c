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

use url::Url;

use crate::jwks;
use crate::topics::{Limits, Matcher, Reading, Spec};

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
    /// The `jsonwebtoken` algorithm it is.
    pub fn jwt(self) -> Algorithm {
        match self {
            Alg::Hs256 => Algorithm::HS256,
            Alg::Rs256 => Algorithm::RS256,
            Alg::Es256 => Algorithm::ES256,
        }
    }
}

/// Where a verifier's keys come from.
#[derive(Clone)]
enum KeySource {
    /// One configured key, for one algorithm.
    Static { key: DecodingKey, alg: Alg },
    /// A trusted issuer's JWK Set (its index in [`jwks::Sets`]).
    Set(usize),
}

/// Verifies tokens: signed with one configured key and algorithm, or with
/// a key of an issuer's JWK Set (chosen by `kid`, for an allowed algorithm
/// the key fits).
#[derive(Clone)]
pub struct Verifier {
    source: KeySource,
    validation: Validation,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            KeySource::Static { alg, .. } => write!(f, "Verifier({alg:?}, key hidden)"),
            KeySource::Set(set) => write!(f, "Verifier(JWK Set {set})"),
        }
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
        Ok(Verifier {
            source: KeySource::Static { key: decoding, alg },
            validation: validation_for(alg.jwt()),
        })
    }

    /// A verifier with the keys of JWK Set `set`.
    pub fn of_set(set: usize) -> Self {
        Verifier {
            source: KeySource::Set(set),
            validation: validation_for(Algorithm::RS256),
        }
    }

    /// The claims of a 0.x `token`, once its signature, algorithm and times
    /// check.
    ///
    /// # Errors
    /// The [`Refusal`] that says why not.
    pub fn verify(&self, token: &str, sets: &jwks::Sets) -> Result<Claims, Refusal> {
        self.decode(token, sets, false)
    }

    /// The claims of a 1.0 access token, once its signature, algorithm and
    /// times check; `exp` is required (RFC 9068). Its issuer and audience
    /// are the caller's to check.
    ///
    /// # Errors
    /// The [`Refusal`] that says why not.
    pub fn verify_access(&self, token: &str, sets: &jwks::Sets) -> Result<AccessClaims, Refusal> {
        self.decode(token, sets, true)
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        sets: &jwks::Sets,
        exp_required: bool,
    ) -> Result<T, Refusal> {
        let mut validation = self.validation.clone();
        if exp_required {
            validation.set_required_spec_claims(&["exp"]);
        }
        let refusal = |e: jsonwebtoken::errors::Error, allowed: &'static str| match e.kind() {
            ErrorKind::ExpiredSignature => Refusal::Expired,
            ErrorKind::ImmatureSignature => Refusal::NotYetValid,
            ErrorKind::InvalidSignature => Refusal::BadSignature,
            ErrorKind::MissingRequiredClaim(_) => Refusal::NoExpiry,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                Refusal::WrongAlgorithm(allowed)
            }
            // An `alg` this library does not know, `none` among them,
            // fails while the header is read.
            ErrorKind::Json(_) if header_alg_unknown(token) => Refusal::WrongAlgorithm(allowed),
            _ => Refusal::Malformed,
        };
        match &self.source {
            KeySource::Static { key, alg } => jsonwebtoken::decode::<T>(token, key, &validation)
                .map(|data| data.claims)
                .map_err(|e| refusal(e, alg.name())),
            KeySource::Set(index) => {
                const ALLOWED: &str =
                    "an algorithm the issuer's key is for (ES256, RS256, PS256, EdDSA…)";
                let header = jsonwebtoken::decode_header(token).map_err(|e| refusal(e, ALLOWED))?;
                let set = sets.get(*index);
                if let Some(why) = set.unavailable() {
                    return Err(Refusal::KeysUnavailable(format!("{}: {why}", set.url)));
                }
                let candidates = set.candidates(header.kid.as_deref(), header.alg);
                if candidates.is_empty() {
                    return Err(Refusal::UnknownKey(header.kid));
                }
                validation.algorithms = vec![header.alg];
                let mut last = Refusal::BadSignature;
                for candidate in candidates {
                    match jsonwebtoken::decode::<T>(token, &candidate.key, &validation) {
                        Ok(data) => return Ok(data.claims),
                        Err(e) => last = refusal(e, ALLOWED),
                    }
                }
                Err(last)
            }
        }
    }
}

/// What every token is held to: `exp` and `nbf` when present, to the
/// second; `aud` and `iss` are checked by the hub itself (with reasons).
fn validation_for(alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation.leeway = 0;
    validation
}

impl Alg {
    /// Its name, as tokens give it.
    pub fn name(self) -> &'static str {
        match self {
            Alg::Hs256 => "HS256",
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
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

/// The authorization detail type of Mercure 1.0 (RFC 9396).
pub const DETAIL_TYPE: &str = "https://mercure.rocks/authorization-detail";

/// The actions a grant gives on its matchers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Actions {
    /// May publish to the topics it matches.
    pub publish: bool,
    /// May receive private updates on the topics it matches.
    pub subscribe: bool,
}

/// One grant of a token: actions on the topics its matchers match. A 0.x
/// token's `mercure.publish` and `mercure.subscribe` are one each; a 1.0
/// token has one per Mercure authorization detail.
#[derive(Debug)]
pub struct Detail {
    /// What it allows.
    pub actions: Actions,
    /// Its matchers, as the token gives them.
    pub specs: Vec<Spec>,
    /// Its `payload` (1.0), shown with the subscriptions it matches.
    pub payload: Option<serde_json::Value>,
    /// Its matchers compiled (when first needed for a 0.x token; at once,
    /// to validate it, for a 1.0 token).
    matchers: OnceCell<Result<Vec<Matcher>, Refusal>>,
}

impl Detail {
    fn new(actions: Actions, specs: Vec<Spec>, payload: Option<serde_json::Value>) -> Detail {
        Detail {
            actions,
            specs,
            payload,
            matchers: OnceCell::new(),
        }
    }

    /// Its matchers, compiled once. What one detail compiles is bounded: it
    /// is the loop's time.
    fn compiled(&self, limits: TokenLimits, base: &Url) -> Result<&[Matcher], Refusal> {
        self.matchers
            .get_or_init(|| {
                let budget = limits.selector.max_subscribe_compiled_bytes;
                let mut compiled = 0usize;
                let mut matchers = Vec::with_capacity(self.specs.len());
                for spec in &self.specs {
                    let matcher = Matcher::of(spec, base, limits.selector)
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
}

/// What the hub keeps of a token it has verified: who issued it, to whom,
/// for how long, and its grants (actions × matchers: one model for both
/// protocol versions).
#[derive(Debug)]
pub struct Grant {
    /// When it expires, in seconds since the epoch.
    pub exp: Option<u64>,
    /// When it becomes valid.
    pub nbf: Option<u64>,
    /// Who issued it.
    pub iss: Option<String>,
    /// Whom it was issued to.
    pub sub: Option<String>,
    /// Its audiences (a 1.0 token's `aud`; checked on each use, as the
    /// hub's URL may come from the request).
    aud: Option<Vec<String>>,
    /// Its grants, in the token's order.
    pub details: Vec<Detail>,
    /// A 0.x token's `mercure.payload` (the whole token's).
    payload: Option<serde_json::Value>,
    /// Whether a 0.x token had a `mercure.subscribe` claim.
    subscribe_claim: bool,
    /// The bounds its matchers keep to.
    limits: TokenLimits,
    /// What relative URL Patterns resolve against.
    base: Url,
}

impl Grant {
    /// The grant of a verified 0.x token's `claims`; refused when a list of
    /// selectors is longer than `limits` allow.
    fn legacy(claims: Claims, limits: TokenLimits, base: &Url) -> Result<Grant, Refusal> {
        for list in [&claims.mercure.publish, &claims.mercure.subscribe] {
            let count = list.as_deref().map_or(0, <[String]>::len);
            if count > limits.max_selectors {
                return Err(Refusal::TooManySelectors {
                    count,
                    max: limits.max_selectors,
                });
            }
        }
        let specs = |list: Option<Vec<String>>| -> Vec<Spec> {
            list.unwrap_or_default()
                .into_iter()
                .map(|t| Spec::new(Reading::Selector, t))
                .collect()
        };
        let subscribe_claim = claims.mercure.subscribe.is_some();
        let publish = Actions {
            publish: true,
            subscribe: false,
        };
        let subscribe = Actions {
            publish: false,
            subscribe: true,
        };
        Ok(Grant {
            exp: claims.exp,
            nbf: claims.nbf,
            iss: claims.iss,
            sub: claims.sub,
            aud: None,
            details: vec![
                Detail::new(publish, specs(claims.mercure.publish), None),
                Detail::new(subscribe, specs(claims.mercure.subscribe), None),
            ],
            payload: claims.mercure.payload,
            subscribe_claim,
            limits,
            base: base.clone(),
        })
    }

    /// The grant of a verified 1.0 access token: its Mercure
    /// authorization details parsed, validated and compiled at once. One
    /// bad detail refuses the whole token (draft-08: no partial acceptance).
    fn access(claims: AccessClaims, limits: TokenLimits, base: &Url) -> Result<Grant, Refusal> {
        let details = parse_details(claims.authorization_details.as_ref(), limits)
            .map_err(Refusal::BadDetails)?;
        let grant = Grant {
            exp: claims.exp,
            nbf: claims.nbf,
            iss: claims.iss,
            sub: claims.sub,
            aud: Some(claims.aud.into_vec()),
            details,
            payload: None,
            subscribe_claim: true,
            limits,
            base: base.clone(),
        };
        let mut compiled = 0usize;
        for detail in &grant.details {
            let matchers = detail.compiled(limits, base)?;
            compiled += matchers.iter().map(Matcher::compiled_bytes).sum::<usize>();
        }
        let budget = limits.selector.max_subscribe_compiled_bytes;
        if compiled > budget {
            let e = crate::topics::SelectorError::TooMuchToCompile { max: budget };
            return Err(Refusal::BadSelector(e.to_string()));
        }
        Ok(grant)
    }

    /// Whether it is a 1.0 access token's.
    pub fn is_access_token(&self) -> bool {
        self.aud.is_some()
    }

    /// Whether a grant for `action` covers `topic`. The topic `*` (a native
    /// broadcast, or managing clients) is covered only by the matcher `*`.
    fn covers(&self, wanted: fn(&Actions) -> bool, topic: &str) -> Result<bool, Refusal> {
        for detail in self.details.iter().filter(|d| wanted(&d.actions)) {
            let covered = if topic == "*" {
                detail.specs.iter().any(|s| s.text == "*")
            } else {
                crate::topics::any_matches(detail.compiled(self.limits, &self.base)?, topic)
            };
            if covered {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether it may publish to `topic`.
    ///
    /// # Errors
    /// A matcher passes the hub's limits.
    pub fn may_publish_to(&self, topic: &str) -> Result<bool, Refusal> {
        self.covers(|a| a.publish, topic)
    }

    /// Whether it may receive private updates on `topic`.
    ///
    /// # Errors
    /// A matcher passes the hub's limits.
    pub fn may_subscribe_to(&self, topic: &str) -> Result<bool, Refusal> {
        self.covers(|a| a.subscribe, topic)
    }

    /// The matchers of the private updates it may receive (`None`: a 0.x
    /// token without `mercure.subscribe`, as if it had none).
    pub fn subscribe_specs(&self) -> Option<Vec<Spec>> {
        if !self.subscribe_claim {
            return None;
        }
        let specs = self
            .details
            .iter()
            .filter(|d| d.actions.subscribe)
            .flat_map(|d| d.specs.iter().cloned());
        Some(specs.collect())
    }

    /// The payload shown with a subscription by `matcher` (draft-08
    /// §Payloads: the first `subscribe` detail whose matchers match the
    /// subscription's own matcher, read as a topic); a 0.x token's
    /// `mercure.payload`.
    pub fn payload_for(&self, matcher: &str) -> Option<serde_json::Value> {
        if !self.is_access_token() {
            return self.payload.clone();
        }
        let detail = self
            .details
            .iter()
            .filter(|d| d.actions.subscribe)
            .find(|d| {
                d.compiled(self.limits, &self.base)
                    .is_ok_and(|m| crate::topics::any_matches(m, matcher))
            })?;
        detail.payload.clone()
    }

    /// Who published with it, for idempotency keys: its issuer and subject
    /// when it has a subject, else the token itself (never shared by two
    /// publishers who cannot already impersonate each other).
    pub fn identity(&self, token: &str) -> String {
        match (&self.iss, &self.sub) {
            (iss, Some(sub)) => format!("jwt\0{}\0{sub}", iss.as_deref().unwrap_or("")),
            _ => format!("token\0{token}"),
        }
    }

    /// The times still hold at `now` (seconds since the epoch), as when it
    /// was verified.
    fn current(&self, now: u64) -> Result<(), Refusal> {
        if self.exp.is_some_and(|exp| exp < now) {
            return Err(Refusal::Expired);
        }
        if self.nbf.is_some_and(|nbf| nbf > now) {
            return Err(Refusal::NotYetValid);
        }
        Ok(())
    }

    /// A 1.0 token names one of `audiences` (the hub's resource
    /// identifiers) in its `aud`.
    fn for_audience(&self, audiences: &[String]) -> Result<(), Refusal> {
        match &self.aud {
            Some(aud) if !aud.iter().any(|a| audiences.contains(a)) => {
                Err(Refusal::WrongAudience {
                    expected: audiences.first().cloned().unwrap_or_default(),
                })
            }
            _ => Ok(()),
        }
    }
}

/// The Mercure authorization details of a 1.0 token, validated: each
/// detail of Mercure's type must have non-empty `actions` (strings; those
/// the hub does not know grant nothing) and non-empty `topics` (objects
/// with a `match` string and an optional known `match_type`), and an
/// optional object `payload`. Details of other types are not the hub's.
fn parse_details(
    value: Option<&serde_json::Value>,
    limits: TokenLimits,
) -> Result<Vec<Detail>, String> {
    use serde_json::Value;
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let Value::Array(entries) = value else {
        return Err("authorization_details is not an array".into());
    };
    let mut details = Vec::new();
    let mut matchers = 0usize;
    for entry in entries {
        let Value::Object(fields) = entry else {
            return Err("an authorization detail is not an object".into());
        };
        match fields.get("type") {
            Some(Value::String(t)) if t == DETAIL_TYPE => {}
            Some(Value::String(_)) => continue,
            _ => return Err("an authorization detail has no type string".into()),
        }
        let mut actions = Actions::default();
        match fields.get("actions") {
            Some(Value::Array(list)) if !list.is_empty() => {
                for action in list {
                    match action.as_str() {
                        Some("publish") => actions.publish = true,
                        Some("subscribe") => actions.subscribe = true,
                        Some(_) => {}
                        None => return Err("an action is not a string".into()),
                    }
                }
            }
            _ => return Err("a Mercure detail's actions is not a non-empty array".into()),
        }
        let Some(Value::Array(topics)) = fields
            .get("topics")
            .filter(|t| t.as_array().is_some_and(|a| !a.is_empty()))
        else {
            return Err("a Mercure detail's topics is not a non-empty array".into());
        };
        let mut specs = Vec::with_capacity(topics.len());
        for topic in topics {
            let Value::Object(matcher) = topic else {
                return Err("a topic matcher is not an object".into());
            };
            let Some(Value::String(text)) = matcher.get("match") else {
                return Err("a topic matcher has no match string".into());
            };
            let reading = match matcher.get("match_type") {
                None => Reading::Exact,
                Some(Value::String(name)) => Reading::of_match_type(name).ok_or_else(|| {
                    format!(
                        "the match_type {name:?} is not one the hub supports (exact, urlpattern)"
                    )
                })?,
                Some(_) => return Err("a match_type is not a string".into()),
            };
            specs.push(Spec::new(reading, text.clone()));
        }
        matchers += specs.len();
        if matchers > limits.max_selectors {
            return Err(format!(
                "the token's details hold more than {} topic matchers, the hub's limit (--max-token-selectors)",
                limits.max_selectors
            ));
        }
        let payload = match fields.get("payload") {
            None => None,
            Some(p @ Value::Object(_)) => Some(p.clone()),
            Some(_) => return Err("a payload is not an object".into()),
        };
        details.push(Detail::new(actions, specs, payload));
    }
    Ok(details)
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

/// How the hub reads tokens, whatever key verifies them.
#[derive(Clone, Debug)]
pub struct Trust {
    /// The issuer whose 1.0 access tokens the keys verify (`--issuer`);
    /// none: no 1.0 token is accepted.
    pub issuer: Option<String>,
    /// The hub's resource identifier (`--resource-identifier`); none: the
    /// URL each request reached.
    pub resource: Option<String>,
    /// Whether 0.x tokens (a `mercure` claim) are accepted too.
    pub compat: bool,
    /// The cookie a browser's access token travels in.
    pub cookie: String,
    /// What relative URL Patterns in tokens resolve against.
    pub base: Url,
}

impl Trust {
    /// The resource identifiers a token's `aud` may name for `req`: the
    /// configured one, else the hub's URL as the request reached it (over
    /// http, or https behind a proxy that ends TLS).
    pub fn audiences(&self, req: &Request) -> Vec<String> {
        if let Some(resource) = &self.resource {
            return vec![resource.clone()];
        }
        let host = crate::paths::host_of(req);
        vec![
            format!("https://{host}{}", crate::subscription::PATH),
            format!("http://{host}{}", crate::subscription::PATH),
        ]
    }
}

/// Whether `token`'s header says it is an OAuth 2.0 access token (RFC 9068:
/// `typ` `at+jwt`, or `application/at+jwt`, in any case).
fn is_access_token(token: &str) -> bool {
    let Ok(header) = jsonwebtoken::decode_header(token) else {
        return false;
    };
    header.typ.is_some_and(|typ| {
        let typ = typ.to_ascii_lowercase();
        typ == "at+jwt" || typ == "application/at+jwt"
    })
}

/// One verifier with the tokens it has verified, for one issuer.
#[derive(Debug)]
pub struct Issuer {
    /// The `iss` its 1.0 access tokens must carry (none: it verifies no
    /// access token).
    iss: Option<String>,
    verifier: Verifier,
    cache: TokenCache,
    /// The version of its JWK Set its cached grants were verified with.
    seen: u64,
}

impl Issuer {
    /// Forgets the tokens it verified with keys its set no longer has.
    fn follow(&mut self, sets: &jwks::Sets) {
        if let KeySource::Set(index) = self.verifier.source {
            let version = sets.get(index).version;
            if version != self.seen {
                self.cache = TokenCache::default();
                self.seen = version;
            }
        }
    }
}

impl Issuer {
    /// The grant of `token` for a request whose hub URL gives `audiences`:
    /// from the cache when seen before (its times and audience checked
    /// again), else verified and compiled, then kept. A 1.0 access token
    /// must come from `trust`'s issuer; a 0.x token passes only with
    /// `trust.compat`.
    ///
    /// # Errors
    /// Why the token is refused.
    pub fn grant(
        &mut self,
        token: &str,
        limits: TokenLimits,
        trust: &Trust,
        audiences: &[String],
        sets: &jwks::Sets,
    ) -> Result<Rc<Grant>, Refusal> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if let Some(grant) = self.cache.get(token) {
            grant.current(now)?;
            grant.for_audience(audiences)?;
            return Ok(grant);
        }
        let grant = if is_access_token(token) {
            let claims = self.verifier.verify_access(token, sets)?;
            match (&self.iss, &claims.iss) {
                (Some(trusted), Some(iss)) if trusted == iss => {}
                (None, _) => return Err(Refusal::NoIssuer),
                (Some(_), iss) => return Err(Refusal::WrongIssuer(iss.clone())),
            }
            Grant::access(claims, limits, &trust.base)?
        } else if trust.compat {
            Grant::legacy(self.verifier.verify(token, sets)?, limits, &trust.base)?
        } else {
            // Its signature first: a forged token learns nothing more.
            self.verifier.verify(token, sets)?;
            return Err(Refusal::NotAccessToken);
        };
        let grant = Rc::new(grant);
        self.cache.put(token, grant.clone());
        grant.for_audience(audiences)?;
        Ok(grant)
    }
}

/// The hub's keys: the configured keys of `--issuer` (one verifier for
/// publishers and one for subscribers, the same key for both unless
/// configured apart), and the issuers whose keys are a JWK Set, each with
/// its own (a token is verified only with the keys of the issuer it names).
/// No key at all: no JWT authorization (see each route for what then
/// applies).
#[derive(Debug)]
pub struct Keys {
    /// Verifies publishers' tokens with a configured key.
    pub publisher: Option<Issuer>,
    /// Verifies subscribers' tokens with a configured key.
    pub subscriber: Option<Issuer>,
    /// The issuers whose keys are a JWK Set, for either role.
    pub trusted: Vec<Issuer>,
    /// Their sets.
    pub sets: jwks::Sets,
    /// What one token may make the hub compile.
    pub limits: TokenLimits,
    /// How tokens are read.
    pub trust: Trust,
}

/// Which side of the hub a token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Publisher,
    Subscriber,
}

/// The issuer whose keys verify `token`: the one its `iss` names among
/// the JWK Set issuers, else the `configured` keys; a 0.x token (no `iss`
/// to go by) the configured keys, else the first set.
fn issuer_for<'a>(
    trusted: &'a mut [Issuer],
    configured: Option<&'a mut Issuer>,
    token: &str,
) -> Option<&'a mut Issuer> {
    let iss = unverified_iss(token);
    match trusted.iter().position(|t| iss.is_some() && t.iss == iss) {
        Some(i) => trusted.get_mut(i),
        None => configured.or(trusted.first_mut()),
    }
}

/// The `iss` claim of `token`, read without verifying it: only to choose
/// whose keys verify it (draft-08: never a pooled set across issuers).
fn unverified_iss(token: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    #[derive(Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    serde_json::from_slice::<Iss>(&json).ok()?.iss
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
    /// (none: no JWT authorization on that side), and for each `(iss, url)`
    /// of `sets`, the keys of the JWK Set at `url` (fetched by a thread of
    /// the hub's) for tokens from `iss`; tokens keep to `limits` and are
    /// read as `trust` says.
    ///
    /// # Errors
    /// A one-line reason when a key does not fit the algorithm, or the
    /// fetching thread cannot start.
    pub fn with_sets(
        alg: Alg,
        publisher: Option<&str>,
        subscriber: Option<&str>,
        limits: TokenLimits,
        trust: Trust,
        sets: Vec<(String, String)>,
    ) -> Result<Self, String> {
        let make = |key: Option<&str>, which: &str| {
            key.map(|key| {
                Verifier::new(alg, key).map(|verifier| Issuer {
                    iss: trust.issuer.clone(),
                    verifier,
                    cache: TokenCache::default(),
                    seen: 0,
                })
            })
            .transpose()
            .map_err(|e| format!("the {which} JWT key: {e}"))
        };
        let trusted = sets
            .iter()
            .enumerate()
            .map(|(i, (iss, _))| Issuer {
                iss: Some(iss.clone()),
                verifier: Verifier::of_set(i),
                cache: TokenCache::default(),
                seen: 0,
            })
            .collect();
        let urls = sets.into_iter().map(|(_, url)| url).collect();
        Ok(Keys {
            publisher: make(publisher, "publisher")?,
            subscriber: make(subscriber, "subscriber")?,
            trusted,
            sets: jwks::Sets::start(urls)
                .map_err(|e| format!("cannot start fetching the JWK Sets: {e}"))?,
            limits,
            trust,
        })
    }

    /// The issuers whose keys come from a JWK Set.
    pub fn set_issuers(&self) -> Vec<String> {
        self.trusted.iter().filter_map(|t| t.iss.clone()).collect()
    }

    /// Whether publishers' tokens are verified (a key or a set is
    /// configured).
    pub fn verifies_publishers(&self) -> bool {
        self.publisher.is_some() || !self.trusted.is_empty()
    }

    /// Whether subscribers' tokens are verified.
    pub fn verifies_subscribers(&self) -> bool {
        self.subscriber.is_some() || !self.trusted.is_empty()
    }

    /// Whether `req`'s token can be decided now, or waits for its issuer's
    /// JWK Set (the first fetch, or one asked for an unknown key id).
    pub fn readiness(&mut self, req: &Request) -> jwks::Readiness {
        if self.trusted.is_empty() {
            return jwks::Readiness::Ready;
        }
        let Some((token, _)) = token_of(req, &self.trust) else {
            return jwks::Readiness::Ready;
        };
        let iss = unverified_iss(&token);
        let Some(set) = self
            .trusted
            .iter()
            .position(|t| iss.is_some() && t.iss == iss)
        else {
            return jwks::Readiness::Ready;
        };
        self.sets.take_fetched();
        self.trusted[set].follow(&self.sets);
        if self.trusted[set].cache.get(&token).is_some() {
            return jwks::Readiness::Ready;
        }
        let kid = jsonwebtoken::decode_header(&token).ok().and_then(|h| h.kid);
        self.sets.readiness(set, kid.as_deref())
    }

    /// The grant of `token` for `role` and `req`.
    fn grant(&mut self, req: &Request, token: &str, role: Role) -> Result<Rc<Grant>, Refusal> {
        let audiences = self.trust.audiences(req);
        self.sets.take_fetched();
        let Keys {
            publisher,
            subscriber,
            trusted,
            sets,
            limits,
            trust,
        } = self;
        let configured = match role {
            Role::Publisher => publisher.as_mut(),
            Role::Subscriber => subscriber.as_mut(),
        };
        match issuer_for(trusted, configured, token) {
            Some(issuer) => {
                issuer.follow(sets);
                issuer.grant(token, *limits, trust, &audiences, sets)
            }
            None => Err(Refusal::NoToken),
        }
    }

    /// A publisher allowed to publish to every one of `topics`. The topic
    /// `*` (a native broadcast, or managing clients) is covered only by the
    /// matcher `*` itself. A token from a cookie also needs an
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
        let (token, source) = token_of(req, &self.trust).ok_or(Refusal::NoToken)?;
        let grant = self.grant(req, &token, Role::Publisher)?;
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
        if !self.verifies_subscribers() {
            return Ok(None);
        }
        match token_of(req, &self.trust) {
            Some((token, _)) => self.grant(req, &token, Role::Subscriber).map(Some),
            None if anonymous => Ok(None),
            None => Err(Refusal::NoToken),
        }
    }
}

/// A 0.x token's claims.
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

/// A 1.0 access token's claims (RFC 9068), as far as the hub reads them.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AccessClaims {
    /// Who issued it (must be the trusted issuer).
    #[serde(default)]
    pub iss: Option<String>,
    /// Whom it was issued to.
    #[serde(default)]
    pub sub: Option<String>,
    /// When it expires (required).
    #[serde(default)]
    pub exp: Option<u64>,
    /// When it becomes valid.
    #[serde(default)]
    pub nbf: Option<u64>,
    /// The resource identifiers it is for.
    #[serde(default)]
    pub aud: Audiences,
    /// What it allows (RFC 9396).
    #[serde(default)]
    pub authorization_details: Option<serde_json::Value>,
}

/// A token's `aud`: one string or an array of them (RFC 7519).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(untagged)]
pub enum Audiences {
    /// None given.
    #[default]
    None,
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Audiences {
    fn into_vec(self) -> Vec<String> {
        match self {
            Audiences::None => Vec::new(),
            Audiences::One(one) => vec![one],
            Audiences::Many(many) => many,
        }
    }
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
    /// The `authorization` query parameter (0.x only).
    Query,
    /// The access token cookie, or 0.x's `mercureAuthorization` (a `POST`
    /// then needs an allowed `Origin` or `Referer`: CSRF).
    Cookie,
}

/// The name of the cookie a 0.x browser's token travels in.
pub const COOKIE: &str = "mercureAuthorization";

/// The cookie draft-08 recommends for an access token.
pub const DEFAULT_COOKIE: &str = "__Secure-mercure_access_token";

/// The token a request carries, and where it came from: the
/// `Authorization` header, which beats any cookie, else `trust`'s cookie.
/// With 0.x accepted, also the `authorization` query parameter and the
/// `mercureAuthorization` cookie; 1.0 never takes a token from the URL.
pub fn token_of(req: &Request, trust: &Trust) -> Option<(String, Source)> {
    if let Some(value) = req.header("Authorization") {
        // RFC 9110 §11.1: the scheme is case-insensitive.
        if let Some((scheme, token)) = value.split_once(' ') {
            if scheme.eq_ignore_ascii_case("Bearer") {
                return Some((token.trim().to_owned(), Source::Header));
            }
        }
    }
    if trust.compat {
        if let Some(token) = req.query("authorization").filter(|t| !t.is_empty()) {
            return Some((token.to_owned(), Source::Query));
        }
    }
    let cookie = |wanted: &str| {
        req.headers()
            .filter(|(name, _)| name.eq_ignore_ascii_case("cookie"))
            .filter_map(|(_, value)| std::str::from_utf8(value).ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == wanted)
            .map(|(_, token)| (token.trim_matches('"').to_owned(), Source::Cookie))
    };
    cookie(&trust.cookie).or_else(|| cookie(COOKIE).filter(|_| trust.compat))
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
    /// Not from the trusted issuer, or not for this hub (`iss`, `aud`).
    WrongIssuerOrAudience,
    /// Not a 1.0 access token, or one without `exp` or with bad details.
    InvalidAccessToken,
    /// The issuer's keys could not be fetched.
    KeysUnavailable,
}

impl Reason {
    /// Every reason, in the order `/metrics` shows them (each one's index
    /// is its place here).
    pub const ALL: [Reason; 12] = [
        Reason::NoToken,
        Reason::Malformed,
        Reason::BadSignature,
        Reason::WrongAlgorithm,
        Reason::Expired,
        Reason::NotYetValid,
        Reason::TopicNotCovered,
        Reason::TokenTooLarge,
        Reason::Csrf,
        Reason::WrongIssuerOrAudience,
        Reason::InvalidAccessToken,
        Reason::KeysUnavailable,
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
            Reason::WrongIssuerOrAudience => "wrong_issuer_or_audience",
            Reason::InvalidAccessToken => "invalid_access_token",
            Reason::KeysUnavailable => "keys_unavailable",
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
    /// The token's `alg` is not one the hub accepts (`none` never is);
    /// what it accepts.
    WrongAlgorithm(&'static str),
    /// The token names a key its issuer's set lacks (once fetched again).
    UnknownKey(Option<String>),
    /// The issuer's keys could not be fetched, ever: why.
    KeysUnavailable(String),
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
    /// Neither the `--publish-token` nor a JWT.
    WrongStaticToken,
    /// A 1.0 access token, but the hub trusts no issuer (`--issuer`).
    NoIssuer,
    /// A 1.0 access token from another issuer than the trusted one.
    WrongIssuer(Option<String>),
    /// A 1.0 access token for another resource than this hub.
    WrongAudience {
        /// The resource identifier it should name.
        expected: String,
    },
    /// A 1.0 access token without `exp`.
    NoExpiry,
    /// A token that is not a 1.0 access token, and 0.x is not accepted.
    NotAccessToken,
    /// Authorization details that do not parse or validate.
    BadDetails(String),
}

impl Refusal {
    /// The status: `401` when the token is missing or bad, `403` when a
    /// good token does not allow this.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::TopicNotCovered(_) | Refusal::NotSubscribable(_) | Refusal::Csrf => 403,
            // The hub's trouble, not the token's.
            Refusal::KeysUnavailable(_) => 503,
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
            Refusal::UnknownKey(_) => Reason::BadSignature,
            Refusal::KeysUnavailable(_) => Reason::KeysUnavailable,
            Refusal::Expired => Reason::Expired,
            Refusal::NotYetValid => Reason::NotYetValid,
            Refusal::TopicNotCovered(_) | Refusal::NotSubscribable(_) => Reason::TopicNotCovered,
            Refusal::TooManySelectors { .. } | Refusal::BadSelector(_) => Reason::TokenTooLarge,
            Refusal::Csrf => Reason::Csrf,
            Refusal::WrongStaticToken => Reason::Malformed,
            Refusal::NoIssuer | Refusal::WrongIssuer(_) | Refusal::WrongAudience { .. } => {
                Reason::WrongIssuerOrAudience
            }
            Refusal::NoExpiry | Refusal::NotAccessToken | Refusal::BadDetails(_) => {
                Reason::InvalidAccessToken
            }
        }
    }

    /// The answer (RFC 6750 §3): the status, and a `Bearer` challenge
    /// pointing at the hub's protected resource `metadata` (RFC 9728). No
    /// token: the bare challenge; a bad one: `invalid_token`; a good one that
    /// does not allow this: `insufficient_scope`. The reason is the body and
    /// the challenge's `error_description`.
    pub fn response(&self, metadata: &str) -> Response {
        let reason = self.to_string();
        // Quotes and backslashes cannot appear in a quoted-string as they
        // are; the reason never needs them.
        let quoted = reason.replace(['"', '\\'], "'");
        let challenge = match self.status() {
            _ if *self == Refusal::NoToken => format!("Bearer resource_metadata=\"{metadata}\""),
            403 => format!("Bearer resource_metadata=\"{metadata}\", error=\"insufficient_scope\", error_description=\"{quoted}\""),
            _ => format!("Bearer resource_metadata=\"{metadata}\", error=\"invalid_token\", error_description=\"{quoted}\""),
        };
        let answer = Response::text(self.status(), format!("{reason}\n"));
        if self.status() == 503 {
            // Not the token's fault: no challenge, a hint when to retry.
            return answer.header("Retry-After", "5");
        }
        answer.header("WWW-Authenticate", challenge)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoToken => f.write_str(
                "no token: send Authorization: Bearer or the access token cookie",
            ),
            Refusal::Malformed => f.write_str("the token is not a valid JWT with Mercure claims"),
            Refusal::BadSignature => f.write_str("the token's signature does not match the hub's key"),
            Refusal::WrongAlgorithm(allowed) => {
                write!(f, "the token's algorithm is not the hub's ({allowed}; alg none is never accepted)")
            }
            Refusal::UnknownKey(Some(kid)) => write!(
                f,
                "the token's kid {kid:?} is not among its issuer's keys (fetched again at most once a second)"
            ),
            Refusal::UnknownKey(None) => {
                f.write_str("no key of the token's issuer fits its algorithm")
            }
            Refusal::KeysUnavailable(why) => {
                write!(f, "the issuer's keys cannot be fetched yet ({why}); retry later")
            }
            Refusal::Expired => f.write_str("the token has expired (exp)"),
            Refusal::NotYetValid => f.write_str("the token is not valid yet (nbf)"),
            Refusal::TopicNotCovered(topic) => {
                write!(f, "the token grants no publish on the topic {topic:?} (mercure.publish, or a publish authorization detail)")
            }
            Refusal::NotSubscribable(url) => {
                write!(f, "the token grants no subscribe on {url:?} (mercure.subscribe, or a subscribe authorization detail)")
            }
            Refusal::TooManySelectors { count, max } => write!(
                f,
                "the token lists {count} topic selectors; the hub takes at most {max} (--max-token-selectors)"
            ),
            Refusal::BadSelector(why) => write!(f, "the token's claims: {why}"),
            Refusal::Csrf => f.write_str(
                "a cookie-authorized publish needs an Origin or Referer among the allowed publish origins",
            ),
            Refusal::WrongStaticToken => f.write_str(
                "the bearer token is not the --publish-token (nor a JWT, which a publisher key would take)",
            ),
            Refusal::NoIssuer => f.write_str(
                "the token is an access token, but the hub trusts no issuer (--issuer)",
            ),
            Refusal::WrongIssuer(Some(iss)) => {
                write!(f, "the token's issuer {iss:?} is not the one the hub trusts (--issuer)")
            }
            Refusal::WrongIssuer(None) => f.write_str("the token has no issuer (iss)"),
            Refusal::WrongAudience { expected } => write!(
                f,
                "the token's aud does not name this hub ({expected}; --resource-identifier)"
            ),
            Refusal::NoExpiry => f.write_str("the access token has no exp"),
            Refusal::NotAccessToken => f.write_str(
                "the token is not an access token (typ at+jwt); tokens with a mercure claim need --mercure-compat 0.x",
            ),
            Refusal::BadDetails(why) => write!(f, "the token's authorization_details: {why}"),
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
        let r = Refusal::Expired.response("/m");
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
        let sets = jwks::Sets::start(Vec::new()).unwrap();
        // `{}`, `{"alg":7}` and `["alg"]` as headers: JSON, but no `alg` string.
        let no_alg = ["e30.e30.e30", "eyJhbGciOjd9.e30.e30", "WyJhbGciXQ.e30.e30"];
        let garbage = ["", "a", "a.b", "a.b.c", "....", "a.b.c.d", "!!.e30.e30"];
        for token in garbage.into_iter().chain(no_alg) {
            let refusal = v.verify(token, &sets).unwrap_err();
            assert_eq!(refusal, Refusal::Malformed, "{token}");
        }
        // `{"alg":"none"}` and `{"alg":"XX999"}`: an algorithm, not ours.
        for token in ["eyJhbGciOiJub25lIn0.e30.", "eyJhbGciOiJYWDk5OSJ9.e30.e30"] {
            let refusal = v.verify(token, &sets).unwrap_err();
            assert_eq!(refusal, Refusal::WrongAlgorithm("HS256"), "{token}");
        }
    }
}
