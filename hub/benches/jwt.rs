//! What verifying a subscriber's token costs, per subscribe, for each
//! algorithm the hub accepts, with a configured key and with the same key
//! from a warm JWK Set (`--jwks-url`): `cargo bench -p sseloop-hub --bench jwt`.
//! Tokens are Mercure 1.0 access tokens signed with the test key fixtures;
//! the figure is the median of several batches, in µs per verification.

use std::hint::black_box;
use std::time::Instant;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use sseloop_hub::auth::{Alg, Verifier};
use sseloop_hub::jwks::Sets;

const SECRET: &str = "!ChangeThisMercureHubJWTSecretKey!";

/// The median µs per call of `verify`, over 7 batches of `batch`.
fn median(batch: u32, verify: impl Fn()) -> (f64, f64, f64) {
    let mut per_verify: Vec<f64> = (0..7)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..batch {
                verify();
            }
            started.elapsed().as_secs_f64() * 1e6 / f64::from(batch)
        })
        .collect();
    per_verify.sort_by(f64::total_cmp);
    (per_verify[3], per_verify[0], per_verify[6])
}

fn main() {
    let claims = json!({
        "iss": "https://as.example", "aud": "https://hub.example/.well-known/mercure",
        "sub": "u7", "exp": 4_102_444_800u64, "iat": 1_767_225_300u64, "jti": "j", "client_id": "c",
        "authorization_details": [{
            "type": "https://mercure.rocks/authorization-detail", "actions": ["subscribe"],
            "topics": [{ "match": "https://example.com/books/:id", "match_type": "urlpattern" }],
        }],
    });
    let cases = [
        (
            Alg::Hs256,
            SECRET.to_owned(),
            EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
            Algorithm::HS256,
        ),
        (
            Alg::Rs256,
            include_str!("../tests/keys/rs256.pub").to_owned(),
            EncodingKey::from_rsa_pem(include_bytes!("../tests/keys/rs256.key")).unwrap(),
            Algorithm::RS256,
        ),
        (
            Alg::Es256,
            include_str!("../tests/keys/es256.pub").to_owned(),
            EncodingKey::from_ec_pem(include_bytes!("../tests/keys/es256.key")).unwrap(),
            Algorithm::ES256,
        ),
    ];
    // One JWK Set with the three keys, read from a file as `--jwks-url
    // file://…` would, and waited for.
    let mut keys = Vec::new();
    for (_, _, signing, algorithm) in &cases {
        let mut jwk = Jwk::from_encoding_key(signing, *algorithm).unwrap();
        jwk.common.key_id = Some(format!("{algorithm:?}"));
        keys.push(jwk);
    }
    let path = std::env::temp_dir().join(format!("sseloop-bench-jwks-{}.json", std::process::id()));
    std::fs::write(&path, serde_json::to_string(&JwkSet { keys }).unwrap()).unwrap();
    let mut sets = Sets::start(vec![format!("file://{}", path.display())]).unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    while !sets.take_fetched() && Instant::now() < deadline {
        std::thread::yield_now();
    }
    let _ = std::fs::remove_file(&path);
    let from_set = Verifier::of_set(0);
    for (alg, public, signing, algorithm) in cases {
        let mut header = Header::new(algorithm);
        header.typ = Some("at+jwt".into());
        header.kid = Some(format!("{algorithm:?}"));
        let token = encode(&header, &claims, &signing).unwrap();
        let configured = Verifier::new(alg, &public).unwrap();
        let batch = match alg {
            Alg::Hs256 => 20_000,
            _ => 2_000,
        };
        let verify = |verifier: &Verifier| {
            black_box(verifier.verify_access(black_box(&token), &sets).unwrap());
        };
        let (key, key_min, key_max) = median(batch, || verify(&configured));
        let (set, set_min, set_max) = median(batch, || verify(&from_set));
        println!(
            "jwt verify {alg:?}: configured key {key:.2} µs (min {key_min:.2}, max {key_max:.2}), JWK Set {set:.2} µs (min {set_min:.2}, max {set_max:.2}), ratio {:.2} (median of 7 batches of {batch})",
            set / key
        );
    }
}
