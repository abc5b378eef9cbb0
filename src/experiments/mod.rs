//! The two experiments the examples run, as library functions so that tests can run short
//! versions of them: the paper's MNIST 2-D experiment and the face-embedding main job.

pub mod faces;
pub mod mnist;
pub mod training;

/// Under an MPI launcher (feature `mpi`; [`Mpi::launched`](crate::collective::Mpi::launched)):
/// MPI initialised and a device for this rank (its local rank's adapter,
/// [`GpuContext::for_member`](crate::GpuContext::for_member)); `None` when not launched
/// by MPI, so the examples run unchanged either way.
#[cfg(feature = "mpi")]
pub fn mpi_rank() -> crate::Result<Option<(crate::collective::Mpi, crate::GpuContext)>> {
    use crate::collective::Mpi;
    if !Mpi::launched() {
        return Ok(None);
    }
    let comm = Mpi::init()?;
    let ctx = crate::GpuContext::for_member(Mpi::local_rank(), Mpi::local_size())?;
    Ok(Some((comm, ctx)))
}
