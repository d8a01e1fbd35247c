//! The route from fastify-se's README, in sseloop: a greeting, data as an
//! object (JSON), a send to another client by seid, and the end of the
//! stream, after which sending is an error.
//!
//! ```text
//! cargo run --features serde --example seed_route
//! curl -N http://127.0.0.1:8080/events              # prints its seid, e.g. @user-1
//! curl -N 'http://127.0.0.1:8080/events?to=@user-1' # sends to @user-1, then ends
//! ```

use serde_json::json;
use sseloop::{Event, Reply, Request, Server};

fn main() -> std::io::Result<()> {
    let mut next = 0u64;
    let server = Server::builder()
        .bind("127.0.0.1:8080")?
        // The seed's `seidGenerator`: readable names instead of random ones.
        .seid_generator(move || {
            next += 1;
            format!("@user-{next}")
        })
        .build(|req: &Request, reply: &mut Reply<'_>| {
            if req.path() != "/events" {
                return; // unanswered: 404
            }
            // reply.sendEvent("hello world", "greeting")
            let _ = reply.send(Event::new("hello world").event("greeting"));
            let seid = reply.seid().unwrap_or_default().to_owned();
            let _ = reply.send(Event::new(seid).event("seid"));

            // reply.sendEvent({ data: {...}, event: "new_private_message" })
            let message =
                json!({ "from": "@other_people", "message": "hey guy", "date": "x-x-x-x" });
            if let Ok(event) = Event::json(&message) {
                let _ = reply.send(event.event("new_private_message"));
            }

            // Without `to`, this stream stays open to be sent to.
            if let Some(friend) = req.query("to") {
                // reply.sendEventBySeid("@my_friend", {...}): an unknown seid
                // is an error value, not a throw.
                let note = json!({ "from": friend, "message": "my name is x" });
                let sent = Event::json(&note).map_err(|e| e.to_string()).and_then(|e| {
                    reply
                        .send_to(friend, e.event("send_new_message"))
                        .map_err(|e| e.to_string())
                });
                if let Err(e) = sent {
                    eprintln!("send to {friend}: {e}");
                }
                // reply.endEvent()
                let _ = reply.end();
                // reply.sendEvent would throw here; sseloop says so in a value.
                if let Err(e) = reply.send("hello world") {
                    eprintln!("after end: {e}");
                }
            }
        })?;
    eprintln!(
        "seed_route: listening on http://{}/events",
        server.local_addr()
    );
    server.run()
}
