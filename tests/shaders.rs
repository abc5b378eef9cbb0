//! Every variant of every kernel (each choice of helper for each `#import` slot it reaches)
//! parses and validates with naga, on no adapter at all, with no capability beyond float
//! atomics where the variant says it needs them; every variant a consumer builds (each
//! center-loss configuration, the trainer's kernels in both families and on every GEMM
//! core, search, the benchmark, the burn gradient scale) exists; and every kernel file
//! under `shaders/` is built by some consumer.

use std::collections::BTreeSet;

use centerloss::center_loss::shader_plan;
use centerloss::gpu::shaders::{helper, kernel, Alias, Kernel};
use centerloss::gpu::KernelFamily;
use centerloss::UpdateMode;

#[test]
fn every_variant_of_every_kernel_validates_with_naga() {
    let mut variants = 0;
    for kernel in kernel::ALL {
        for variant in kernel.variants {
            let source = kernel.compose(variant.aliases).unwrap();
            let label = format!("{} {:?}", kernel.name, variant.aliases);
            let module = naga::front::wgsl::parse_str(&source)
                .unwrap_or_else(|e| panic!("{label}: {}", e.emit_to_string(&source)));
            let caps = if variant.float_atomics {
                naga::valid::Capabilities::SHADER_FLOAT32_ATOMIC
            } else {
                naga::valid::Capabilities::empty()
            };
            naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
                .validate(&module)
                .unwrap_or_else(|e| panic!("{label}: {}", e.emit_to_string(&source)));
            variants += 1;
        }
    }
    // Every GEMM kernel on three cores, every walking kernel in both widths, the forward
    // kernels with both accumulations and all three windows.
    assert!(variants > 2 * kernel::ALL.len(), "{variants} variants of {} kernels", kernel::ALL.len());
}

#[test]
fn every_kernel_is_built_by_a_consumer_in_a_variant_that_exists() {
    let mut built = BTreeSet::new();
    let mut consumers: Vec<(String, &'static Kernel, Vec<Alias>)> = Vec::new();
    for update in [UpdateMode::Atomic, UpdateMode::Deterministic] {
        for (native, center_bindings, vec4) in
            [(true, 1, false), (false, 1, true), (true, 2, true), (false, 2, false), (true, 4, true), (false, 4, false)]
        {
            for family in [KernelFamily::Gpu, KernelFamily::Cpu] {
                for (label, kernel, aliases) in shader_plan(update, native, center_bindings, vec4, family) {
                    consumers.push((label.to_string(), kernel, aliases));
                }
            }
        }
    }
    let cores: [&[Alias]; 4] =
        [&[], centerloss::nn::CPU_KERNEL_ALIASES, &[helper::GEMM_CORE_WIDE], &[helper::GEMM_CORE_REGISTERS]];
    for aliases in cores {
        for kernel in centerloss::nn::KERNELS {
            consumers.push(("trainer".into(), kernel, aliases.to_vec()));
        }
    }
    let others = centerloss::search::KERNELS
        .iter()
        .chain(centerloss::bench::KERNELS)
        .chain(centerloss::center_loss::GRAD_SCALE_KERNELS);
    for kernel in others {
        consumers.push(("single".into(), kernel, Vec::new()));
    }
    for (label, kernel, aliases) in consumers {
        kernel.variant(&aliases).unwrap_or_else(|e| panic!("{label}: {e}"));
        built.insert(kernel.name);
    }
    for kernel in kernel::ALL {
        assert!(built.contains(kernel.name), "kernel {} is built by no consumer", kernel.name);
    }
}
