// How many values the walking kernels (add, PReLU, max pooling) take per invocation, GPU
// family: one, each invocation its own value, as GPUs like it. (walk_width_cpu: eight.)

const VALUES_PER_INVOCATION: u32 = 1u;
