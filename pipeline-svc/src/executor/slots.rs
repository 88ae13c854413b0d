//! The executor's task slots, shared fairly between users: when tasks wait, a freed slot goes to the next user in
//! turn, not to whoever queued first, so one user's thousand queued tasks delay another user's task by at most one
//! task per slot.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, PoisonError},
};

use tokio::sync::oneshot;

/// `slots` task slots, handed out round-robin between the users waiting for one.
#[derive(Debug)]
pub struct FairSlots {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    free: usize,
    /// Each waiting user's waiters, oldest first.
    waiting: HashMap<String, VecDeque<oneshot::Sender<Slot>>>,
    /// Users with waiters, in the order they are served.
    turns: VecDeque<String>,
}

/// A held slot; dropping it frees the slot for the next waiter in turn.
#[derive(Debug)]
pub struct Slot {
    slots: Option<Arc<FairSlots>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(slots) = self.slots.take() {
            slots.release();
        }
    }
}

impl FairSlots {
    /// `slots` slots, all free.
    pub fn new(slots: usize) -> Arc<Self> {
        Arc::new(Self { state: Mutex::new(State { free: slots, ..State::default() }) })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for one of `user`'s tasks, once it is their turn. Cancel-safe: a waiter dropped before or after
    /// being handed a slot gives it on.
    pub async fn acquire(self: &Arc<Self>, user: &str) -> Slot {
        loop {
            let receiver = {
                let mut state = self.state();
                if state.free > 0 && state.turns.is_empty() {
                    state.free -= 1;
                    return Slot { slots: Some(self.clone()) };
                }
                let (sender, receiver) = oneshot::channel();
                let queue = state.waiting.entry(user.to_owned()).or_default();
                queue.push_back(sender);
                if queue.len() == 1 {
                    state.turns.push_back(user.to_owned());
                }
                receiver
            };
            // A sender is only ever dropped after a send, so this waits for a slot.
            if let Ok(slot) = receiver.await {
                return slot;
            }
        }
    }

    /// Hands a freed slot to the next live waiter in turn, or marks it free.
    fn release(self: &Arc<Self>) {
        loop {
            let sender = {
                let mut state = self.state();
                let Some(user) = state.turns.pop_front() else {
                    state.free += 1;
                    return;
                };
                let Some(queue) = state.waiting.get_mut(&user) else { continue };
                let sender = queue.pop_front();
                if queue.is_empty() {
                    state.waiting.remove(&user);
                } else {
                    state.turns.push_back(user);
                }
                let Some(sender) = sender else { continue };
                sender
            };
            match sender.send(Slot { slots: Some(self.clone()) }) {
                Ok(()) => return,
                // That waiter gave up: the slot goes on to the next, without freeing it through Drop.
                Err(mut slot) => slot.slots = None,
            }
        }
    }

    /// Slots free now.
    #[cfg(test)]
    fn free(&self) -> usize {
        self.state().free
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Lets spawned waiters run up to their first wait.
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    #[tokio::test]
    async fn a_second_user_is_served_before_the_first_users_backlog() {
        let slots = FairSlots::new(1);
        let held = slots.acquire("alice").await;
        let (order, mut waiters) = (Arc::new(Mutex::new(Vec::new())), Vec::new());
        for (i, user) in ["alice", "alice", "alice", "bob", "alice", "bob"].into_iter().enumerate() {
            let (slots, order) = (slots.clone(), order.clone());
            waiters.push(tokio::spawn(async move {
                let slot = slots.acquire(user).await;
                order.lock().expect("order").push(format!("{user}{i}"));
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(slot);
            }));
            settle().await;
        }
        drop(held);
        for waiter in waiters {
            waiter.await.expect("waiter");
        }
        assert_eq!(*order.lock().expect("order"), ["alice0", "bob3", "alice1", "bob5", "alice2", "alice4"]);
        assert_eq!(slots.free(), 1, "every slot came back");
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_passes_its_turn_on() {
        let slots = FairSlots::new(1);
        let held = slots.acquire("alice").await;
        let gives_up = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.acquire("bob").await })
        };
        settle().await;
        let waits = {
            let slots = slots.clone();
            tokio::spawn(async move { drop(slots.acquire("carol").await) })
        };
        settle().await;
        gives_up.abort();
        let _ = gives_up.await;
        drop(held);
        tokio::time::timeout(Duration::from_secs(5), waits).await.expect("carol is served").expect("task");
        assert_eq!(slots.free(), 1);
    }

    #[tokio::test]
    async fn free_slots_are_taken_at_once_up_to_their_number() {
        let slots = FairSlots::new(2);
        let (a, b) = (slots.acquire("alice").await, slots.acquire("alice").await);
        assert_eq!(slots.free(), 0);
        let third = tokio::time::timeout(Duration::from_millis(50), slots.acquire("bob")).await;
        assert!(third.is_err(), "no third slot");
        drop((a, b));
        assert_eq!(slots.free(), 2, "a waiter that gave up holds nothing");
    }
}
