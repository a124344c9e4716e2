//! What this replica last saw of members' heads and bindings: where a route starts instead of
//! reading them first ([`crate::storage::Storage::route_guess`]). Never a guarantee: the route's
//! commit is conditional on the head, and a head another replica moved is refused with what it
//! is now, which is then what this replica has seen. Bounded: two generations of half the
//! configured members each; a member not seen for a generation is forgotten.

use crate::domain::trail::TrailEvent;
use crate::storage::{Append, RouteState};
use parking_lot::Mutex;
use std::collections::HashMap;

#[derive(Debug, Clone)]
struct Member {
    head: (u64, String),
    binding: Option<TrailEvent>,
}

#[derive(Debug, Default)]
pub(super) struct Seen {
    /// `(current, previous)`: a member found in the previous generation moves to the current.
    generations: Mutex<(HashMap<String, Member>, HashMap<String, Member>)>,
    /// Members per generation (0: none are kept).
    generation: usize,
}

impl Seen {
    /// Keeps at most `members`.
    pub(super) fn new(members: usize) -> Self {
        Self {
            generations: Default::default(),
            generation: members / 2,
        }
    }

    /// What a route of `member_id` may assume: the head and binding last seen, or none.
    pub(super) fn guess(&self, member_id: &str) -> RouteState {
        let mut g = self.generations.lock();
        let found = match g.0.get(member_id) {
            Some(m) => Some(m.clone()),
            None => g.1.remove(member_id).inspect(|m| {
                Self::keep(self.generation, &mut g, member_id, m.clone());
            }),
        };
        found.map_or_else(RouteState::default, |m| RouteState {
            decision: None,
            head: Some(m.head),
            binding: m.binding,
        })
    }

    /// A member's head and latest binding as read.
    pub(super) fn saw(
        &self,
        member_id: &str,
        head: Option<&(u64, String)>,
        binding: Option<&TrailEvent>,
    ) {
        let mut g = self.generations.lock();
        match head {
            Some(head) => Self::keep(
                self.generation,
                &mut g,
                member_id,
                Member {
                    head: head.clone(),
                    binding: binding.cloned(),
                },
            ),
            None => {
                g.0.remove(member_id);
                g.1.remove(member_id);
            }
        }
    }

    /// `events` were appended: the head moves to the last, and the binding to the last among
    /// them if any. A member whose binding before them was not seen is forgotten.
    pub(super) fn appended(&self, events: &[Append<'_>]) {
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return;
        };
        let member_id = first.event.member_id.as_str();
        let mut g = self.generations.lock();
        let before = match g.0.remove(member_id) {
            Some(m) => Some(m),
            None => g.1.remove(member_id),
        };
        let binding = events
            .iter()
            .rev()
            .find(|a| a.event.binding().is_some())
            .map(|a| a.event.clone());
        let binding = match (binding, before) {
            (Some(b), _) => Some(b),
            (None, Some(m)) if m.head.0 + 1 == first.event.seq => m.binding,
            (None, None) if first.event.seq == 1 => None,
            // The binding before these events is unknown here.
            (None, _) => return,
        };
        Self::keep(
            self.generation,
            &mut g,
            member_id,
            Member {
                head: (last.event.seq, last.event.hash.clone()),
                binding,
            },
        );
    }

    fn keep(
        generation: usize,
        g: &mut (HashMap<String, Member>, HashMap<String, Member>),
        member_id: &str,
        m: Member,
    ) {
        if generation == 0 {
            return;
        }
        if g.0.len() >= generation && !g.0.contains_key(member_id) {
            g.1 = std::mem::take(&mut g.0);
        }
        g.0.insert(member_id.to_string(), m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::trail::EventBody;
    use crate::storage::Chain;

    fn touch(n: u32) -> EventBody {
        EventBody::Touch(crate::domain::trail::Touch {
            touch_id: format!("t{n}"),
            kind: crate::domain::trail::TouchKind::StoreVisit,
            channel: crate::domain::Channel::MiniProgram,
            guide_id: None,
            store_id: Some("S1".into()),
            lead_id: None,
            recorded_by: None,
        })
    }

    #[test]
    fn follows_appends_and_forgets_what_it_cannot_know() {
        let seen = Seen::new(10);
        assert_eq!(seen.guess("m"), RouteState::default());
        let mut c = Chain::new("m", None);
        c.push(1, 1, touch(1), None);
        seen.appended(c.appends());
        let g = seen.guess("m");
        assert_eq!(g.head.as_ref().map(|h| h.0), Some(1));
        assert!(g.binding.is_none());
        // Events after a head this replica did not see: the binding before them is unknown.
        let mut c = Chain::new("m", Some((5, "x".into())));
        c.push(2, 2, touch(2), None);
        seen.appended(c.appends());
        assert_eq!(seen.guess("m"), RouteState::default());
    }

    #[test]
    fn bounded_by_two_generations() {
        let seen = Seen::new(1000);
        for i in 0..1010 {
            seen.saw(&format!("m{i}"), Some(&(1, "h".into())), None);
        }
        let g = seen.generations.lock();
        assert!(g.0.len() + g.1.len() <= 1000);
        drop(g);
        assert!(seen.guess("m0").head.is_none(), "the oldest are forgotten");
        assert!(seen.guess("m1009").head.is_some());
        let none = Seen::new(0);
        none.saw("m", Some(&(1, "h".into())), None);
        assert!(none.guess("m").head.is_none(), "0 keeps nothing");
    }
}
