//! [`ThreadGroup`]: the members of a group inside one process, one per thread (and, in
//! the trainer, one per device), meeting at a shared rendezvous.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::Collective;
use crate::{Error, Result};

/// One member of an in-process group made by [`ThreadGroup::new`]. Move each member to
/// its own thread; every member must call the same collectives in the same order.
///
/// When a member is dropped (its thread returned or panicked), every other member's
/// pending and later collectives return [`Error::Collective`] at once.
#[derive(Debug)]
pub struct ThreadGroup {
    rank: usize,
    size: usize,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Completed rendezvous so far.
    generation: u64,
    /// Contributions to the rendezvous in progress, by rank.
    pending: Vec<Option<Vec<u8>>>,
    arrived: usize,
    /// The result of the last completed rendezvous.
    last: Arc<Vec<Vec<u8>>>,
    /// Why the group can no longer meet.
    broken: Option<String>,
}

/// How often a waiting member wakes to re-check (a dropped member also wakes it at once).
const POLL: Duration = Duration::from_millis(200);

impl ThreadGroup {
    /// `n` members, ranks 0 to n - 1 (n >= 1).
    pub fn new(n: usize) -> Vec<ThreadGroup> {
        let n = n.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State { pending: vec![None; n], ..Default::default() }),
            changed: Condvar::new(),
        });
        (0..n).map(|rank| ThreadGroup { rank, size: n, shared: shared.clone() }).collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A member that panicked while holding the lock leaves consistent state behind
        // (every update is a single assignment); its drop marks the group broken.
        self.shared.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Collective for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn all_gather(&self, data: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut state = self.lock();
        if let Some(why) = &state.broken {
            return Err(Error::Collective(why.clone()));
        }
        state.pending[self.rank] = Some(data.to_vec());
        state.arrived += 1;
        let generation = state.generation;
        if state.arrived == self.size {
            let all: Vec<Vec<u8>> = state.pending.iter_mut().map(|p| p.take().unwrap_or_default()).collect();
            state.last = Arc::new(all);
            state.arrived = 0;
            state.generation += 1;
            self.shared.changed.notify_all();
        }
        while state.generation == generation {
            if let Some(why) = &state.broken {
                return Err(Error::Collective(why.clone()));
            }
            state = self.shared.changed.wait_timeout(state, POLL).unwrap_or_else(|p| p.into_inner()).0;
        }
        // The next rendezvous cannot complete without this member, so `last` is ours.
        Ok(state.last.as_ref().clone())
    }
}

impl Drop for ThreadGroup {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        let mut state = self.lock();
        if state.broken.is_none() {
            let how = if panicking { "panicked" } else { "left the group" };
            state.broken = Some(format!("member {} of {} {how}; the group can no longer meet", self.rank, self.size));
        }
        self.shared.changed.notify_all();
    }
}
