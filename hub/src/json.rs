//! The JSON the hub writes, through serde_json (so every string is escaped
//! as JSON requires).

use serde::Serialize;

/// One live client in `GET /clients`.
#[derive(Serialize)]
struct Client<'a> {
    seid: &'a str,
    topics: Vec<&'a str>,
}

/// `GET /clients`: `[{"seid":"…","topics":["…"]}]` and a newline.
pub fn clients<'a>(clients: impl Iterator<Item = (&'a str, Vec<&'a str>)>) -> String {
    let list: Vec<Client<'a>> = clients
        .map(|(seid, topics)| Client { seid, topics })
        .collect();
    let mut out = serde_json::to_string(&list).unwrap_or_else(|_| "[]".into());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        let json = clients([("a\"b\\c\n\u{1}", vec!["t"])].into_iter());
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back[0]["seid"], "a\"b\\c\n\u{1}");
        assert_eq!(back[0]["topics"][0], "t");
    }
}
