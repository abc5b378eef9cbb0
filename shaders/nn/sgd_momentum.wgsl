// SGD with momentum and weight decay (Caffe's rule), one parameter tensor:
//   v <- momentum * v + lr * (s * g + decay * w);   w <- w - v
// where s = clip[0] is gradient-norm clipping's factor (1 when clipping is off).

#import common

struct SgdParams {
    len: u32,
    lr: f32,
    momentum: f32,
    decay: f32,
}

@group(0) @binding(0) var<uniform> sgd: SgdParams;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> velocity: array<f32>;
@group(0) @binding(4) var<storage, read> clip: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_workgroup(wid, nwg) * WORKGROUP_SIZE + lid;
    if i >= sgd.len {
        return;
    }
    let w = weight[i];
    let v = sgd.momentum * velocity[i] + sgd.lr * (clip[0] * grad[i] + sgd.decay * w);
    velocity[i] = v;
    weight[i] = w - v;
}
