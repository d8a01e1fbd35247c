//! Tokens for the tests, signed here with RustCrypto's primitives: a JWT
//! implementation of its own (header, claims, base64url, signing input),
//! independent of the `jsonwebtoken` the hub verifies with.
#![allow(dead_code)] // each test crate uses part of it

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

/// The reference hub's well-known development key.
pub const SECRET: &str = "!ChangeThisMercureHubJWTSecretKey!";

/// The issuer the Mercure 1.0 test hubs trust.
pub const ISS: &str = "https://issuer.test";
/// Their resource identifier (the `aud` of their tokens).
pub const AUD: &str = "https://hub.test/.well-known/mercure";

/// A Mercure 1.0 hub's flags, with `extra`: the development key bound to
/// [`ISS`], for [`AUD`].
pub fn hub_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--jwt-key",
        SECRET,
        "--issuer",
        ISS,
        "--resource-identifier",
        AUD,
    ];
    args.extend_from_slice(extra);
    args
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.claims.signature`, with `sign` over `header.claims`.
fn token(alg: &str, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    typed(alg, "JWT", claims, sign)
}

/// As [`token`], with the header's `typ`.
fn typed(alg: &str, typ: &str, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    with_header(&json!({ "alg": alg, "typ": typ }), claims, sign)
}

/// As [`token`], with the whole header.
fn with_header(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = sign(input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

/// An HS256 token for `claims` with `secret`.
pub fn hs256(secret: &str, claims: &Value) -> String {
    use hmac::{KeyInit, Mac};
    token("HS256", claims, |input| {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(input);
        mac.finalize().into_bytes().to_vec()
    })
}

/// An HS256 token with header `typ` for `claims` with `secret`.
pub fn hs256_typed(secret: &str, typ: &str, claims: &Value) -> String {
    use hmac::{KeyInit, Mac};
    typed("HS256", typ, claims, |input| {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(input);
        mac.finalize().into_bytes().to_vec()
    })
}

/// An ES256 token with header `typ` (RFC 9068's `at+jwt`, say).
pub fn es256_typed(private_pem: &str, typ: &str, claims: &Value) -> String {
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::DecodePrivateKey;
    let key = p256::ecdsa::SigningKey::from_pkcs8_pem(private_pem).unwrap();
    typed("ES256", typ, claims, |input| {
        let signature: p256::ecdsa::Signature = key.sign(input);
        signature.to_bytes().to_vec()
    })
}

/// An ES256 access token (`typ` `at+jwt`) whose header names key `kid`.
pub fn es256_kid(private_pem: &str, kid: &str, claims: &Value) -> String {
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::DecodePrivateKey;
    let key = p256::ecdsa::SigningKey::from_pkcs8_pem(private_pem).unwrap();
    let header = json!({ "alg": "ES256", "typ": "at+jwt", "kid": kid });
    with_header(&header, claims, |input| {
        let signature: p256::ecdsa::Signature = key.sign(input);
        signature.to_bytes().to_vec()
    })
}

/// The public JWK (RFC 7517, RFC 7518 §6.2) of a P-256 private key, as an
/// issuer's JWK Set lists it under `kid`.
pub fn es256_jwk(private_pem: &str, kid: &str) -> Value {
    use p256::pkcs8::DecodePrivateKey;
    let key = p256::ecdsa::SigningKey::from_pkcs8_pem(private_pem).unwrap();
    let point = key.verifying_key().to_sec1_point(false);
    json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()),
    })
}

/// A Mercure 1.0 access token (RFC 9068: `typ` `at+jwt`, every claim it
/// asks issuers for) from `iss` for `aud`, lasting an hour, granting
/// `details`; signed with the development key.
pub fn access(iss: &str, aud: &str, details: Value) -> String {
    let claims = access_claims(iss, aud, details);
    hs256_typed(SECRET, "at+jwt", &claims)
}

/// The claims of [`access`], to alter before signing.
pub fn access_claims(iss: &str, aud: &str, details: Value) -> Value {
    let now = now();
    json!({
        "iss": iss,
        "aud": aud,
        "sub": "urn:uuid:bb3de268-05b0-4c65-b44e-8f9acefc29d6",
        "client_id": iss,
        "iat": now,
        "exp": now + 3600,
        "jti": format!("urn:uuid:{now}-{}", std::process::id()),
        "authorization_details": details,
    })
}

/// One Mercure authorization detail: `actions` on `topics` (each a
/// `(match, match_type)`, `None` for the default `exact`).
pub fn detail(actions: &[&str], topics: &[(&str, Option<&str>)]) -> Value {
    let topics: Vec<Value> = topics
        .iter()
        .map(|(m, t)| match t {
            Some(t) => json!({ "match": m, "match_type": t }),
            None => json!({ "match": m }),
        })
        .collect();
    json!({
        "type": "https://mercure.rocks/authorization-detail",
        "actions": actions,
        "topics": topics,
    })
}

/// An HS256 token signed with the development key.
pub fn dev(claims: &Value) -> String {
    hs256(SECRET, claims)
}

/// An unsigned token (`alg: none`), which no hub may accept.
pub fn none(claims: &Value) -> String {
    token("none", claims, |_| Vec::new())
}

/// An RS256 token for `claims`, signed with the PKCS#8 PEM private key.
pub fn rs256(private_pem: &str, claims: &Value) -> String {
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::{SignatureEncoding, Signer};
    let key = rsa::PrivateKey::from_pkcs8_pem(private_pem).unwrap();
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key);
    token("RS256", claims, |input| signer.sign(input).to_vec())
}

/// An ES256 token for `claims`, signed with the PKCS#8 PEM private key
/// (the signature as JWS wants it: r and s, 32 bytes each).
pub fn es256(private_pem: &str, claims: &Value) -> String {
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::DecodePrivateKey;
    let key = p256::ecdsa::SigningKey::from_pkcs8_pem(private_pem).unwrap();
    token("ES256", claims, |input| {
        let signature: p256::ecdsa::Signature = key.sign(input);
        signature.to_bytes().to_vec()
    })
}

/// Seconds since the epoch, now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
