//! Seids (server event ids): the name every stream is known by, where they
//! come from, and the index from a seid to the live connection that owns it.
//!
//! The index maps a seid to a slab key and is updated when the stream closes,
//! so a seid can never reach a later connection that reused the slot.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::rc::Rc;

/// Makes the seid for each new stream.
///
/// Any `FnMut() -> String` is a generator; [`RandomSeid`] is the default.
///
/// ```
/// use sseloop::Server;
/// let mut n = 0u64;
/// let builder = Server::builder().seid_generator(move || {
///     n += 1;
///     format!("client-{n}")
/// });
/// # drop(builder);
/// ```
pub trait SeidGenerator: Send + 'static {
    /// The next seid. It must be non-empty and free of control characters; a
    /// seid already in use makes opening the stream fail with
    /// [`StreamError::Seid`](crate::StreamError::Seid).
    ///
    /// # Errors
    /// An I/O error when no seid can be made (the default generator when the
    /// OS has no randomness to give).
    fn generate(&mut self) -> io::Result<String>;
}

impl<F: FnMut() -> String + Send + 'static> SeidGenerator for F {
    fn generate(&mut self) -> io::Result<String> {
        Ok(self())
    }
}

/// The default generator: 128 random bits from the OS (`getrandom`), as 22
/// characters of URL-safe base64 without padding, so a seid is unguessable
/// and can sit in a URL path as it is.
///
/// The OS is asked for randomness 4 KiB at a time (256 seids), not once per
/// stream: a syscall per short-lived stream is measurable.
pub struct RandomSeid {
    pool: Box<[u8; POOL]>,
    used: usize,
}

const POOL: usize = 4096;
const SEID_BYTES: usize = 16;

impl Default for RandomSeid {
    fn default() -> Self {
        RandomSeid {
            pool: Box::new([0; POOL]),
            used: POOL,
        }
    }
}

impl fmt::Debug for RandomSeid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RandomSeid") // never print the pool
    }
}

impl SeidGenerator for RandomSeid {
    fn generate(&mut self) -> io::Result<String> {
        if self.used == POOL {
            getrandom::fill(&mut self.pool[..]).map_err(|e| io::Error::other(e.to_string()))?;
            self.used = 0;
        }
        let bytes = &mut self.pool[self.used..self.used + SEID_BYTES];
        let seid = base64url(bytes);
        // Each random byte is used once, and not kept once used.
        bytes.fill(0);
        self.used += SEID_BYTES;
        Ok(seid)
    }
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=group.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Why a generated seid could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SeidError {
    /// Another live stream already has this seid.
    InUse(String),
    /// The seid is empty or contains control characters.
    Invalid(String),
}

impl fmt::Display for SeidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeidError::InUse(s) => write!(f, "seid {s:?} is already in use"),
            SeidError::Invalid(s) => write!(f, "seid {s:?} is empty or has control characters"),
        }
    }
}

impl std::error::Error for SeidError {}

/// Live seids → slab keys.
#[derive(Default)]
pub(crate) struct SeidIndex {
    map: HashMap<Rc<str>, usize>,
}

impl SeidIndex {
    /// Claims `seid` for connection `key`; the connection keeps the returned
    /// name and gives it back with [`SeidIndex::release`].
    pub(crate) fn claim(&mut self, seid: String, key: usize) -> Result<Rc<str>, SeidError> {
        if seid.is_empty() || seid.chars().any(char::is_control) {
            return Err(SeidError::Invalid(seid));
        }
        if self.map.contains_key(seid.as_str()) {
            return Err(SeidError::InUse(seid));
        }
        let name: Rc<str> = Rc::from(seid);
        self.map.insert(name.clone(), key);
        Ok(name)
    }

    pub(crate) fn release(&mut self, seid: &str) {
        self.map.remove(seid);
    }

    pub(crate) fn get(&self, seid: &str) -> Option<usize> {
        self.map.get(seid).copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, usize)> {
        self.map.iter().map(|(s, k)| (&**s, *k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_seids_are_url_safe_and_distinct() {
        let mut g = RandomSeid::default();
        let seids: std::collections::HashSet<String> =
            (0..1000).map(|_| g.generate().unwrap()).collect();
        assert_eq!(
            seids.len(),
            1000,
            "every seid distinct, across pool refills"
        );
        let a = seids.iter().next().unwrap();
        assert_eq!(a.len(), 22);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }

    #[test]
    fn base64url_known_values() {
        assert_eq!(base64url(b"\xfb\xff"), "-_8");
        assert_eq!(base64url(b"Man"), "TWFu");
        assert_eq!(base64url(&[0; 16]), "AAAAAAAAAAAAAAAAAAAAAA");
    }

    #[test]
    fn claim_refuses_duplicates_and_junk() {
        let mut idx = SeidIndex::default();
        let a = idx.claim("a".into(), 1).unwrap();
        assert_eq!(idx.claim("a".into(), 2), Err(SeidError::InUse("a".into())));
        assert_eq!(idx.claim("".into(), 2), Err(SeidError::Invalid("".into())));
        assert_eq!(
            idx.claim("x\ny".into(), 2),
            Err(SeidError::Invalid("x\ny".into()))
        );
        assert_eq!(idx.get("a"), Some(1));
        idx.release(&a);
        assert_eq!(idx.get("a"), None);
    }
}
