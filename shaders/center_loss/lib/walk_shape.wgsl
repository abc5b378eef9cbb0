// How center_walk_vec4 spreads a row over invocations: walk_lanes() invocations share its
// D / 4 vec4 words (lane l takes words l, l + lanes, ...), at most WORDS_PER_INVOCATION
// each. Every (row, lane) writes one loss partial, at row * walk_lanes() + lane.

const WORDS_PER_INVOCATION: u32 = 16u;

fn walk_lanes() -> u32 {
    return (params.dim / 4u + WORDS_PER_INVOCATION - 1u) / WORDS_PER_INVOCATION;
}
