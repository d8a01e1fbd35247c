//! Bearer-token checks that take the same time whatever the client sends,
//! so response timing reveals nothing about the token.

/// Whether an `Authorization` header value is `Bearer <token>` for exactly
/// `token`.
///
/// The comparison reads every byte of `token` whatever was sent: its time
/// depends on the token's length only, never on where a guess first differs
/// or on the guess's own length.
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

/// `given == expected`, in time that depends only on `expected.len()`.
pub fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, &e) in expected.iter().enumerate() {
        // Past the end of `given`, compare with a byte that always differs.
        let g = given.get(i).copied().unwrap_or(!e);
        diff |= g ^ e;
    }
    std::hint::black_box(diff) == 0
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
