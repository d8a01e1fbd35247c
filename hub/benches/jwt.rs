//! What verifying a subscriber's token costs, per subscribe, for each
//! algorithm the hub accepts: `cargo bench -p sseloop-hub --bench jwt`.
//! Tokens are signed with the test key fixtures; the figure is the median
//! of several batches, in µs per verification.

use std::hint::black_box;
use std::time::Instant;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use sseloop_hub::auth::{Alg, Verifier};

const SECRET: &str = "!ChangeThisMercureHubJWTSecretKey!";

fn main() {
    let claims = json!({ "mercure": { "subscribe": ["https://example.com/books/{id}"], "payload": { "user": 7 } } });
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
    for (alg, public, signing, algorithm) in cases {
        let token = encode(&Header::new(algorithm), &claims, &signing).unwrap();
        let verifier = Verifier::new(alg, &public).unwrap();
        let batch = match alg {
            Alg::Hs256 => 20_000,
            _ => 2_000,
        };
        let mut per_verify: Vec<f64> = (0..7)
            .map(|_| {
                let started = Instant::now();
                for _ in 0..batch {
                    black_box(verifier.verify(black_box(&token)).unwrap());
                }
                started.elapsed().as_secs_f64() * 1e6 / f64::from(batch)
            })
            .collect();
        per_verify.sort_by(f64::total_cmp);
        println!(
            "jwt verify {alg:?}: {:.2} µs per subscribe (median of 7 batches of {batch}; min {:.2}, max {:.2})",
            per_verify[3], per_verify[0], per_verify[6]
        );
    }
}
