//! [`Mpi`]: the world communicator of an MPI job as a [`Collective`] (feature `mpi`,
//! through the `mpi` crate on the system's MPI library, e.g. Open MPI).

use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Threading;

use super::Collective;
use crate::{Error, Result};

/// The world communicator of an MPI job (`mpirun -n N program`).
///
/// MPI is initialised with `MPI_THREAD_SERIALIZED`, the level that moving this handle to
/// another thread (`Send`) needs; it is finalised when the handle is dropped, so keep it
/// for the whole run and drop it on the thread that made it.
///
/// When a rank dies (crash, kill, panic) Open MPI's default error handler ends the whole
/// job: `mpirun` kills the other ranks and exits non-zero; no rank waits forever.
pub struct Mpi {
    world: SimpleCommunicator,
    // Dropped last: finalises MPI.
    _universe: Universe,
}

// SAFETY: MPI was initialised with at least `Threading::Serialized` (checked in `init`), so
// any thread may make MPI calls as long as no two do so at once; `Mpi` is not `Sync`, and
// every call goes through `&self` of the one thread that holds it.
unsafe impl Send for Mpi {}

impl std::fmt::Debug for Mpi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mpi").field("rank", &self.rank()).field("size", &self.size()).finish()
    }
}

impl Mpi {
    /// Initialises MPI (once per process). Fails with [`Error::Collective`] when MPI was
    /// already initialised or cannot give the serialised threading level.
    pub fn init() -> Result<Self> {
        let (universe, level) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| Error::Collective("MPI was already initialised in this process".into()))?;
        if level < Threading::Serialized {
            return Err(Error::Collective(format!(
                "the MPI library gives threading level {level:?}; centerloss needs Serialized or Multiple"
            )));
        }
        Ok(Self { world: universe.world(), _universe: universe })
    }

    /// Whether this process was started by an MPI launcher (`mpirun`, `srun`): Open MPI's,
    /// MPICH's or PMIx's rank variables are set.
    pub fn launched() -> bool {
        ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"].iter().any(|v| std::env::var_os(v).is_some())
    }

    /// How many ranks run on this machine (`OMPI_COMM_WORLD_LOCAL_SIZE`, `MPI_LOCALNRANKS`),
    /// else 1.
    pub fn local_size() -> usize {
        ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"]
            .iter()
            .find_map(|v| std::env::var(v).ok()?.parse().ok())
            .unwrap_or(1)
    }

    /// This process's rank among the ranks on the same machine (to pick a device):
    /// `OMPI_COMM_WORLD_LOCAL_RANK`, `MPI_LOCALRANKID` (MPICH) or `SLURM_LOCALID`, else 0.
    pub fn local_rank() -> usize {
        ["OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"]
            .iter()
            .find_map(|v| std::env::var(v).ok()?.parse().ok())
            .unwrap_or(0)
    }
}

fn count(bytes: usize) -> Result<mpi::Count> {
    mpi::Count::try_from(bytes)
        .map_err(|_| Error::Collective(format!("{bytes} bytes exceed what one MPI message carries (2^31 - 1)")))
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn all_gather(&self, data: &[u8]) -> Result<Vec<Vec<u8>>> {
        let n = self.size();
        let mut lengths = vec![0u64; n];
        self.world.all_gather_into(&(data.len() as u64), &mut lengths[..]);
        let counts = lengths.iter().map(|&l| count(l as usize)).collect::<Result<Vec<_>>>()?;
        let mut displs = Vec::with_capacity(n);
        let mut total = 0usize;
        for &l in &lengths {
            displs.push(count(total)?);
            total += l as usize;
        }
        let mut all = vec![0u8; total];
        {
            let mut partition = PartitionMut::new(&mut all[..], counts, &displs[..]);
            self.world.all_gather_varcount_into(data, &mut partition);
        }
        let mut start = 0;
        Ok(lengths
            .iter()
            .map(|&l| {
                start += l as usize;
                all[start - l as usize..start].to_vec()
            })
            .collect())
    }

    fn broadcast(&self, root: usize, data: &mut Vec<u8>) -> Result<()> {
        if root >= self.size() {
            return Err(Error::Collective(format!(
                "broadcast root {root} is not below the group size {}",
                self.size()
            )));
        }
        let root_process = self.world.process_at_rank(root as i32);
        let mut len = data.len() as u64;
        root_process.broadcast_into(&mut len);
        count(len as usize)?;
        data.resize(len as usize, 0);
        root_process.broadcast_into(&mut data[..]);
        Ok(())
    }

    /// Reduced on rank 0, then broadcast: every rank gets rank 0's bits (an all-reduce may
    /// sum in a different order on different ranks).
    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<()> {
        let root = self.world.process_at_rank(0);
        if self.rank() == 0 {
            let mut sum = vec![0.0f32; values.len()];
            root.reduce_into_root(&values[..], &mut sum[..], mpi::collective::SystemOperation::sum());
            values.copy_from_slice(&sum);
        } else {
            root.reduce_into(&values[..], mpi::collective::SystemOperation::sum());
        }
        root.broadcast_into(values);
        Ok(())
    }
}
