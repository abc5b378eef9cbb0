// The walking kernels (add, PReLU, max pooling) take VALUES_PER_INVOCATION values each
// (walk_width: 1 on GPUs, 8 on CPU drivers), WORKGROUP_SIZE apart (consecutive
// invocations, consecutive values), and follow a value's (plane, y, x) in planes of
// height x width without a division per value: walk_begin works out the steps once.
// (PReLU walks NCHW as planes of channels x pixels: y is the channel.)

#import walk_width

struct PlaneWalk {
    i: u32,
    plane: u32,
    y: u32,
    x: u32,
    // One step of WORKGROUP_SIZE values: x_step (< width) values, y_step (< height) rows,
    // plane_step planes, before the carries.
    x_step: u32,
    y_step: u32,
    plane_step: u32,
}

// The first value of this invocation.
fn walk_first(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return linear_workgroup(wid, nwg) * VALUES_PER_INVOCATION * WORKGROUP_SIZE + lid;
}

fn walk_begin(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, width: u32, height: u32) -> PlaneWalk {
    let i = walk_first(wid, nwg, lid);
    let row = i / width;
    let plane = row / height;
    let rows = WORKGROUP_SIZE / width;
    return PlaneWalk(
        i,
        plane,
        row - plane * height,
        i - row * width,
        WORKGROUP_SIZE - rows * width,
        rows % height,
        rows / height,
    );
}

// Advances by WORKGROUP_SIZE values.
fn walk_next(w: ptr<function, PlaneWalk>, width: u32, height: u32) {
    (*w).i = (*w).i + WORKGROUP_SIZE;
    (*w).x = (*w).x + (*w).x_step;
    var carry = 0u;
    if (*w).x >= width {
        (*w).x = (*w).x - width;
        carry = 1u;
    }
    // y < height and y_step + carry <= height: one wrap at most.
    (*w).y = (*w).y + (*w).y_step + carry;
    carry = (*w).plane_step;
    if (*w).y >= height {
        (*w).y = (*w).y - height;
        carry = carry + 1u;
    }
    (*w).plane = (*w).plane + carry;
}
