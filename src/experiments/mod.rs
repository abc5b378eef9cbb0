//! The two experiments the examples run, as library functions so that tests can run short
//! versions of them (the paper's MNIST 2-D experiment and the face-embedding main job), and
//! the `centerloss` command's subcommands (`commands`: faces, mnist, embed, verify, search,
//! export).

pub mod commands;
pub mod faces;
pub mod mnist;
mod rows;
pub mod training;
pub mod values;

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

/// An `f32` setting as the JSON number it was written as (0.1, not the 0.10000000149 of its
/// widening to `f64`): the shortest decimal that reads back as the same `f32`.
pub(crate) fn json_f32(value: f32) -> serde_json::Value {
    value.to_string().parse::<f64>().map_or(serde_json::Value::Null, serde_json::Value::from)
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_f32_writes_the_short_decimal() {
        assert_eq!(super::json_f32(0.1).to_string(), "0.1");
        assert_eq!(super::json_f32(0.01).to_string(), "0.01");
        assert_eq!(super::json_f32(5.0).to_string(), "5.0");
        assert!(super::json_f32(f32::NAN).is_null());
    }
}
