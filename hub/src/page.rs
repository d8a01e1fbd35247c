//! A listing's page (`GET /clients`): where it starts and how many it
//! holds, from `?cursor=…&limit=…`, and the `Link` to the next one
//! (RFC 8288 `rel="next"`). A cursor is opaque to clients; the body stays
//! a plain JSON array.

use sseloop::{Request, Response};

use crate::paths::encode_segment;

/// How many a page holds unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 1000;
/// The most a page may hold.
pub const MAX_LIMIT: usize = 10_000;

/// Which page a listing asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// Where it starts (`None`: at the beginning).
    pub cursor: Option<String>,
    /// How many it holds at most (a Redis scan may give a few more).
    pub limit: usize,
}

impl Page {
    /// The page `req` asks for.
    ///
    /// # Errors
    /// `400` for a `limit` that is not a number from 1 to [`MAX_LIMIT`].
    pub fn of(req: &Request) -> Result<Page, Response> {
        let limit = match req.query("limit") {
            None => DEFAULT_LIMIT,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(Response::text(
                        400,
                        format!("limit must be a number from 1 to {MAX_LIMIT}\n"),
                    ))
                }
            },
        };
        let cursor = req
            .query("cursor")
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        Ok(Page { cursor, limit })
    }

    /// `json` as the answer, with a `Link` to the page after it when
    /// `next` names one.
    pub fn answer(&self, path: &str, json: String, next: Option<&str>) -> Response {
        let answer = Response::new(200)
            .header("Content-Type", "application/json")
            .body(json);
        match next {
            Some(cursor) => answer.header(
                "Link",
                format!(
                    "<{path}?cursor={}&limit={}>; rel=\"next\"",
                    encode_segment(cursor),
                    self.limit
                ),
            ),
            None => answer,
        }
    }
}
