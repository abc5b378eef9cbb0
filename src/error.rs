//! The crate's error type, and the input checks every module shares.

/// Everything that can go wrong in `centerloss`. No public path panics on bad input:
/// it returns one of these, and leaves the centers as they were.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No GPU adapter was found (or none matched `WGPU_ADAPTER_NAME` / `WGPU_BACKEND`).
    #[error(
        "no GPU adapter: {0}. Install a GPU driver with Vulkan, Metal or DX12 support, \
         or Mesa's CPU Vulkan driver lavapipe (`apt-get install mesa-vulkan-drivers`)"
    )]
    NoAdapter(String),
    /// The adapter refused to create a device.
    #[error("could not create a GPU device on {adapter}: {reason}")]
    Device {
        /// The adapter's name.
        adapter: String,
        /// What wgpu said.
        reason: String,
    },
    /// A configuration value is out of its allowed range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An input has the wrong number of elements.
    #[error("{what}: expected {expected} values, got {actual}")]
    Shape {
        /// Which input.
        what: &'static str,
        /// The number of values it must have.
        expected: usize,
        /// The number of values it has.
        actual: usize,
    },
    /// A label is not below the number of classes.
    #[error("label {label} at batch index {index} is out of range: num_classes is {num_classes}")]
    LabelOutOfRange {
        /// Position of the label in the batch.
        index: usize,
        /// The offending label.
        label: u32,
        /// The configured number of classes K.
        num_classes: usize,
    },
    /// An input holds a NaN or an infinity.
    #[error("{what} has a non-finite value ({value}) at index {index}")]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// Flat index of the first non-finite value.
        index: usize,
        /// The value itself.
        value: f32,
    },
    /// A buffer would exceed what the adapter can hold.
    #[error("{what} needs {bytes} bytes, but the adapter allows at most {limit} bytes ({hint})")]
    TooLarge {
        /// What was being allocated.
        what: &'static str,
        /// Bytes it needs.
        bytes: u64,
        /// The adapter's limit that it exceeds.
        limit: u64,
        /// What to do about it.
        hint: &'static str,
    },
    /// A caller-owned buffer cannot be used as asked (too small, missing a usage flag).
    #[error("buffer `{what}`: {reason}")]
    Buffer {
        /// Which buffer.
        what: &'static str,
        /// Why it cannot be used.
        reason: String,
    },
    /// wgpu reported a validation, out-of-memory or internal error.
    #[error("GPU error: {0}")]
    Gpu(String),
    /// A checkpoint cannot be read, or does not fit this network.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A data set is missing, empty or malformed.
    #[error("data: {0}")]
    Data(String),
    /// Training diverged: the softmax loss of a step was not finite.
    #[error(
        "training diverged at step {step}: loss {loss} (lower the learning rate, clip the gradients \
         (--clip-grad-norm, SgdConfig::clip_grad_norm), or try another seed)"
    )]
    Diverged {
        /// The step whose loss was not finite.
        step: u64,
        /// That loss.
        loss: f32,
    },
    /// Reading a buffer back to the host failed.
    #[error("GPU readback failed: {0}")]
    Readback(String),
    /// A blocking call waited for the GPU where nothing may block (the browser's thread):
    /// the work was submitted, its result is read by the call's asynchronous form.
    #[error(
        "{0} waits for the GPU, which the browser does not allow: await its asynchronous form \
         (`GpuContext::new_async`, `PendingStep::output`, `Network::train_step_async`, \
         `infer_async`, `centers_async`, `read_values_async`)"
    )]
    WouldBlock(&'static str),
    /// A collective step was refused because of one member's input or configuration; every
    /// member of the group returns this same error, and no member's centers change.
    #[error("rank {rank}: {source}")]
    Rank {
        /// The lowest rank at fault.
        rank: usize,
        /// What is wrong there (the error that rank's own check raised).
        source: Box<Error>,
    },
    /// The group of a collective operation broke: a member left, panicked or the
    /// transport failed. The step did not complete on this member.
    #[error("collective: {0}")]
    Collective(String),
    /// A state the crate's own code should never reach (a bug in centerloss, not in the
    /// caller's input); please report it with the message.
    #[error("internal error in centerloss (please report it): {0}")]
    Internal(String),
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// [`Error::Shape`] unless `actual == expected`.
pub(crate) fn check_len(what: &'static str, expected: usize, actual: usize) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::Shape { what, expected, actual })
    }
}

/// [`Error::NonFinite`] naming the first NaN or infinity. Blocks of values are tested
/// without an early exit, which the compiler vectorises (a quarter of the time of a
/// per-value search on 512 x 512 features), and only a block that fails is searched.
pub(crate) fn check_finite(what: &'static str, values: &[f32]) -> Result<()> {
    const BLOCK: usize = 1024;
    for (block, chunk) in values.chunks(BLOCK).enumerate() {
        if chunk.iter().fold(true, |all, v| all & v.is_finite()) {
            continue;
        }
        if let Some(i) = chunk.iter().position(|v| !v.is_finite()) {
            let index = block * BLOCK + i;
            return Err(Error::NonFinite { what, index, value: values[index] });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_finite_names_the_first_bad_value_in_any_block() {
        let n = 3 * 1024 + 5;
        assert!(check_finite("x", &vec![1.5f32; n]).is_ok());
        assert!(check_finite("x", &[]).is_ok());
        for (at, bad) in [(0, f32::NAN), (1023, f32::INFINITY), (1024, f32::NEG_INFINITY), (n - 1, f32::NAN)] {
            let mut v = vec![-2.0f32; n];
            v[at] = bad;
            v[n - 1] = f32::NAN;
            match check_finite("x", &v) {
                Err(Error::NonFinite { what: "x", index, .. }) => assert_eq!(index, at),
                other => panic!("{other:?}"),
            }
        }
    }
}
