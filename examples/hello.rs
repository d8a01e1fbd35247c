//! The finite stream that wrk and oha measure: `GET /events` answers one
//! event (`event: greeting`, `data: hello world`) and ends the response,
//! keeping the connection alive for the next request.
//!
//! ```text
//! cargo run --release --example hello -- --listen 127.0.0.1:8081
//! curl -N http://127.0.0.1:8081/events
//! ```

use sseloop::{Event, Frame, Reply, Request, Response, Server};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut listen = String::from("127.0.0.1:8080");
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(addr)) => listen = addr,
            _ => {
                eprintln!("usage: hello [--listen ADDR]");
                std::process::exit(2);
            }
        }
    }
    // Encoded once; every request queues the same shared bytes.
    let greeting: Frame = Event::new("hello world")
        .event("greeting")
        .encode()
        .expect("a valid event");
    let server = Server::builder()
        .bind(listen.as_str())?
        .auto_generate_id(false)
        .build(move |req: &Request, reply: &mut Reply<'_>| {
            if req.path() == "/events" {
                let _ = reply.send_frame(&greeting);
                let _ = reply.end();
            } else {
                let _ = reply.respond(Response::text(404, "not found\n"));
            }
        })?;
    eprintln!("hello: listening on http://{}/events", server.local_addr());
    server.run()
}
