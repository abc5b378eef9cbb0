//! Every WGSL module any consumer builds (each center-loss configuration's variants, the
//! trainer's kernels in both families, the benchmark's) parses and validates with naga, on no adapter at
//! all; and every kernel file under `shaders/` is built by some consumer.

use std::collections::BTreeSet;

use centerloss::center_loss::shader_plan;
use centerloss::gpu::shaders::{compose, kernels};
use centerloss::gpu::KernelFamily;
use centerloss::UpdateMode;

#[test]
fn every_shader_variant_validates_with_naga() {
    let mut built = BTreeSet::new();
    for update in [UpdateMode::Atomic, UpdateMode::Deterministic] {
        for (native, center_bindings, vec4) in
            [(true, 1, false), (false, 1, true), (true, 2, true), (false, 2, false), (true, 4, true), (false, 4, false)]
        {
            let nn_cpu =
                centerloss::nn::KERNELS.iter().map(|k| (k.name, k.name, centerloss::nn::CPU_KERNEL_ALIASES.to_vec()));
            let tables = centerloss::nn::KERNELS
                .iter()
                .chain(centerloss::bench::KERNELS)
                .chain(centerloss::center_loss::GRAD_SCALE_KERNELS);
            let single = tables.map(|k| (k.name, k.name, Vec::new())).chain(nn_cpu);
            let center_loss = [KernelFamily::Gpu, KernelFamily::Cpu]
                .into_iter()
                .flat_map(|family| shader_plan(update, native, center_bindings, vec4, family));
            for (label, kernel, aliases) in center_loss.chain(single) {
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
    for kernel in kernels() {
        assert!(built.contains(kernel.name), "kernel {} is built by no consumer", kernel.name);
    }
}
