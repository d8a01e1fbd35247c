//! The axum peer: the same routes as sseloop's benchmarks use.
//! - `GET /events`: one event (`greeting` / `hello world`), then the response ends;
//! - `GET /sub`: a stream of everything published;
//! - `POST /pub`: broadcasts the body to every `/sub` stream.
//!
//! `peer-axum 127.0.0.1:PORT`

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::routing::{get, post};
use axum::Router;
use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

async fn events() -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    Sse::new(stream::once(async { Ok(Event::default().event("greeting").data("hello world")) }))
}

async fn sub(State(tx): State<broadcast::Sender<String>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = BroadcastStream::new(tx.subscribe());
    // A lagging receiver loses events (RecvError::Lagged); the benchmark counts them as lost.
    Sse::new(rx.filter_map(|m| async move { m.ok().map(|data| Ok(Event::default().data(data))) }))
}

async fn publish(State(tx): State<broadcast::Sender<String>>, body: String) -> &'static str {
    let _ = tx.send(body);
    "ok"
}

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8082".into());
    let (tx, _) = broadcast::channel::<String>(4096);
    let app = Router::new()
        .route("/events", get(events))
        .route("/sub", get(sub))
        .route("/pub", post(publish))
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    eprintln!("peer-axum: listening on http://{addr}");
    axum::serve(listener, app).await.expect("serve");
}
