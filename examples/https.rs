//! An SSE server over HTTPS: the library's `tls` feature with a rustls
//! configuration built from PEM files.
//!
//! ```bash
//! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
//!   -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
//!   -keyout key.pem -out cert.pem
//! cargo run --features tls --example https -- cert.pem key.pem
//! curl -N --cacert cert.pem https://localhost:8443/events
//! ```

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sseloop::{Event, Reply, Request, Server};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (cert, key) = match (args.next(), args.next()) {
        (Some(cert), Some(key)) => (cert, key),
        _ => return Err("usage: https CERT.pem KEY.pem".into()),
    };
    let certs = CertificateDer::pem_file_iter(&cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&key)?;
    // The crypto provider is the program's choice; ring builds with a C compiler alone.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    let server = Server::builder()
        .bind("127.0.0.1:8443")?
        .tls(config) // everything else is the same as over plain TCP
        .build(|_req: &Request, reply: &mut Reply<'_>| {
            let _ = reply.send(Event::new("hello over TLS").event("greeting"));
        })?;
    eprintln!("listening on https://localhost:8443/events");
    server.run()?;
    Ok(())
}
