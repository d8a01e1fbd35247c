//! Who receives an update: subscribers grouped by what they select.
//!
//! Subscribers with the same selectors (and, for Mercure, the same private
//! selectors from their token) form one [`Group`], which is one topic of the
//! library's: a publish decides once per group whether the update goes to
//! it, evaluating each distinct selector once, and the library queues the
//! one encoded frame on every member. The cost of a publish follows the
//! number of distinct selector sets, never the number of subscribers; and a
//! subscriber is in exactly one group, so an update whose several topics it
//! selects still reaches it once.

use std::collections::HashMap;

use slab::Slab;

use crate::history::Update;
use crate::topics::{SelectorId, SelectorStore};

/// What a subscriber selects.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Audience {
    /// A native `/events` subscriber: public updates on one of its exact
    /// topics, and native broadcasts.
    Native {
        /// Its topics, sorted, without repeats.
        topics: Vec<String>,
    },
    /// A Mercure subscriber: updates with a topic its selectors match;
    /// private ones only if its token's selectors match one of their topics.
    Mercure {
        /// Its `topic` selectors, sorted.
        selectors: Vec<SelectorId>,
        /// Its token's `mercure.subscribe` selectors, sorted (`None`: no
        /// token, public updates only).
        allowed: Option<Vec<SelectorId>>,
    },
}

impl Audience {
    /// A native audience for `topics` (empty: broadcasts only).
    pub fn native<'a>(topics: impl IntoIterator<Item = &'a str>) -> Self {
        let mut topics: Vec<String> = topics.into_iter().map(str::to_owned).collect();
        topics.sort_unstable();
        topics.dedup();
        Audience::Native { topics }
    }

    /// A Mercure audience: `selectors` and the token's `allowed` private
    /// selectors, interned in `store`.
    pub fn mercure(
        store: &mut SelectorStore,
        selectors: &[String],
        allowed: Option<&[String]>,
    ) -> Self {
        let mut intern = |list: &[String]| {
            let mut ids: Vec<SelectorId> = list.iter().map(|s| store.intern(s)).collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        Audience::Mercure {
            selectors: intern(selectors),
            allowed: allowed.map(&mut intern),
        }
    }

    /// The topics or selectors it was asked for, as text (for `/clients`).
    pub fn describe<'a>(&'a self, store: &'a SelectorStore) -> Vec<&'a str> {
        match self {
            Audience::Native { topics } => topics.iter().map(String::as_str).collect(),
            Audience::Mercure { selectors, .. } => {
                selectors.iter().map(|&id| store.text(id)).collect()
            }
        }
    }
}

/// Answers, for one update, whether each selector matches one of its
/// topics, working each out once.
struct Memo<'a> {
    store: &'a SelectorStore,
    topics: &'a [String],
    /// Per selector: 0 not worked out yet, 1 no, 2 yes.
    known: Vec<u8>,
}

impl<'a> Memo<'a> {
    fn new(store: &'a SelectorStore, topics: &'a [String]) -> Self {
        Memo {
            store,
            topics,
            known: vec![0; store.len()],
        }
    }

    fn any(&mut self, selectors: &[SelectorId]) -> bool {
        selectors.iter().any(|&id| {
            if self.known[id] == 0 {
                let hit = self.topics.iter().any(|t| self.store.matches(id, t));
                self.known[id] = 1 + u8::from(hit);
            }
            self.known[id] == 2
        })
    }
}

/// One set of subscribers that select alike.
#[derive(Debug)]
pub struct Group {
    /// What they select.
    pub audience: Audience,
    /// The library topic its members are subscribed to.
    pub topic: String,
    members: usize,
}

/// Every group, by what it selects.
#[derive(Debug, Default)]
pub struct Groups {
    /// The selectors the groups use, each compiled once.
    pub store: SelectorStore,
    groups: Slab<Group>,
    by_audience: HashMap<Audience, usize>,
}

/// The prefix of the library topics groups use: a NUL can never come from
/// a native subscriber's topic, which reaches the library only through
/// these groups.
const GROUP_TOPIC: &str = "\0group:";

impl Groups {
    /// Adds a member to the group for `audience` (made if new); answers the
    /// group's id.
    pub fn join(&mut self, audience: Audience) -> usize {
        if let Some(&id) = self.by_audience.get(&audience) {
            self.groups[id].members += 1;
            return id;
        }
        let entry = self.groups.vacant_entry();
        let id = entry.key();
        entry.insert(Group {
            audience: audience.clone(),
            topic: format!("{GROUP_TOPIC}{id}"),
            members: 1,
        });
        self.by_audience.insert(audience, id);
        id
    }

    /// A member of group `id` left; an empty group is dropped.
    pub fn leave(&mut self, id: usize) {
        let Some(group) = self.groups.get_mut(id) else {
            return;
        };
        group.members -= 1;
        if group.members == 0 {
            let group = self.groups.remove(id);
            self.by_audience.remove(&group.audience);
        }
    }

    /// Group `id`.
    pub fn get(&self, id: usize) -> Option<&Group> {
        self.groups.get(id)
    }

    /// How many groups there are.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The groups `update` goes to, each selector worked out once.
    pub fn receiving<'a>(&'a self, update: &'a Update) -> impl Iterator<Item = &'a Group> + 'a {
        let mut memo = Memo::new(&self.store, &update.topics);
        self.groups
            .iter()
            .map(|(_, group)| group)
            .filter(move |group| receives(&group.audience, update, &mut memo))
    }

    /// Whether `audience` receives `update` (one check, for a replay).
    pub fn audience_receives(&self, audience: &Audience, update: &Update) -> bool {
        receives(
            audience,
            update,
            &mut Memo::new(&self.store, &update.topics),
        )
    }
}

fn receives(audience: &Audience, update: &Update, memo: &mut Memo<'_>) -> bool {
    match audience {
        Audience::Native { topics } => {
            !update.private
                && (update.topics.is_empty() || update.topics.iter().any(|t| topics.contains(t)))
        }
        // A native broadcast has no topic: it is not a Mercure update.
        Audience::Mercure { .. } if update.topics.is_empty() => false,
        Audience::Mercure { selectors, allowed } => {
            memo.any(selectors)
                && (!update.private || allowed.as_deref().is_some_and(|a| memo.any(a)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sseloop::Event;

    fn update(topics: &[&str], private: bool) -> Update {
        Update {
            id: "1".into(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            private,
            frame: Event::new("x").encode().unwrap(),
        }
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn private_updates_reach_only_the_authorized() {
        let mut groups = Groups::default();
        let anonymous = Audience::mercure(&mut groups.store, &strings(&["/books/{id}"]), None);
        let entitled = Audience::mercure(
            &mut groups.store,
            &strings(&["/books/{id}"]),
            Some(&strings(&["/books/1"])),
        );
        let other = Audience::mercure(
            &mut groups.store,
            &strings(&["*"]),
            Some(&strings(&["/users/{id}"])),
        );
        let native = Audience::native(["/books/1"]);
        let private = update(&["/books/1"], true);
        let public = update(&["/books/1"], false);
        let cases = [
            (&anonymous, &private, false),
            (&entitled, &private, true),
            (&other, &private, false),
            (&native, &private, false),
            (&anonymous, &public, true),
            (&other, &public, true),
            (&native, &public, true),
        ];
        for (audience, update, want) in cases {
            assert_eq!(
                groups.audience_receives(audience, update),
                want,
                "{audience:?} {update:?}"
            );
        }
    }

    #[test]
    fn an_alternate_topic_can_authorize_and_the_update_still_counts_once() {
        let mut groups = Groups::default();
        let audience = Audience::mercure(
            &mut groups.store,
            &strings(&["/a", "/b"]),
            Some(&strings(&["/b"])),
        );
        let id = groups.join(audience.clone());
        assert_eq!(groups.join(audience), id, "alike subscribers share a group");
        let u = update(&["/a", "/b"], true);
        assert_eq!(groups.receiving(&u).count(), 1);
        groups.leave(id);
        assert_eq!(groups.len(), 1);
        groups.leave(id);
        assert!(groups.is_empty());
    }

    #[test]
    fn native_broadcasts_are_not_mercure_updates() {
        let mut groups = Groups::default();
        let mercure = Audience::mercure(&mut groups.store, &strings(&["*"]), None);
        let broadcast = update(&[], false);
        assert!(!groups.audience_receives(&mercure, &broadcast));
        assert!(groups.audience_receives(&Audience::native([]), &broadcast));
        assert!(groups.audience_receives(&Audience::native(["t"]), &broadcast));
        assert!(!groups.audience_receives(&Audience::native(["t"]), &update(&["u"], false)));
    }
}
