//! `sseloop token`: mints a token the hub started with the same flags
//! accepts, as the reference hub's `mercure-token` does: a Mercure 1.0
//! access token (RFC 9068) by default, whose issuer and audience come from
//! `--issuer` and `--resource-identifier`, or a 0.x token (`--format 0.x`).
//! Signing is `jsonwebtoken`'s.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};

use crate::auth::{Alg, DETAIL_TYPE};

/// Which kind of token to mint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A Mercure 1.0 access token (`typ` `at+jwt`, `authorization_details`).
    #[value(name = "1.0")]
    V1,
    /// A Mercure 0.x token (a `mercure` claim).
    #[value(name = "0.x")]
    V0,
}

/// What a minted token says.
#[derive(Clone, Debug)]
pub struct Order {
    /// The kind of token.
    pub format: Format,
    /// Topic matchers it may publish to.
    pub publish: Vec<String>,
    /// Topic matchers of the private updates it may receive.
    pub subscribe: Vec<String>,
    /// How long it lasts.
    pub ttl: Duration,
    /// Its issuer (1.0: required).
    pub issuer: Option<String>,
    /// Its audience, the hub's resource identifier (1.0: required).
    pub audience: Option<String>,
    /// Whom it is for.
    pub subject: String,
    /// Data shown with its subscriptions.
    pub payload: Option<Value>,
}

/// The matcher type a 1.0 token gives `matcher`: `urlpattern` when it has
/// URL Pattern syntax (a `:name` group after `/`, or a `*` wildcard beside
/// other text), else `exact` (and `*` alone matches every topic in both).
pub fn match_type(matcher: &str) -> &'static str {
    let group = matcher
        .split('/')
        .any(|segment| segment.starts_with(':') && segment.len() > 1);
    if group || (matcher.contains('*') && matcher != "*") {
        "urlpattern"
    } else {
        "exact"
    }
}

impl Order {
    /// Its claims, as of `now` (seconds since the epoch).
    ///
    /// # Errors
    /// What a 1.0 token lacks: its issuer or audience.
    pub fn claims(&self, now: u64) -> Result<Value, String> {
        let exp = now + self.ttl.as_secs();
        if self.format == Format::V0 {
            let mut mercure = json!({});
            if !self.publish.is_empty() {
                mercure["publish"] = json!(self.publish);
            }
            if !self.subscribe.is_empty() {
                mercure["subscribe"] = json!(self.subscribe);
            }
            if let Some(payload) = &self.payload {
                mercure["payload"] = payload.clone();
            }
            let mut claims = json!({ "mercure": mercure, "exp": exp, "sub": self.subject });
            if let Some(iss) = &self.issuer {
                claims["iss"] = json!(iss);
            }
            return Ok(claims);
        }
        let iss = self.issuer.as_deref().ok_or(
            "a Mercure 1.0 token needs its issuer: --issuer ISS (SSELOOP_ISSUER), as the hub has it",
        )?;
        let aud = self.audience.as_deref().ok_or(
            "a Mercure 1.0 token needs its audience, the hub's URL: --resource-identifier URL (SSELOOP_RESOURCE_IDENTIFIER)",
        )?;
        let detail = |action: &str, matchers: &[String]| {
            let topics: Vec<Value> = matchers
                .iter()
                .map(|m| json!({ "match": m, "match_type": match_type(m) }))
                .collect();
            let mut detail = json!({ "type": DETAIL_TYPE, "actions": [action], "topics": topics });
            if let (Some(payload), "subscribe") = (&self.payload, action) {
                detail["payload"] = payload.clone();
            }
            detail
        };
        let mut details = Vec::new();
        if !self.publish.is_empty() {
            details.push(detail("publish", &self.publish));
        }
        if !self.subscribe.is_empty() {
            details.push(detail("subscribe", &self.subscribe));
        }
        Ok(json!({
            "iss": iss,
            "aud": aud,
            "sub": self.subject,
            "client_id": iss,
            "iat": now,
            "exp": exp,
            "jti": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
            "authorization_details": details,
        }))
    }

    /// The token, signed with `key` for `alg`: the HS256 secret, or a PEM
    /// private key (PKCS#8) for RS256 and ES256.
    ///
    /// # Errors
    /// A claim it lacks, or a key that does not fit `alg`.
    pub fn mint(&self, alg: Alg, key: &str) -> Result<String, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let claims = self.claims(now)?;
        let encoding = match alg {
            Alg::Hs256 if key.is_empty() => return Err("the HS256 secret is empty".into()),
            Alg::Hs256 => EncodingKey::from_secret(key.as_bytes())
                .map_err(|e| format!("not an HMAC secret: {e}"))?,
            Alg::Rs256 => EncodingKey::from_rsa_pem(key.as_bytes())
                .map_err(|e| format!("not an RSA private key in PEM: {e}"))?,
            Alg::Es256 => EncodingKey::from_ec_pem(key.as_bytes())
                .map_err(|e| format!("not an EC private key in PEM (PKCS#8): {e}"))?,
        };
        let mut header = Header::new(alg.jwt());
        header.typ = Some(match self.format {
            Format::V1 => "at+jwt".to_owned(),
            Format::V0 => "JWT".to_owned(),
        });
        jsonwebtoken::encode(&header, &claims, &encoding).map_err(|e| e.to_string())
    }
}

/// A duration as `--ttl` takes it: seconds, or a number with `s`, `m`,
/// `h` or `d`.
///
/// # Errors
/// What it takes, when `text` is not that.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err("a duration: 3600, 90s, 15m, 1h or 7d".into()),
    };
    match number.parse::<u64>() {
        Ok(n) if n > 0 => Ok(Duration::from_secs(n.saturating_mul(unit))),
        _ => Err("a duration above zero: 3600, 90s, 15m, 1h or 7d".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(format: Format) -> Order {
        Order {
            format,
            publish: vec!["*".into()],
            subscribe: vec!["https://example.com/books/:id".into(), "news".into()],
            ttl: Duration::from_secs(3600),
            issuer: Some("https://example.com".into()),
            audience: Some("https://hub.example/.well-known/mercure".into()),
            subject: "me".into(),
            payload: Some(json!({ "user": 7 })),
        }
    }

    #[test]
    fn a_1_0_token_carries_what_rfc_9068_asks_and_its_grants() {
        let claims = order(Format::V1).claims(100).unwrap();
        assert_eq!(claims["exp"], 3700);
        assert_eq!(claims["aud"], "https://hub.example/.well-known/mercure");
        let details = claims["authorization_details"].as_array().unwrap();
        assert_eq!(details[0]["actions"], json!(["publish"]));
        assert_eq!(
            details[0]["topics"],
            json!([{ "match": "*", "match_type": "exact" }])
        );
        assert_eq!(details[1]["topics"][0]["match_type"], "urlpattern");
        assert_eq!(details[1]["topics"][1]["match_type"], "exact");
        assert_eq!(details[1]["payload"], json!({ "user": 7 }));
        for key in ["iss", "sub", "client_id", "iat", "jti"] {
            assert!(claims.get(key).is_some(), "{key}");
        }
        let mut lacking = order(Format::V1);
        lacking.audience = None;
        assert!(lacking
            .claims(0)
            .unwrap_err()
            .contains("--resource-identifier"));
    }

    #[test]
    fn a_0x_token_has_a_mercure_claim() {
        let claims = order(Format::V0).claims(0).unwrap();
        assert_eq!(claims["mercure"]["publish"], json!(["*"]));
        assert_eq!(claims["mercure"]["payload"], json!({ "user": 7 }));
    }

    #[test]
    fn durations_and_matcher_types() {
        assert_eq!(parse_ttl("90").unwrap().as_secs(), 90);
        assert_eq!(parse_ttl("15m").unwrap().as_secs(), 900);
        assert_eq!(parse_ttl("1h").unwrap().as_secs(), 3600);
        assert_eq!(parse_ttl("7d").unwrap().as_secs(), 604_800);
        for bad in ["", "0", "1y", "h", "-1"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
        assert_eq!(match_type("https://example.com/books/:id"), "urlpattern");
        assert_eq!(match_type("https://example.com/users/42/*"), "urlpattern");
        assert_eq!(match_type("*"), "exact");
        assert_eq!(match_type("https://example.com/books/1"), "exact");
        assert_eq!(match_type("urn:isbn:123"), "exact");
    }
}
