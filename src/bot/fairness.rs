//! Per-group fairness in the answer queue: one group cannot hold more than a
//! bounded share of it, so a flood aimed at (or forged for) one group is
//! refused while the rest of the tenant keeps getting answers.

use crate::domain::{Incoming, OpenConversationId, UserId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Whose share a message counts against: its group, or for a 1:1 chat its
/// sender (all senders without an id share one lane).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Lane {
    /// A group chat.
    Group(OpenConversationId),
    /// A 1:1 chat.
    Direct(Option<UserId>),
}

impl Lane {
    /// The lane of a message.
    pub(crate) fn of(msg: &Incoming) -> Self {
        match &msg.group {
            Some(g) => Self::Group(g.clone()),
            None => Self::Direct(msg.sender.clone()),
        }
    }
}

/// The share of a queue of `queue` places one lane may hold:
/// `max(8, queue / 8)`, never more than the queue.
pub(crate) fn share_of(queue: usize) -> usize {
    (queue / 8).max(8).min(queue.max(1))
}

/// Counts, per lane, the messages waiting in the answer queue (a worker
/// taking one gives its place back). The map holds only lanes with a
/// message in it, so it is bounded by the queue.
#[derive(Debug)]
pub(crate) struct FairShare {
    cap: usize,
    held: Mutex<HashMap<Lane, usize>>,
}

/// One place held in a lane; given back when dropped.
#[derive(Debug)]
pub(crate) struct Place {
    share: Arc<FairShare>,
    lane: Lane,
}

impl FairShare {
    /// At most `cap` places per lane.
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap: cap.max(1),
            held: Mutex::new(HashMap::new()),
        })
    }

    /// A place in `lane`, or `None` when the lane holds its share already.
    pub(crate) fn enter(self: &Arc<Self>, lane: Lane) -> Option<Place> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(lane.clone()).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(Place {
            share: self.clone(),
            lane,
        })
    }

    /// Places held in `lane` now.
    #[cfg(test)]
    pub(crate) fn held(&self, lane: &Lane) -> usize {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.get(lane).copied().unwrap_or(0)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut held = self.share.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.lane) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.lane);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane(g: &str) -> Lane {
        Lane::Group(OpenConversationId::parse(g).unwrap())
    }

    #[test]
    fn the_share_is_an_eighth_of_the_queue_but_at_least_eight() {
        assert_eq!(share_of(10_000), 1_250);
        assert_eq!(share_of(64), 8);
        assert_eq!(share_of(100), 12);
        assert_eq!(share_of(5), 5, "never more than the queue");
        assert_eq!(share_of(0), 1);
    }

    #[test]
    fn a_full_lane_refuses_while_others_enter_and_places_come_back() {
        let share = FairShare::new(2);
        let a1 = share.enter(lane("cidA")).unwrap();
        let _a2 = share.enter(lane("cidA")).unwrap();
        assert!(share.enter(lane("cidA")).is_none());
        let _b = share.enter(lane("cidB")).unwrap();
        let _direct = share.enter(Lane::Direct(None)).unwrap();
        drop(a1);
        assert_eq!(share.held(&lane("cidA")), 1);
        let _a3 = share.enter(lane("cidA")).unwrap();
        assert!(share.enter(lane("cidA")).is_none());
    }

    #[test]
    fn empty_lanes_are_forgotten() {
        let share = FairShare::new(3);
        for i in 0..100 {
            drop(share.enter(lane(&format!("cid{i}"))).unwrap());
        }
        assert!(share.held.lock().unwrap().is_empty());
    }
}
