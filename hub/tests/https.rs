//! The hub over HTTPS: `--tls-cert` and `--tls-key` with certificates made
//! here, rustls' own client, a reload on SIGHUP while a stream is open, and
//! the refusals at start that name what is wrong.

#[path = "util/hub_process.rs"]
mod hub_process;
#[path = "../../tests/util/mod.rs"]
mod util;

use std::path::PathBuf;

use hub_process::HubProcess;
use rustls::pki_types::CertificateDer;
use util::tls::TestCa;
use util::{EventStream, DEADLINE};

/// A directory of this test's own under the target's tmp dir.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("https-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn start_https(ca: &TestCa, flags: &[String]) -> HubProcess {
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    HubProcess::start(&args).with_tls(ca.client_config(&[]))
}

/// The certificate a new HTTPS connection is shown (by a client of its
/// own: one that resumed an earlier session would be shown no certificate,
/// and report the earlier one's).
fn served(hub: &HubProcess, ca: &TestCa) -> CertificateDer<'static> {
    let mut client = util::Client::connect_tls(hub.addr, ca.client_config(&[]), "localhost");
    client.send(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    let (head, _) = client.read_response();
    assert_eq!(head.status, 200);
    let tls = client.tls.as_ref().unwrap();
    tls.peer_certificates().expect("a handshake done")[0].clone()
}

fn sighup(hub: &HubProcess) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &hub.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_stream_over_https_is_replayed_from_its_last_event_id() {
    let ca = TestCa::new();
    let flags = ca.leaf("first").write_flags(&scratch("replay"));
    let hub = start_https(&ca, &flags);
    let (mut sub, _) = hub.subscribe("/events?topic=t");
    hub.publish("?topic=t", "seen");
    let last = sub.next().last_event_id;
    drop(sub);
    let missed: Vec<String> = (0..3)
        .map(|i| hub.publish("?topic=t", &format!("missed {i}")).1)
        .collect();
    let mut c = hub.connect();
    c.send(
        format!("GET /events?topic=t HTTP/1.1\r\nHost: x\r\nLast-Event-ID: {last}\r\n\r\n")
            .as_bytes(),
    );
    let mut sub = EventStream::from_client(c);
    assert_eq!(sub.next().event, "seid");
    for (i, id) in missed.iter().enumerate() {
        let m = sub.next();
        assert_eq!((m.data, &m.last_event_id), (format!("missed {i}"), id));
    }
    hub.publish("?topic=t", "live");
    assert_eq!(sub.next().data, "live");
    // A plain-HTTP request to the HTTPS port is refused, not answered.
    let mut plain = util::Client::connect(hub.addr);
    plain.send(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(plain.closes_within(DEADLINE));
    // The hub's URL, as its metadata derives it, is https.
    let (_, doc) = hub.request(
        "GET",
        "/.well-known/oauth-protected-resource/.well-known/mercure",
        &[],
        b"",
    );
    let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
    assert_eq!(doc["resource"], "https://t/.well-known/mercure");
    let (_, metrics) = hub.request("GET", "/metrics", &[], b"");
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("sseloop_tls_errors_total 1\n"),
        "{metrics}"
    );
}

#[test]
fn a_certificate_reload_keeps_open_streams_and_serves_the_new_one() {
    let ca = TestCa::new();
    let dir = scratch("reload");
    let (first, second) = (ca.leaf("first"), ca.leaf("second"));
    let flags = first.write_flags(&dir);
    let hub = start_https(&ca, &flags);
    assert_eq!(served(&hub, &ca), first.cert);
    let (mut open, _) = hub.subscribe("/events?topic=t");

    // A broken pair (another certificate's key) is refused, and the
    // certificate served until now stays.
    let other = ca.leaf("other");
    std::fs::write(dir.join("cert.pem"), &second.cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &other.key_pem).unwrap();
    sighup(&hub);
    let line = hub.stderr_line_with("not reloaded");
    assert!(line.contains("is not the key of the certificate"), "{line}");
    assert_eq!(served(&hub, &ca), first.cert);

    second.write_flags(&dir);
    sighup(&hub);
    hub.stderr_line_with("TLS certificate reloaded");
    assert_eq!(served(&hub, &ca), second.cert);
    // The stream opened before both reloads goes on.
    hub.publish("?topic=t", "after the reload");
    assert_eq!(open.next().data, "after the reload");
}

#[test]
fn the_hub_refuses_to_start_with_a_bad_certificate_or_key() {
    let ca = TestCa::new();
    let dir = scratch("refuse");
    let (one, two) = (ca.leaf("one"), ca.leaf("two"));
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let garbage = dir.join("garbage.pem");
    std::fs::write(&cert, &one.cert_pem).unwrap();
    std::fs::write(&key, &two.key_pem).unwrap();
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let missing = dir.join("missing.pem");
    let cases: Vec<(Vec<&std::path::Path>, &str)> = vec![
        (
            vec![&cert, &key],
            "is not the key of the certificate in --tls-cert",
        ),
        (vec![&missing, &key], "--tls-cert"),
        (vec![&garbage, &key], "no certificate in it"),
        (vec![&cert, &garbage], "--tls-key"),
    ];
    for (paths, says) in cases {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sseloop"))
            .args(["--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(paths[0])
            .arg("--tls-key")
            .arg(paths[1])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(says), "{says:?} not in {stderr}");
        assert!(!stderr.contains("listening"), "{stderr}");
    }
    // One flag without the other is a usage error.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sseloop"))
        .args(["--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));
}

#[test]
fn tls_1_2_clients_are_served_too() {
    let ca = TestCa::new();
    let flags = ca.leaf("first").write_flags(&scratch("tls12"));
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(ca.pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(util::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let hub = start_https(&ca, &flags).with_tls(std::sync::Arc::new(config));
    let (mut sub, _) = hub.subscribe("/events?topic=t");
    let version = sub.client.tls.as_ref().unwrap().protocol_version();
    assert_eq!(version, Some(rustls::ProtocolVersion::TLSv1_2));
    hub.publish("?topic=t", "over 1.2");
    assert_eq!(sub.next().data, "over 1.2");
}
