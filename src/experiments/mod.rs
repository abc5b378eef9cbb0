//! The two experiments the examples run, as library functions so that tests can run short
//! versions of them: the paper's MNIST 2-D experiment and the face-embedding main job.

pub mod faces;
pub mod mnist;
pub mod training;

/// The GPU and, under an MPI launcher (feature `mpi`;
/// [`Mpi::launched`](crate::collective)), the job's communicator with this rank's device
/// (its local rank's adapter, [`GpuContext::for_member`](crate::GpuContext::for_member)).
/// Otherwise `None` and the default device, so the examples run unchanged either way.
pub fn launch() -> crate::Result<(Option<Box<dyn crate::collective::Collective>>, crate::GpuContext)> {
    #[cfg(feature = "mpi")]
    {
        use crate::collective::Mpi;
        if Mpi::launched() {
            let comm = Mpi::init()?;
            let ctx = crate::GpuContext::for_member(Mpi::local_rank(), Mpi::local_size())?;
            return Ok((Some(Box::new(comm)), ctx));
        }
    }
    Ok((None, crate::GpuContext::new()?))
}
