// Each invocation walks PER_INVOCATION elements e = first + t * WORKGROUP_SIZE of the
// B x D batch (consecutive invocations, consecutive elements), advancing (row, d) without
// a division per element. Fewer, fuller invocations: lavapipe pays per invocation.

const PER_INVOCATION: u32 = 8u;

struct ElementWalk {
    e: u32,
    row: u32,
    d: u32,
    row_step: u32,
    d_step: u32,
}

fn walk_begin(wg: u32, lid: u32) -> ElementWalk {
    let first = wg * PER_INVOCATION * WORKGROUP_SIZE + lid;
    let row = first / params.dim;
    let row_step = WORKGROUP_SIZE / params.dim;
    return ElementWalk(first, row, first - row * params.dim, row_step, WORKGROUP_SIZE - row_step * params.dim);
}

fn walk_next(w: ptr<function, ElementWalk>) {
    (*w).e = (*w).e + WORKGROUP_SIZE;
    (*w).row = (*w).row + (*w).row_step;
    (*w).d = (*w).d + (*w).d_step;
    if (*w).d >= params.dim {
        (*w).d = (*w).d - params.dim;
        (*w).row = (*w).row + 1u;
    }
}
