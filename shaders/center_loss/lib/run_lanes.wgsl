// How center_runs_vec4 spreads a row over invocations: run_lanes() invocations share its
// D / 4 vec4 words (lane l takes words l, l + lanes, ...), at most WORDS_PER_INVOCATION
// each. Every (row, lane) writes one loss partial, at row * run_lanes() + lane.

const WORDS_PER_INVOCATION: u32 = 16u;

fn run_lanes() -> u32 {
    return (params.dim / 4u + WORDS_PER_INVOCATION - 1u) / WORDS_PER_INVOCATION;
}
