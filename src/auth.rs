//! Bearer-token checks that take the same time whatever the client sends,
//! so response timing reveals nothing about the token.

/// Whether an `Authorization` header value is `Bearer <token>` for exactly
/// `token`.
///
/// The comparison's time depends on the guess's own length and the token's
/// (fixed) length only, never on where a guess first differs; see
/// [`constant_time_eq`].
///
/// ```
/// use sseloop::auth::bearer_matches;
/// assert!(bearer_matches(Some(b"Bearer s3cret"), b"s3cret"));
/// assert!(!bearer_matches(Some(b"Bearer s3creT"), b"s3cret"));
/// assert!(!bearer_matches(None, b"s3cret"));
/// ```
pub fn bearer_matches(authorization: Option<&[u8]>, token: &[u8]) -> bool {
    let given = authorization
        .and_then(|v| v.strip_prefix(b"Bearer "))
        .unwrap_or_default();
    constant_time_eq(given, token)
}

/// `given == expected`, in time that reveals nothing about `expected`
/// beyond its (fixed) length.
///
/// # Implementation
///
/// Both sides are hashed with SipHash under a key random to this process
/// (`std`'s `RandomState`) and the digests compared. Hashing time depends
/// on the length of what is hashed only: the client's own guess, and the
/// token, which does not change. A byte-by-byte comparison, even one that
/// never stops early, was measured to run faster for guesses shorter than
/// the token, which gave its length away (`cargo bench --bench micro
/// token`). The exact comparison that rules out a digest collision runs
/// only when the digests already match: for a right guess, or one in 2^64.
pub fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    use std::hash::{BuildHasher, Hasher};
    let key = std::collections::hash_map::RandomState::new();
    let digest = |bytes: &[u8]| {
        let mut hasher = key.build_hasher();
        hasher.write(bytes);
        hasher.finish()
    };
    let same = std::hint::black_box(digest(given) ^ digest(expected)) == 0;
    same && given == expected
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons() {
        let table: &[(&[u8], bool)] = &[
            (b"secret", true),
            (b"secreT", false),
            (b"Secret", false),
            (b"secret-longer", false),
            (b"secre", false),
            (b"", false),
        ];
        for (given, want) in table {
            assert_eq!(constant_time_eq(given, b"secret"), *want, "{given:?}");
        }
        assert!(
            !bearer_matches(Some(b"secret"), b"secret"),
            "the scheme is required"
        );
        assert!(!bearer_matches(Some(b"Basic secret"), b"secret"));
    }
}
