// Shapes of a row-wise kernel over [rows, dim].

struct RowParams {
    rows: u32,
    dim: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> rows: RowParams;
