//! Keys from trusted issuers' JWK Sets (RFC 7517), as an OAuth 2.0
//! authorization server publishes them.
//!
//! The loop never waits on an issuer: one thread of the hub's fetches every
//! set (`https://` with rustls against the system's roots, `http://`, or
//! `file://`) with a well-kept
//! HTTP client and a deadline, at start, every [`REFRESH`], and at once when
//! a token names a key id its set lacks, at most once a [`COOLDOWN`] (so a
//! flood of forged key ids costs the issuer one request a second at most).
//! What it fetched reaches the loop through a channel and a wake; a set that
//! fails to come keeps the keys it had, so tokens verify while the issuer
//! is down. A request whose key may be on its way is deferred until the
//! fetch ends (see [`Readiness`]), never answered by a blocked loop.

use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use sseloop::Handle;

/// How often each set is fetched again.
pub const REFRESH: Duration = Duration::from_secs(300);
/// The least time between two fetches asked for by unknown key ids.
pub const COOLDOWN: Duration = Duration::from_secs(1);
/// How long one fetch may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest set document read, in bytes.
pub const MAX_DOCUMENT: u64 = 256 * 1024;
/// The most keys kept of one set (a token without `kid` tries each).
pub const MAX_KEYS: usize = 32;

/// The signature algorithms a set's keys may verify: asymmetric ones, and
/// HMAC for an `oct` key (a set read from a file). Never `none`, and never
/// derived from the token; a key whose own `alg` is given verifies that
/// one only.
pub const ALLOWED: [Algorithm; 10] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::EdDSA,
    Algorithm::HS256,
];

/// One usable key of a set.
#[derive(Clone)]
pub struct SetKey {
    /// Its `kid`.
    pub kid: Option<String>,
    /// Its own `alg`, when the set gives one.
    pub alg: Option<Algorithm>,
    /// The key.
    pub key: DecodingKey,
}

impl SetKey {
    /// Whether it may verify a signature made with `alg`.
    pub fn verifies(&self, alg: Algorithm) -> bool {
        ALLOWED.contains(&alg)
            && self.key.family() == alg.family()
            && self.alg.is_none_or(|own| own == alg)
    }
}

/// The keys of one set, as the loop holds them.
pub struct KeySet {
    /// Where it is fetched from.
    pub url: String,
    keys: Vec<SetKey>,
    /// When it last came.
    fetched: Option<Instant>,
    /// When a fetch was last asked for an unknown key id.
    asked: Option<Instant>,
    /// Whether a fetch is under way (the first one is, from the start).
    in_flight: bool,
    /// Why the last fetch failed, if it did.
    error: Option<String>,
    /// How many times its keys came: tokens verified with older keys are
    /// verified again (a key removed from the set no longer verifies).
    pub version: u64,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeySet({}, {} keys)", self.url, self.keys.len())
    }
}

impl KeySet {
    /// The keys that may verify a token signed with `alg` under `kid`: the
    /// one with that id, or every key when the token names none.
    pub fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Vec<&SetKey> {
        self.keys
            .iter()
            .filter(|k| kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)))
            .filter(|k| k.verifies(alg))
            .collect()
    }

    /// Why no key is there at all: the set never came.
    pub fn unavailable(&self) -> Option<&str> {
        match (self.fetched, &self.error) {
            (None, Some(error)) => Some(error),
            _ => None,
        }
    }

    /// Whether it holds a key with id `kid` (any key, for none).
    fn holds(&self, kid: Option<&str>) -> bool {
        match kid {
            Some(kid) => self.keys.iter().any(|k| k.kid.as_deref() == Some(kid)),
            None => !self.keys.is_empty(),
        }
    }
}

/// Whether a request can be decided now, or must wait for a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Its token can be verified (or refused) with what the hub holds.
    Ready,
    /// Its key may be in a fetch under way: answer it once that ends.
    Wait,
}

/// What the fetching thread hands the loop.
struct Fetched {
    set: usize,
    keys: Result<Vec<SetKey>, String>,
}

/// Every trusted set, and the thread that fetches them.
pub struct Sets {
    sets: Vec<KeySet>,
    /// How many fetches have ended: requests deferred before the last one
    /// ended can be decided again.
    pub ended: u64,
    asks: mpsc::Sender<usize>,
    fetched: mpsc::Receiver<Fetched>,
    /// Wakes the loop when a fetch ends (set once the loop runs).
    pub waker: Arc<OnceLock<Handle>>,
}

impl std::fmt::Debug for Sets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.sets).finish()
    }
}

impl Sets {
    /// Starts fetching the sets at `urls` (none: no thread).
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub fn start(urls: Vec<String>) -> std::io::Result<Sets> {
        let (asks, asked) = mpsc::channel();
        let (done, fetched) = mpsc::channel();
        let waker: Arc<OnceLock<Handle>> = Arc::default();
        if !urls.is_empty() {
            let (urls, waker) = (urls.clone(), waker.clone());
            std::thread::Builder::new()
                .name("sseloop-jwks".into())
                .spawn(move || fetch_forever(&urls, &asked, &done, &waker))?;
        }
        let sets = urls
            .into_iter()
            .map(|url| KeySet {
                url,
                keys: Vec::new(),
                fetched: None,
                asked: None,
                in_flight: true,
                error: None,
                version: 0,
            })
            .collect();
        Ok(Sets {
            sets,
            ended: 0,
            asks,
            fetched,
            waker,
        })
    }

    /// Set `index`.
    pub fn get(&self, index: usize) -> &KeySet {
        &self.sets[index]
    }

    /// Takes in what the thread fetched; answers whether a fetch ended
    /// (requests waiting on it can be decided now).
    pub fn take_fetched(&mut self) -> bool {
        let mut ended = false;
        while let Ok(Fetched { set, keys }) = self.fetched.try_recv() {
            let set = &mut self.sets[set];
            set.in_flight = false;
            ended = true;
            self.ended += 1;
            match keys {
                Ok(keys) => {
                    log::info!("{} keys from {}", keys.len(), set.url);
                    set.keys = keys;
                    set.version += 1;
                    set.fetched = Some(Instant::now());
                    set.error = None;
                }
                Err(error) => {
                    log::warn!(
                        "cannot fetch the keys at {}: {error} (keeping the {} it had)",
                        set.url,
                        set.keys.len()
                    );
                    set.error = Some(error);
                }
            }
        }
        ended
    }

    /// Whether a token for set `index` under `kid` can be decided now; asks
    /// for a fetch (at most once a [`COOLDOWN`]) when the set lacks `kid`.
    pub fn readiness(&mut self, index: usize, kid: Option<&str>) -> Readiness {
        self.take_fetched();
        let set = &mut self.sets[index];
        if set.holds(kid) {
            return Readiness::Ready;
        }
        if set.in_flight {
            return Readiness::Wait;
        }
        let now = Instant::now();
        if set.asked.is_some_and(|at| now < at + COOLDOWN) {
            return Readiness::Ready; // refused: an unknown key
        }
        set.asked = Some(now);
        set.in_flight = true;
        if self.asks.send(index).is_err() {
            set.in_flight = false;
            return Readiness::Ready;
        }
        Readiness::Wait
    }
}

/// The fetching thread: each set at once, then every [`REFRESH`], and
/// whenever the loop asks.
fn fetch_forever(
    urls: &[String],
    asked: &mpsc::Receiver<usize>,
    done: &mpsc::Sender<Fetched>,
    waker: &OnceLock<Handle>,
) {
    let mut config = ureq::Agent::config_builder()
        .timeout_global(Some(FETCH_TIMEOUT))
        .user_agent("sseloop");
    if let Some(roots) = system_roots() {
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
            .build();
        config = config.tls_config(tls);
    }
    let agent: ureq::Agent = config.build().into();
    let mut due = vec![Instant::now(); urls.len()];
    loop {
        let now = Instant::now();
        for (set, url) in urls.iter().enumerate() {
            if due[set] > now {
                continue;
            }
            due[set] = now + REFRESH;
            let keys = fetch(&agent, url);
            if done.send(Fetched { set, keys }).is_err() {
                return; // the hub is gone
            }
            if let Some(handle) = waker.get() {
                let _ = handle.wake();
            }
        }
        let next = due.iter().min().copied().unwrap_or(now + REFRESH);
        match asked.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Ok(set) => {
                if let Some(due) = due.get_mut(set) {
                    *due = Instant::now();
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// The roots `https://` sets are checked against: the system's (and
/// `SSL_CERT_FILE`'s, when set), as for Redis over TLS; `None` when none
/// load, and then Mozilla's, which ureq carries.
fn system_roots() -> Option<Vec<ureq::tls::Certificate<'static>>> {
    let found = rustls_native_certs::load_native_certs();
    let roots: Vec<_> = found
        .certs
        .iter()
        .map(|der| ureq::tls::Certificate::from_der(der.as_ref()).to_owned())
        .collect();
    (!roots.is_empty()).then_some(roots)
}

/// The usable keys of the set at `url`.
fn fetch(agent: &ureq::Agent, url: &str) -> Result<Vec<SetKey>, String> {
    let text = if let Some(path) = url.strip_prefix("file://") {
        let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_DOCUMENT), &mut text)
            .map_err(|e| format!("{path}: {e}"))?;
        text
    } else {
        agent
            .get(url)
            .header("Accept", "application/jwk-set+json, application/json")
            .call()
            .map_err(|e| e.to_string())?
            .body_mut()
            .with_config()
            .limit(MAX_DOCUMENT)
            .read_to_string()
            .map_err(|e| e.to_string())?
    };
    keys_of(&text)
}

/// The usable signature keys of a JWK Set document (at most
/// [`MAX_KEYS`]); keys for encryption or of kinds the hub cannot use are
/// left out.
pub fn keys_of(document: &str) -> Result<Vec<SetKey>, String> {
    let set: JwkSet = serde_json::from_str(document).map_err(|e| format!("not a JWK Set: {e}"))?;
    let keys: Vec<SetKey> = set
        .keys
        .iter()
        .filter(|jwk| !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)))
        .filter_map(set_key)
        .take(MAX_KEYS)
        .collect();
    Ok(keys)
}

fn set_key(jwk: &Jwk) -> Option<SetKey> {
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(KeyAlgorithm::UNKNOWN_ALGORITHM) => return None,
        Some(alg) => Some(alg.to_string().parse::<Algorithm>().ok()?),
    };
    Some(SetKey {
        kid: jwk.common.key_id.clone(),
        alg,
        key: DecodingKey::from_jwk(jwk).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_keeps_its_signature_keys_each_for_its_own_algorithm() {
        let doc = r#"{"keys":[
            {"kty":"oct","kid":"h","alg":"HS256","k":"c2VjcmV0"},
            {"kty":"oct","kid":"enc","use":"enc","k":"c2VjcmV0"},
            {"kty":"oct","kid":"any","k":"c2VjcmV0"},
            {"kty":"EC","kid":"bad","crv":"P-256","x":"!","y":"!"}
        ]}"#;
        let keys = keys_of(doc).unwrap();
        let kids: Vec<_> = keys.iter().map(|k| k.kid.as_deref().unwrap()).collect();
        assert_eq!(kids, ["h", "any"]);
        assert!(keys[0].verifies(Algorithm::HS256));
        assert!(!keys[0].verifies(Algorithm::HS384), "its alg only");
        assert!(
            !keys[1].verifies(Algorithm::RS256),
            "an HMAC key verifies no RSA"
        );
        assert!(keys_of("{}").is_err() && keys_of("nope").is_err());
    }
}
