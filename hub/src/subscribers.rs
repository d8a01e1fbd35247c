//! Who receives an update: subscribers grouped by what they select.
//!
//! Subscribers with the same selectors (and, for Mercure, the same private
//! selectors from their token) form one [`Group`], which is one topic of the
//! library's: a publish finds the groups it goes to, and the library queues
//! the one encoded frame on every member. A subscriber is in exactly one
//! group, so an update whose several topics it selects still reaches it once.
//!
//! A publish costs what it delivers: the [`SelectorStore`] answers which
//! live selectors match the update's topics (by lookup and by template
//! prefix, never by a walk over all of them), and each group is reached
//! through the selectors it subscribes with. Groups hold references to
//! their selectors; the last group to leave frees them.

use std::collections::{HashMap, HashSet};

use slab::Slab;

use crate::topics::{Matching, Reading, SelectorError, SelectorId, SelectorStore};
use crate::update::Update;

/// What a subscriber selects. Its selector ids are references held in the
/// store: an audience is either [joined](Groups::join) or
/// [discarded](Groups::discard), never just dropped.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Audience {
    /// A native `/events` subscriber: public updates on one of its exact
    /// topics, and native broadcasts.
    Native {
        /// Its topics (literal selectors), sorted, without repeats.
        topics: Vec<SelectorId>,
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

fn release_all(store: &mut SelectorStore, ids: &[SelectorId]) {
    for &id in ids {
        store.release(id);
    }
}

impl Audience {
    /// A native audience for `topics` (empty: broadcasts only).
    ///
    /// # Errors
    /// When a topic passes the store's limits.
    pub fn native<'a>(
        store: &mut SelectorStore,
        topics: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, SelectorError> {
        Ok(Audience::Native {
            topics: store.intern_all(topics, Reading::Literal)?,
        })
    }

    /// A Mercure audience: `selectors` and the token's `allowed` private
    /// selectors, interned in `store`.
    ///
    /// # Errors
    /// When a selector passes the store's limits (nothing is kept).
    pub fn mercure(
        store: &mut SelectorStore,
        selectors: &[String],
        allowed: Option<&[String]>,
    ) -> Result<Self, SelectorError> {
        let selectors =
            store.intern_all(selectors.iter().map(String::as_str), Reading::Selector)?;
        let allowed = match allowed {
            None => None,
            Some(list) => {
                match store.intern_all(list.iter().map(String::as_str), Reading::Selector) {
                    Ok(ids) => Some(ids),
                    Err(e) => {
                        release_all(store, &selectors);
                        return Err(e);
                    }
                }
            }
        };
        Ok(Audience::Mercure { selectors, allowed })
    }

    /// The selectors it subscribes with (those an update's topic must match).
    fn subscribed(&self) -> &[SelectorId] {
        match self {
            Audience::Native { topics } => topics,
            Audience::Mercure { selectors, .. } => selectors,
        }
    }

    /// Every reference it holds.
    pub fn held(&self) -> impl Iterator<Item = SelectorId> + '_ {
        let allowed = match self {
            Audience::Mercure {
                allowed: Some(a), ..
            } => a.as_slice(),
            _ => &[],
        };
        self.subscribed().iter().chain(allowed).copied()
    }

    /// The topics or selectors it was asked for, as text (for `/clients`).
    pub fn describe<'a>(&'a self, store: &'a SelectorStore) -> Vec<&'a str> {
        self.subscribed().iter().map(|&id| store.text(id)).collect()
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
    /// The groups that subscribe with each selector.
    by_selector: HashMap<SelectorId, HashSet<usize>>,
    /// The native groups: a native broadcast goes to each.
    natives: HashSet<usize>,
}

/// The prefix of the library topics groups use: a NUL can never come from
/// a native subscriber's topic, which reaches the library only through
/// these groups.
const GROUP_TOPIC: &str = "\0group:";

impl Groups {
    /// No groups yet; selectors keep to `store`'s limits.
    pub fn new(store: SelectorStore) -> Self {
        Groups {
            store,
            ..Groups::default()
        }
    }

    /// Adds a member to the group for `audience` (made if new); answers the
    /// group's id. The group takes over the audience's references.
    pub fn join(&mut self, audience: Audience) -> usize {
        if let Some(&id) = self.by_audience.get(&audience) {
            self.groups[id].members += 1;
            // The group already holds these selectors.
            self.discard(audience);
            return id;
        }
        let entry = self.groups.vacant_entry();
        let id = entry.key();
        for &selector in audience.subscribed() {
            self.by_selector.entry(selector).or_default().insert(id);
        }
        if matches!(audience, Audience::Native { .. }) {
            self.natives.insert(id);
        }
        entry.insert(Group {
            audience: audience.clone(),
            topic: format!("{GROUP_TOPIC}{id}"),
            members: 1,
        });
        self.by_audience.insert(audience, id);
        id
    }

    /// Gives back the references of an audience that joins no group (its
    /// stream was never opened).
    pub fn discard(&mut self, audience: Audience) {
        for id in audience.held() {
            self.store.release(id);
        }
    }

    /// A member of group `id` left; an empty group is dropped, with its
    /// references.
    pub fn leave(&mut self, id: usize) {
        let Some(group) = self.groups.get_mut(id) else {
            return;
        };
        group.members -= 1;
        if group.members > 0 {
            return;
        }
        let group = self.groups.remove(id);
        self.by_audience.remove(&group.audience);
        self.natives.remove(&id);
        for selector in group.audience.subscribed() {
            if let Some(set) = self.by_selector.get_mut(selector) {
                set.remove(&id);
                if set.is_empty() {
                    self.by_selector.remove(selector);
                }
            }
        }
        self.discard(group.audience);
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

    /// The groups `update` goes to, worked out at once (see
    /// [`finish`](Self::finish)).
    pub fn receiving(&mut self, update: &Update) -> Vec<&Group> {
        let matching = self.store.begin(&update.topics);
        self.finish(matching, update)
    }

    /// Begins matching `update`'s topics; [`advance`](Self::advance) it a
    /// slice at a time, then [`finish`](Self::finish) it.
    pub fn begin(&mut self, update: &Update) -> Matching {
        self.store.begin(&update.topics)
    }

    /// Goes on matching `update` until `budget` is spent; answers whether
    /// it is done.
    pub fn advance(&self, matching: &mut Matching, update: &Update, budget: &mut usize) -> bool {
        self.store.advance(matching, &update.topics, budget)
    }

    /// The groups `update` goes to now: those reached through a selector
    /// that matches one of its topics (or, for a native broadcast, the
    /// native groups), each checked once.
    pub fn finish(&mut self, matching: Matching, update: &Update) -> Vec<&Group> {
        let matched = self.store.finish(matching, &update.topics);
        let mut candidates: Vec<usize> = if update.topics.is_empty() {
            self.natives.iter().copied().collect()
        } else {
            matched
                .iter()
                .filter_map(|s| self.by_selector.get(s))
                .flatten()
                .copied()
                .collect()
        };
        candidates.sort_unstable();
        candidates.dedup();
        let hit = |id: &SelectorId| matched.binary_search(id).is_ok();
        candidates
            .into_iter()
            .map(|id| &self.groups[id])
            .filter(|group| receives(&group.audience, update, hit))
            .collect()
    }

    /// Whether `audience` receives `update` (one check, for a replay).
    pub fn audience_receives(&self, audience: &Audience, update: &Update) -> bool {
        receives(audience, update, |&id| {
            update.topics.iter().any(|t| self.store.matches(id, t))
        })
    }
}

/// Whether `audience` receives `update`, given which selectors match one of
/// its topics.
fn receives(audience: &Audience, update: &Update, hit: impl Fn(&SelectorId) -> bool) -> bool {
    match audience {
        Audience::Native { topics } => {
            !update.private && (update.topics.is_empty() || topics.iter().any(&hit))
        }
        // A native broadcast has no topic: it is not a Mercure update.
        Audience::Mercure { .. } if update.topics.is_empty() => false,
        Audience::Mercure { selectors, allowed } => {
            selectors.iter().any(&hit)
                && (!update.private || allowed.as_deref().is_some_and(|a| a.iter().any(&hit)))
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
        let anonymous =
            Audience::mercure(&mut groups.store, &strings(&["/books/{id}"]), None).unwrap();
        let entitled = Audience::mercure(
            &mut groups.store,
            &strings(&["/books/{id}"]),
            Some(&strings(&["/books/1"])),
        )
        .unwrap();
        let other = Audience::mercure(
            &mut groups.store,
            &strings(&["*"]),
            Some(&strings(&["/users/{id}"])),
        )
        .unwrap();
        let native = Audience::native(&mut groups.store, ["/books/1"]).unwrap();
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
        )
        .unwrap();
        let twin = Audience::mercure(
            &mut groups.store,
            &strings(&["/b", "/a", "/a"]),
            Some(&strings(&["/b"])),
        )
        .unwrap();
        let id = groups.join(audience);
        assert_eq!(groups.join(twin), id, "alike subscribers share a group");
        let u = update(&["/a", "/b"], true);
        assert_eq!(groups.receiving(&u).len(), 1);
        groups.leave(id);
        assert_eq!(groups.len(), 1);
        groups.leave(id);
        assert!(groups.is_empty());
        assert!(
            groups.store.is_empty(),
            "the last member frees the selectors"
        );
        assert!(groups.by_selector.is_empty());
    }

    #[test]
    fn native_broadcasts_are_not_mercure_updates() {
        let mut groups = Groups::default();
        let mercure = Audience::mercure(&mut groups.store, &strings(&["*"]), None).unwrap();
        let broadcast = update(&[], false);
        assert!(!groups.audience_receives(&mercure, &broadcast));
        let none = Audience::native(&mut groups.store, []).unwrap();
        let t = Audience::native(&mut groups.store, ["t"]).unwrap();
        assert!(groups.audience_receives(&none, &broadcast));
        assert!(groups.audience_receives(&t, &broadcast));
        assert!(!groups.audience_receives(&t, &update(&["u"], false)));
        let (m, n, t) = (groups.join(mercure), groups.join(none), groups.join(t));
        let mut reached = |u: &Update| {
            let mut ids: Vec<String> = groups
                .receiving(u)
                .iter()
                .map(|g| g.topic.clone())
                .collect();
            ids.sort_unstable();
            ids
        };
        let topic = |id: usize| format!("{GROUP_TOPIC}{id}");
        let mut natives = vec![topic(n), topic(t)];
        natives.sort_unstable();
        assert_eq!(reached(&broadcast), natives);
        let mut to_t = vec![topic(m), topic(t)];
        to_t.sort_unstable();
        assert_eq!(reached(&update(&["t"], false)), to_t);
        assert_eq!(reached(&update(&["t"], true)), Vec::<String>::new());
    }
}
