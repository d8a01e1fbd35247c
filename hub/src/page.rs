//! A listing's page (`GET /clients`, the subscriptions API): where it
//! starts and how many it holds, from `?cursor=…&limit=…`, and the `Link`
//! to the next one (RFC 8288 `rel="next"`). A cursor is opaque to clients;
//! the body keeps its shape.

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

    /// The page's share of `keys` (each once, in any order): the
    /// [`limit`](Self::limit) smallest after the cursor, sorted, and the
    /// cursor of the page after them, if any. Linear in `keys`, whatever
    /// page is asked for.
    pub fn select<'a>(
        &self,
        keys: impl Iterator<Item = &'a str>,
    ) -> (Vec<&'a str>, Option<String>) {
        let mut after: Vec<&str> = keys
            .filter(|key| self.cursor.as_deref().is_none_or(|cursor| *key > cursor))
            .collect();
        let more = after.len() > self.limit;
        if more {
            after.select_nth_unstable(self.limit);
            after.truncate(self.limit);
        }
        after.sort_unstable();
        let next = more
            .then(|| after.last().map(|key| (*key).to_owned()))
            .flatten();
        (after, next)
    }

    /// The `Link` header's value that points at the page after this one,
    /// which starts at `next`, on `path`.
    pub fn link(&self, path: &str, next: &str) -> String {
        format!(
            "<{path}?cursor={}&limit={}>; rel=\"next\"",
            encode_segment(next),
            self.limit
        )
    }

    /// `json` as the answer, with a `Link` to the page after it when
    /// `next` names one.
    pub fn answer(&self, path: &str, json: String, next: Option<&str>) -> Response {
        let answer = Response::new(200)
            .header("Content-Type", "application/json")
            .body(json);
        match next {
            Some(cursor) => answer.header("Link", self.link(path, cursor)),
            None => answer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Page;

    #[test]
    fn select_takes_the_smallest_after_the_cursor_and_points_at_the_rest() {
        let keys = ["e", "a", "d", "c", "b"];
        let first = Page {
            cursor: None,
            limit: 2,
        };
        assert_eq!(
            first.select(keys.into_iter()),
            (vec!["a", "b"], Some("b".to_owned()))
        );
        let second = Page {
            cursor: Some("b".into()),
            limit: 2,
        };
        assert_eq!(
            second.select(keys.into_iter()),
            (vec!["c", "d"], Some("d".to_owned()))
        );
        let last = Page {
            cursor: Some("d".into()),
            limit: 2,
        };
        assert_eq!(last.select(keys.into_iter()), (vec!["e"], None));
        let exact = Page {
            cursor: None,
            limit: 5,
        };
        assert_eq!(exact.select(keys.into_iter()).1, None);
    }
}
