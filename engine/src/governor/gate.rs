//! The gate every lease passes before the pool: at most `limit` leases held at once, and
//! while the gate is full, waiting acquires are let through by priority (then in order of
//! arrival), so under a tight budget the most important tasks still run.

use std::{cmp::Ordering, collections::BinaryHeap, sync::Arc, time::Duration};

use parking_lot::Mutex;
use tokio::{sync::oneshot, time::Instant};

use super::{Priority, aimd::Window};

/// Leases held at once, bounded by a limit that can change at any time.
#[derive(Debug)]
pub(crate) struct Gate {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    limit: u32,
    held: u32,
    queue: BinaryHeap<Waiter>,
    arrivals: u64,
    /// What the current window has seen.
    window: Window,
}

#[derive(Debug)]
struct Waiter {
    priority: Priority,
    arrival: u64,
    wake: oneshot::Sender<()>,
}

impl Ord for Waiter {
    fn cmp(&self, other: &Self) -> Ordering {
        // The heap pops the greatest: the highest priority, then the earliest arrival.
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.arrival.cmp(&self.arrival))
    }
}

impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Waiter {}

/// One lease's place through the gate; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Permit {
    gate: Arc<Gate>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.gate.release();
    }
}

impl Gate {
    pub(crate) fn new(limit: u32) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                limit: limit.max(1),
                held: 0,
                queue: BinaryHeap::new(),
                arrivals: 0,
                window: Window::default(),
            }),
        })
    }

    /// Waits for a place until `deadline`; `None` if none came.
    pub(crate) async fn enter(
        self: &Arc<Self>,
        priority: Priority,
        deadline: Instant,
    ) -> Option<Permit> {
        let wake = {
            let mut state = self.state.lock();
            if state.held < state.limit && state.queue.is_empty() {
                state.held += 1;
                return Some(Permit {
                    gate: Arc::clone(self),
                });
            }
            let (wake, woken) = oneshot::channel();
            state.arrivals += 1;
            let arrival = state.arrivals;
            state.window.queued += 1;
            state.queue.push(Waiter {
                priority,
                arrival,
                wake,
            });
            woken
        };
        let mut waiting = Waiting {
            woken: Some(wake),
            gate: self,
        };
        let woken = waiting.woken.as_mut()?;
        let admitted = tokio::time::timeout_at(deadline, woken)
            .await
            .is_ok_and(|sent| sent.is_ok());
        if !admitted {
            // A place given just after the deadline goes back when `waiting` drops.
            return None;
        }
        waiting.woken = None;
        Some(Permit {
            gate: Arc::clone(self),
        })
    }

    /// The current limit.
    pub(crate) fn limit(&self) -> u32 {
        self.state.lock().limit
    }

    /// Leases through the gate now.
    pub(crate) fn held(&self) -> u32 {
        self.state.lock().held
    }

    /// Acquires waiting at the gate now.
    pub(crate) fn queued(&self) -> u32 {
        u32::try_from(self.state.lock().queue.len()).unwrap_or(u32::MAX)
    }

    /// Sets the limit (at least 1) and lets waiters through if there is room. Leases held
    /// above a lowered limit are not taken back: they finish, and no new one enters meanwhile.
    pub(crate) fn set_limit(&self, limit: u32) {
        let mut state = self.state.lock();
        state.limit = limit.max(1);
        admit_waiters(&mut state);
    }

    /// Counts a pool timeout or a refusal in the current window.
    pub(crate) fn trouble(&self) {
        self.state.lock().window.troubles += 1;
    }

    /// Counts how long an acquire waited on the pool after the gate.
    pub(crate) fn pool_waited(&self, waited: Duration) {
        let mut state = self.state.lock();
        let slowest = &mut state.window.slowest_pool_wait;
        *slowest = Some(slowest.map_or(waited, |s| s.max(waited)));
    }

    /// What the current window has seen so far.
    #[cfg(test)]
    pub(crate) fn window(&self) -> Window {
        self.state.lock().window
    }

    /// Ends the current window: what it saw, and a fresh one.
    pub(crate) fn take_window(&self) -> Window {
        std::mem::take(&mut self.state.lock().window)
    }

    fn release(&self) {
        let mut state = self.state.lock();
        state.held -= 1;
        admit_waiters(&mut state);
    }
}

/// Lets waiters through while there is room; a waiter that gave up meanwhile is skipped.
fn admit_waiters(state: &mut State) {
    while state.held < state.limit {
        let Some(waiter) = state.queue.pop() else {
            return;
        };
        if waiter.wake.send(()).is_ok() {
            state.held += 1;
        }
    }
}

/// A waiter in the queue; if its acquire is dropped or times out after being let through,
/// the place it was given goes back.
struct Waiting<'a> {
    woken: Option<oneshot::Receiver<()>>,
    gate: &'a Arc<Gate>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(mut woken) = self.woken.take() {
            woken.close();
            if woken.try_recv().is_ok() {
                self.gate.release();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;

    const SOON: Duration = Duration::from_millis(100);

    fn deadline(after: Duration) -> Instant {
        Instant::now() + after
    }

    #[tokio::test(start_paused = true)]
    async fn at_a_full_limit_waiters_go_by_priority_then_arrival() {
        let gate = Gate::new(1);
        let held = gate.enter(Priority(0), deadline(SOON)).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for (name, priority) in [("low", 0), ("high", 2), ("mid", 1), ("high too", 2)] {
            let (gate, order) = (Arc::clone(&gate), Arc::clone(&order));
            waiters.push(tokio::spawn(async move {
                let permit = gate
                    .enter(Priority(priority), deadline(Duration::from_secs(60)))
                    .await
                    .unwrap();
                order.lock().push(name);
                tokio::time::sleep(SOON).await;
                drop(permit);
            }));
            // Arrive one after the other.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(gate.queued(), 4);
        drop(held);
        for waiter in waiters {
            waiter.await.unwrap();
        }
        assert_eq!(*order.lock(), ["high", "high too", "mid", "low"]);
        assert_eq!(gate.held(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_gives_up_at_its_deadline_and_its_place_is_not_lost() {
        let gate = Gate::new(1);
        let held = gate.enter(Priority(0), deadline(SOON)).await.unwrap();
        let started = Instant::now();
        assert!(gate.enter(Priority(9), deadline(SOON)).await.is_none());
        assert_eq!(started.elapsed(), SOON);
        assert_eq!(gate.queued(), 1, "left in the queue, skipped when reached");
        drop(held);
        assert_eq!(gate.held(), 0, "the place went to no one");
        let again = gate.enter(Priority(0), deadline(SOON)).await;
        assert!(again.is_some());
        assert_eq!(gate.window().queued, 1, "the one that queued is counted");
    }

    #[tokio::test(start_paused = true)]
    async fn raising_the_limit_lets_waiters_through_and_lowering_it_takes_nothing_back() {
        let gate = Gate::new(1);
        let first = gate.enter(Priority(0), deadline(SOON)).await.unwrap();
        let waiting = {
            let gate = Arc::clone(&gate);
            tokio::spawn(async move {
                gate.enter(Priority(0), deadline(Duration::from_secs(5)))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        gate.set_limit(2);
        let second = waiting
            .await
            .unwrap()
            .expect("let through by the new limit");
        assert_eq!(gate.held(), 2);
        gate.set_limit(1);
        assert_eq!(gate.held(), 2, "held leases finish");
        drop(first);
        assert!(
            gate.enter(Priority(9), deadline(SOON)).await.is_none(),
            "no new one while at or over the lowered limit"
        );
        drop(second);
        assert!(gate.enter(Priority(0), deadline(SOON)).await.is_some());
    }
}
