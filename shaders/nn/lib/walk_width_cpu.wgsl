#serves walk_width
// How many values the walking kernels (add, PReLU, max pooling) take per invocation, CPU
// family: eight, so that a CPU driver runs an eighth of the invocations, each with its
// index work done once (docs/cpu-experiments.md). (walk_width: one, for GPUs.)

const VALUES_PER_INVOCATION: u32 = 8u;
