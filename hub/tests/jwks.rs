//! Trusted issuers' keys from their JWK Sets (draft-08 §Token Validation,
//! RFC 7517), against a key server run by the test on 127.0.0.1: the hub
//! fetches it off its loop (a subscribe waiting for the first fetch is
//! answered once it ends, `/health` meanwhile at once), follows a key
//! rotation within seconds, stops accepting a removed key, does not flood
//! the server when tokens name forged key ids, keeps its keys while the
//! server is down, verifies each issuer's tokens with its own keys, and
//! fetches over real TLS (a certificate made in the test) only from a
//! server its roots trust.

#[path = "util/hub_process.rs"]
mod hub_process;
#[path = "util/jwt.rs"]
mod jwt;
#[path = "util/mercure.rs"]
mod mercure;
#[path = "../../tests/util/mod.rs"]
mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hub_process::HubProcess;
use mercure::{bearer, enc, send_get, HUB};
use serde_json::{json, Value};
use util::DEADLINE;

const ISS: &str = "https://as.test";
const AUD: &str = "https://hub.test/.well-known/mercure";
const KEY_A: &str = include_str!("keys/es256.key");
const KEY_B: &str = include_str!("keys/es256-rotated.key");

/// What the key server answers, and how long it takes over its first answer.
struct Served {
    status: u16,
    body: String,
    first_delay: Duration,
}

/// An issuer's JWK Set endpoint: answers every GET with the document of
/// the moment, one request a connection, and counts the requests.
struct KeyServer {
    addr: SocketAddr,
    served: Arc<Mutex<Served>>,
    hits: Arc<AtomicUsize>,
}

/// A connection to the key server, plain or TLS.
trait Io: Read + Write {}
impl<T: Read + Write> Io for T {}

impl KeyServer {
    fn start(keys: &[Value], first_delay: Duration) -> Self {
        Self::start_with(keys, first_delay, None)
    }

    /// The server over TLS, with a certificate for `localhost` made here
    /// and signed by a CA made here; answers it and the CA's PEM.
    fn start_tls(keys: &[Value]) -> (Self, String) {
        let ca = util::tls::TestCa::new();
        let config = ca.leaf("key server").server_config();
        let server = Self::start_with(keys, Duration::ZERO, Some(Arc::new(config)));
        (server, ca.pem)
    }

    fn start_with(
        keys: &[Value],
        first_delay: Duration,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(Mutex::new(Served {
            status: 200,
            body: json!({ "keys": keys }).to_string(),
            first_delay,
        }));
        let hits = Arc::new(AtomicUsize::new(0));
        let (s, h) = (served.clone(), hits.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(tcp) = conn else { continue };
                let _ = tcp.set_read_timeout(Some(DEADLINE));
                let mut conn: Box<dyn Io> = match &tls {
                    None => Box::new(tcp),
                    Some(config) => {
                        let session = rustls::ServerConnection::new(config.clone()).unwrap();
                        Box::new(rustls::StreamOwned::new(session, tcp))
                    }
                };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let hit = h.fetch_add(1, Ordering::SeqCst);
                let (status, body, delay) = {
                    let served = s.lock().unwrap();
                    (served.status, served.body.clone(), served.first_delay)
                };
                if hit == 0 {
                    // A slow issuer, for the hub's first fetch only.
                    std::thread::sleep(delay);
                }
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        KeyServer { addr, served, hits }
    }

    fn url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    fn https_url(&self) -> String {
        format!("https://localhost:{}/jwks", self.addr.port())
    }

    fn serve(&self, keys: &[Value]) {
        let mut served = self.served.lock().unwrap();
        served.status = 200;
        served.body = json!({ "keys": keys }).to_string();
    }

    fn fail(&self) {
        self.served.lock().unwrap().status = 503;
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// An access token from `iss` signed with `pem` under `kid`, allowed to
/// receive private updates on `t`; `n` makes each token distinct.
fn token(iss: &str, pem: &str, kid: &str, n: usize) -> String {
    let mut claims = jwt::access_claims(
        iss,
        AUD,
        json!([jwt::detail(&["subscribe", "publish"], &[("t", None)])]),
    );
    claims["jti"] = json!(format!("urn:test:{n}"));
    jwt::es256_kid(pem, kid, &claims)
}

fn target() -> String {
    format!("{HUB}?match={}", enc("t"))
}

/// The status a subscribe with `token` is answered with.
fn status_of(hub: &HubProcess, token: &str) -> (u16, String) {
    let mut client = send_get(hub, &target(), &[("Authorization", &bearer(token))]);
    let head = client.read_head();
    let body = if head.status == 200 {
        String::new()
    } else {
        String::from_utf8_lossy(&client.read_body(&head)).into_owned()
    };
    (head.status, body)
}

#[test]
fn token_validation_with_a_rotating_jwk_set() {
    let server = KeyServer::start(&[jwt::es256_jwk(KEY_A, "a")], Duration::from_millis(700));
    let hub = HubProcess::start(&[
        "--issuer",
        ISS,
        "--jwks-url",
        &server.url(),
        "--resource-identifier",
        AUD,
    ]);
    // Waiting for the first fetch, a subscribe is deferred; the loop goes
    // on meanwhile: /health is answered while the subscribe is not.
    let mut waiting = send_get(
        &hub,
        &target(),
        &[("Authorization", &bearer(&token(ISS, KEY_A, "a", 0)))],
    );
    let started = Instant::now();
    let (head, _) = hub.request("GET", "/health", &[], b"");
    assert_eq!(head.status, 200);
    let health = started.elapsed();
    let head = waiting.read_head();
    assert_eq!(head.status, 200, "accepted once the keys came");
    let subscribed = started.elapsed();
    assert!(
        health < subscribed,
        "/health {health:?} came before the deferred subscribe {subscribed:?}"
    );

    // Rotation: the set now has only key b. A token under b is accepted
    // (its unknown kid has the set fetched again at once); a new token
    // under a is refused, and so is the one accepted before (its grant
    // was verified with a key the set no longer has).
    server.serve(&[jwt::es256_jwk(KEY_B, "b")]);
    let before = server.hits();
    let (status, body) = status_of(&hub, &token(ISS, KEY_B, "b", 1));
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.hits(), before + 1, "one fetch for the new kid");
    for n in [0, 2] {
        let (status, body) = status_of(&hub, &token(ISS, KEY_A, "a", n));
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("kid \"a\""), "{body}");
    }

    // A flood of forged key ids: every one refused, the server asked at
    // most once a second.
    let before = server.hits();
    let flood_started = Instant::now();
    let clients: Vec<_> = (0..200)
        .map(|n| {
            let forged = token(ISS, KEY_B, &format!("forged-{n}"), 100 + n);
            send_get(&hub, &target(), &[("Authorization", &bearer(&forged))])
        })
        .collect();
    for mut client in clients {
        assert_eq!(client.read_head().status, 401);
    }
    let seconds = flood_started.elapsed().as_secs() as usize;
    let fetched = server.hits() - before;
    assert!(
        fetched <= seconds + 2,
        "{fetched} fetches in {seconds} s for 200 forged kids"
    );

    // The issuer goes down: the keys the hub holds still verify.
    server.fail();
    // The cooldown is a rule of time, with nothing to read: wait it out so
    // the next unknown kid makes the hub fetch (and fail).
    std::thread::sleep(Duration::from_millis(1100));
    let before = server.hits();
    let (status, _) = status_of(&hub, &token(ISS, KEY_A, "unknown", 300));
    assert_eq!(
        status, 401,
        "a kid it lacks, fetched again, the issuer down"
    );
    assert_eq!(server.hits(), before + 1, "it did ask, and got a 503");
    let (status, body) = status_of(&hub, &token(ISS, KEY_B, "b", 301));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn token_validation_keeps_each_issuer_to_its_own_keys() {
    let first = KeyServer::start(&[jwt::es256_jwk(KEY_A, "k")], Duration::ZERO);
    let second = KeyServer::start(&[jwt::es256_jwk(KEY_B, "k")], Duration::ZERO);
    let other = "https://other-as.test";
    let hub = HubProcess::start(&[
        "--issuer",
        ISS,
        "--jwks-url",
        &first.url(),
        "--trusted-issuer",
        &format!("{other}={}", second.url()),
        "--resource-identifier",
        AUD,
    ]);
    assert_eq!(status_of(&hub, &token(ISS, KEY_A, "k", 0)).0, 200);
    // Both are authorization servers, as the metadata says.
    let (_, body) = hub.request(
        "GET",
        "/.well-known/oauth-protected-resource/.well-known/mercure",
        &[],
        b"",
    );
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["authorization_servers"], json!([ISS, other]));
    assert_eq!(status_of(&hub, &token(other, KEY_B, "k", 1)).0, 200);
    // The same kid, signed by the other issuer's key: refused.
    let (status, body) = status_of(&hub, &token(ISS, KEY_B, "k", 2));
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("signature"), "{body}");
    assert_eq!(status_of(&hub, &token(other, KEY_A, "k", 3)).0, 401);
    assert_eq!(
        status_of(&hub, &token("https://stranger.test", KEY_A, "k", 4)).0,
        401
    );
}

#[test]
fn an_issuer_never_reached_is_a_503_that_says_so() {
    let down = KeyServer::start(&[], Duration::ZERO);
    down.fail();
    let hub = HubProcess::start(&[
        "--issuer",
        ISS,
        "--jwks-url",
        &down.url(),
        "--resource-identifier",
        AUD,
    ]);
    let (status, body) = status_of(&hub, &token(ISS, KEY_A, "a", 0));
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("cannot be fetched") && body.contains("503"),
        "{body}"
    );
    assert!(down.hits() >= 1);
}

#[test]
fn a_jwk_set_over_https_is_trusted_by_the_system_roots_only() {
    let (server, ca) = KeyServer::start_tls(&[jwt::es256_jwk(KEY_A, "a")]);
    let ca_file = std::env::temp_dir().join(format!("sseloop-jwks-ca-{}.pem", server.addr.port()));
    std::fs::write(&ca_file, ca).unwrap();
    let args = [
        "--issuer",
        ISS,
        "--jwks-url",
        &server.https_url(),
        "--resource-identifier",
        AUD,
    ];
    // The CA among the roots (as SSL_CERT_FILE sets them): its keys come.
    let trusting =
        HubProcess::start_with_env(&args, &[("SSL_CERT_FILE", ca_file.to_str().unwrap())]);
    let (status, body) = status_of(&trusting, &token(ISS, KEY_A, "a", 0));
    assert_eq!(status, 200, "{body}");
    // Without it, the certificate is refused, and so are the tokens.
    let empty = std::env::temp_dir().join(format!("sseloop-jwks-no-ca-{}.pem", server.addr.port()));
    std::fs::write(&empty, "").unwrap();
    let doubting = HubProcess::start_with_env(&args, &[("SSL_CERT_FILE", empty.to_str().unwrap())]);
    let (status, body) = status_of(&doubting, &token(ISS, KEY_A, "a", 1));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("cannot be fetched"), "{body}");
    let _ = std::fs::remove_file(ca_file);
    let _ = std::fs::remove_file(empty);
}
