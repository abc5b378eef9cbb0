//! Collectives for data-parallel training: the [`Collective`] trait that
//! [`GpuCenterLoss::step_collective`](crate::GpuCenterLoss::step_collective) and the
//! trainer's data-parallel step use, [`ThreadGroup`] (members in one process, one per
//! thread and device), `Mpi` (feature `mpi`: the ranks of an MPI job) and [`Metered`]
//! (counts the bytes a member exchanges).
//!
//! Every operation is a rendezvous: each member of the group calls it, in the same order.
//! Results are identical on every member, bit for bit (sums are taken in rank order, or on
//! one root and broadcast), so replicated state stays replicated.

#[cfg(feature = "mpi")]
mod mpi;
mod thread_group;
pub(crate) mod wire;

use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(feature = "mpi")]
pub use self::mpi::Mpi;
pub use thread_group::ThreadGroup;

use crate::{Error, Result};

/// A group of members that exchange data in lock step (an in-process [`ThreadGroup`], an
/// MPI communicator). Object-safe, so code takes `&dyn Collective`.
pub trait Collective: Send {
    /// This member's rank, 0 to `size() - 1`.
    fn rank(&self) -> usize;

    /// How many members the group has.
    fn size(&self) -> usize;

    /// Every member's `data`, in rank order (lengths may differ between members).
    fn all_gather(&self, data: &[u8]) -> Result<Vec<Vec<u8>>>;

    /// Replaces `data` on every member with `root`'s.
    fn broadcast(&self, root: usize, data: &mut Vec<u8>) -> Result<()> {
        let send: &[u8] = if self.rank() == root { data } else { &[] };
        let mut all = self.all_gather(send)?;
        if root >= all.len() {
            return Err(Error::Collective(format!("broadcast root {root} is not below the group size {}", all.len())));
        }
        *data = std::mem::take(&mut all[root]);
        Ok(())
    }

    /// Sums `values` element-wise over the members (every member passes the same length);
    /// the result, identical on every member, replaces `values`.
    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<()> {
        let all = self.all_gather(bytemuck::cast_slice(values))?;
        sum_in_rank_order(&all, values)
    }
}

/// Sums the f32 vectors in `parts` (one per rank, as bytes) in rank order into `out`.
pub(crate) fn sum_in_rank_order(parts: &[Vec<u8>], out: &mut [f32]) -> Result<()> {
    if let Some((rank, part)) = parts.iter().enumerate().find(|(_, p)| p.len() != 4 * out.len()) {
        return Err(Error::Collective(format!(
            "all_reduce_sum: rank {rank} sent {} values, this member {}",
            part.len() / 4,
            out.len()
        )));
    }
    out.fill(0.0);
    for part in parts {
        for (o, chunk) in out.iter_mut().zip(part.chunks_exact(4)) {
            *o += f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
    }
    Ok(())
}

/// Wraps a [`Collective`] and counts the payload bytes this member sends and receives (its
/// own contribution once; what it gets from the others), for benchmarks and logs.
#[derive(Debug)]
pub struct Metered<C> {
    inner: C,
    sent: AtomicU64,
    received: AtomicU64,
}

impl<C: Collective> Metered<C> {
    /// Starts counting from zero.
    pub fn new(inner: C) -> Self {
        Self { inner, sent: AtomicU64::new(0), received: AtomicU64::new(0) }
    }

    /// (bytes sent, bytes received) so far.
    pub fn bytes(&self) -> (u64, u64) {
        (self.sent.load(Ordering::Relaxed), self.received.load(Ordering::Relaxed))
    }

    /// Zeroes the counters.
    pub fn reset(&self) {
        self.sent.store(0, Ordering::Relaxed);
        self.received.store(0, Ordering::Relaxed);
    }

    /// The wrapped collective.
    pub fn into_inner(self) -> C {
        self.inner
    }

    fn count(&self, sent: usize, received: usize) {
        self.sent.fetch_add(sent as u64, Ordering::Relaxed);
        self.received.fetch_add(received as u64, Ordering::Relaxed);
    }
}

impl<C: Collective> Collective for Metered<C> {
    fn rank(&self) -> usize {
        self.inner.rank()
    }

    fn size(&self) -> usize {
        self.inner.size()
    }

    fn all_gather(&self, data: &[u8]) -> Result<Vec<Vec<u8>>> {
        let all = self.inner.all_gather(data)?;
        let others: usize = all.iter().map(Vec::len).sum::<usize>() - data.len();
        self.count(data.len(), others);
        Ok(all)
    }

    fn broadcast(&self, root: usize, data: &mut Vec<u8>) -> Result<()> {
        let is_root = self.rank() == root;
        let before = data.len();
        self.inner.broadcast(root, data)?;
        if is_root {
            self.count(before, 0);
        } else {
            self.count(0, data.len());
        }
        Ok(())
    }

    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<()> {
        self.inner.all_reduce_sum(values)?;
        let bytes = 4 * values.len();
        self.count(bytes, bytes);
        Ok(())
    }
}

/// A group of one: every collective returns this member's own data (single-device runs
/// through the same code path).
#[derive(Clone, Copy, Debug, Default)]
pub struct Solo;

impl Collective for Solo {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn all_gather(&self, data: &[u8]) -> Result<Vec<Vec<u8>>> {
        Ok(vec![data.to_vec()])
    }

    fn broadcast(&self, _root: usize, _data: &mut Vec<u8>) -> Result<()> {
        Ok(())
    }

    fn all_reduce_sum(&self, _values: &mut [f32]) -> Result<()> {
        Ok(())
    }
}
