// SGD with momentum and weight decay (Caffe's rule) over one page of the parameter arena:
//   v <- momentum * v + lr * (s * g + decay * w);   w <- w - v
// where s = clip[0] is gradient-norm clipping's factor (1 when clipping is off) and decay
// is that of the parameter's kind (weight, bias, PReLU slope), read per chunk of
// CHUNK_VALUES values: parameters start at chunk boundaries, and the padding after each
// stays zero (zero gradient, value and momentum).

#import common

const CHUNK_VALUES: u32 = 64u;

struct SgdParams {
    len: u32,
    lr: f32,
    momentum: f32,
    _pad: u32,
    // Weight decay by kind: weight, bias, slope.
    decay: vec4<f32>,
}

@group(0) @binding(0) var<uniform> sgd: SgdParams;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> velocity: array<f32>;
@group(0) @binding(4) var<storage, read> clip: array<f32>;
@group(0) @binding(5) var<storage, read> chunk_kinds: array<u32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_workgroup(wid, nwg) * WORKGROUP_SIZE + lid;
    if i >= sgd.len {
        return;
    }
    let decay = sgd.decay[chunk_kinds[i / CHUNK_VALUES]];
    let w = weight[i];
    let v = sgd.momentum * velocity[i] + sgd.lr * (clip[0] * grad[i] + decay * w);
    velocity[i] = v;
    weight[i] = w - v;
}
