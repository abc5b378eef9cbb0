//! The WGSL sources: one file per kernel in `shaders/`, helpers in `shaders/lib/`,
//! joined by a tiny `#import NAME` step (each helper once, aliases chosen per device).

use crate::{Error, Result};

macro_rules! sources {
    ($dir:literal: $($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../shaders/", $dir, $name, ".wgsl")))),*]
    };
}

/// Kernels: each file holds one `main` entry point.
pub const KERNELS: &[(&str, &str)] = sources!("":
    "center_forward", "center_forward_vec4", "loss_reduce", "center_claim", "center_apply", "center_release",
    "status_finalize", "sort_keys_init", "bitonic_step", "bitonic_local", "center_update_sorted",
    "gemm", "conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight", "sum_slices",
    "channel_sum", "prelu_forward", "prelu_backward", "prelu_slope_grad", "add",
    "maxpool_forward", "maxpool_backward", "softmax_cross_entropy", "reduce_rows",
    "l2norm_forward", "l2norm_backward", "sgd_momentum", "bandwidth_copy",
);

/// Helpers pulled in with `#import NAME`.
pub const LIBRARY: &[(&str, &str)] = sources!("lib/":
    "common", "batch_bindings", "batch_data", "batch_data_vec4", "chunk_params", "chunk_bindings",
    "chunk_bindings_2", "chunk_bindings_4", "chunk_words", "forward_report", "sort_stage",
    "scratch_atomic", "scratch_sorted",
    "accum_native", "accum_cas", "accumulate_none", "accumulate_atomic",
    "element_walk", "gemm_core", "conv_params", "channel_reduce", "elementwise", "pool_params", "row_params", "tree_sum",
);

/// Returns the kernel named `kernel` with its imports resolved. `aliases` maps an import
/// name to the library file that serves it (e.g. `("accum", "accum_cas")`).
pub fn compose(kernel: &str, aliases: &[(&str, &str)]) -> Result<String> {
    let source = lookup(KERNELS, kernel)?;
    let mut out = String::with_capacity(source.len() * 2);
    let mut seen = Vec::new();
    expand(kernel, source, aliases, &mut seen, &mut out)?;
    Ok(out)
}

fn lookup(table: &[(&str, &'static str)], name: &str) -> Result<&'static str> {
    table
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .ok_or_else(|| Error::Config(format!("no WGSL source named `{name}`")))
}

fn expand(name: &str, source: &str, aliases: &[(&str, &str)], seen: &mut Vec<String>, out: &mut String) -> Result<()> {
    for line in source.lines() {
        match line.trim().strip_prefix("#import ") {
            Some(import) => {
                let import = import.trim();
                let target = aliases.iter().find(|(a, _)| *a == import).map_or(import, |(_, t)| *t);
                if seen.iter().any(|s| s == target) {
                    continue;
                }
                seen.push(target.to_string());
                let body = lookup(LIBRARY, target)
                    .map_err(|_| Error::Config(format!("`{name}` imports unknown `{import}`")))?;
                expand(target, body, aliases, seen, out)?;
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_resolve_once_and_follow_aliases() {
        let src = compose("center_forward", &[("accumulate", "accumulate_atomic"), ("accum", "accum_cas")]).unwrap();
        assert_eq!(src.matches("fn linear_workgroup").count(), 1);
        assert!(src.contains("atomicCompareExchangeWeak"));
        assert!(!src.contains("#import"));
        assert!(compose("no_such_kernel", &[]).is_err());
    }

    /// Parses and validates every composed shader that any mode builds, with naga, on no
    /// adapter at all; and checks that every kernel file is built by some mode.
    #[test]
    fn every_shader_variant_validates_with_naga() {
        use crate::center_loss::shader_plan;
        use crate::UpdateMode;
        let mut built = std::collections::BTreeSet::new();
        for update in [UpdateMode::Atomic, UpdateMode::Deterministic] {
            for (native, center_bindings, vec4) in [
                (true, 1, false),
                (false, 1, true),
                (true, 2, true),
                (false, 2, false),
                (true, 4, true),
                (false, 4, false),
            ] {
                let nn = crate::nn::KERNEL_TABLE.iter().map(|k| (k.name, k.name, Vec::new()));
                for (label, kernel, aliases) in shader_plan(update, native, center_bindings, vec4).into_iter().chain(nn)
                {
                    let source = compose(kernel, &aliases).unwrap();
                    let module = naga::front::wgsl::parse_str(&source)
                        .unwrap_or_else(|e| panic!("{label} ({kernel}): {}", e.emit_to_string(&source)));
                    let caps = if native {
                        naga::valid::Capabilities::SHADER_FLOAT32_ATOMIC
                    } else {
                        naga::valid::Capabilities::empty()
                    };
                    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
                        .validate(&module)
                        .unwrap_or_else(|e| panic!("{label} ({kernel}): {}", e.emit_to_string(&source)));
                    built.insert(kernel);
                }
            }
        }
        for (kernel, _) in KERNELS {
            assert!(built.contains(kernel), "kernel {kernel} is built by no mode");
        }
    }
}
