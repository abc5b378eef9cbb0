//! ONNX export of a model's embedding network: its trunk (convolution, PReLU, max pooling,
//! residual add, flatten, linear, L2 normalisation) and the final L2 normalisation of the
//! embedding, as a standard ONNX graph (opset 17, float32 NCHW input `input` with a dynamic
//! batch, output `embedding` [batch, D]); the preprocessing and verification thresholds go
//! into the model's `metadata_props`. The protobuf messages are those of `onnx.proto`
//! (field numbers as there), encoded by prost.

use std::collections::HashMap;

use prost::Message;

use crate::model::Model;
use crate::nn::{LayerSpec, Shape};
use crate::{Error, Result};

/// The ONNX operator set the graph uses.
pub const OPSET: i64 = 17;
/// The ONNX IR version of opset 17.
const IR_VERSION: i64 = 8;
/// `TensorProto.DataType.FLOAT` and `INT64`.
const FLOAT: i32 = 1;
const INT64: i32 = 7;
/// `AttributeProto.AttributeType`: INT, INTS.
const ATTR_INT: i32 = 2;
const ATTR_INTS: i32 = 7;

#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(int64, tag = "1")]
    ir_version: i64,
    #[prost(string, tag = "2")]
    producer_name: String,
    #[prost(string, tag = "3")]
    producer_version: String,
    #[prost(string, tag = "6")]
    doc_string: String,
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "8")]
    opset_import: Vec<OperatorSetIdProto>,
    #[prost(message, repeated, tag = "14")]
    metadata_props: Vec<StringStringEntryProto>,
}

#[derive(Clone, PartialEq, Message)]
struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    domain: String,
    #[prost(int64, tag = "2")]
    version: i64,
}

#[derive(Clone, PartialEq, Message)]
struct StringStringEntryProto {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(string, tag = "2")]
    value: String,
}

#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    output: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    output: Vec<String>,
    #[prost(string, tag = "3")]
    name: String,
    #[prost(string, tag = "4")]
    op_type: String,
    #[prost(message, repeated, tag = "5")]
    attribute: Vec<AttributeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct AttributeProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(int64, optional, tag = "3")]
    i: Option<i64>,
    #[prost(int64, repeated, tag = "8")]
    ints: Vec<i64>,
    #[prost(int32, tag = "20")]
    r#type: i32,
}

#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    data_type: i32,
    #[prost(string, tag = "8")]
    name: String,
    #[prost(bytes = "vec", tag = "9")]
    raw_data: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct ValueInfoProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    r#type: Option<TypeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct TypeProto {
    #[prost(message, optional, tag = "1")]
    tensor_type: Option<TensorTypeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorTypeProto {
    #[prost(int32, tag = "1")]
    elem_type: i32,
    #[prost(message, optional, tag = "2")]
    shape: Option<TensorShapeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    dim: Vec<Dimension>,
}

#[derive(Clone, PartialEq, Message)]
struct Dimension {
    #[prost(int64, optional, tag = "1")]
    dim_value: Option<i64>,
    #[prost(string, optional, tag = "2")]
    dim_param: Option<String>,
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto { name: name.into(), i: Some(value), ints: Vec::new(), r#type: ATTR_INT }
}

fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), i: None, ints: values.to_vec(), r#type: ATTR_INTS }
}

/// A float32 tensor value named `name` with dimensions `dims`, `batch` being symbolic.
fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    let dim = std::iter::once(Dimension { dim_value: None, dim_param: Some("batch".into()) })
        .chain(dims.iter().map(|&d| Dimension { dim_value: Some(d), dim_param: None }))
        .collect();
    let tensor_type = TensorTypeProto { elem_type: FLOAT, shape: Some(TensorShapeProto { dim }) };
    ValueInfoProto { name: name.into(), r#type: Some(TypeProto { tensor_type: Some(tensor_type) }) }
}

/// An activation in the graph: its value name, per-sample shape, and whether ONNX holds
/// it flat ([batch, n]) rather than as NCHW.
#[derive(Clone)]
struct Value {
    name: String,
    shape: Shape,
    flat: bool,
}

/// The graph under construction, with the trained parameters by name.
struct Builder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    params: HashMap<String, Vec<f32>>,
}

impl Builder {
    fn node(&mut self, op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> String {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            name: output.to_string(),
            op_type: op.to_string(),
            attribute,
        });
        output.to_string()
    }

    fn constant(&mut self, name: &str, dims: &[i64], values: &[f32]) -> String {
        let raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializers.push(TensorProto { dims: dims.to_vec(), data_type: FLOAT, name: name.into(), raw_data });
        name.to_string()
    }

    /// The trained values of parameter `name`, as an initializer of `dims`.
    fn param(&mut self, name: &str, dims: &[i64]) -> Result<String> {
        let values =
            self.params.remove(name).ok_or_else(|| Error::Internal(format!("ONNX export: no parameter {name}")))?;
        if values.len() as i64 != dims.iter().product::<i64>() {
            return Err(Error::Internal(format!("ONNX export: {name} has {} values for {dims:?}", values.len())));
        }
        Ok(self.constant(name, dims, &values))
    }

    /// `x` as NCHW (a flat value gets its [n, 1, 1] back).
    fn spatial(&mut self, x: &Value, name: &str) -> String {
        if !x.flat {
            return x.name.clone();
        }
        let shape = format!("{name}.shape");
        let dims = [0, x.shape[0] as i64, 1, 1];
        let raw_data = dims.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializers.push(TensorProto { dims: vec![4], data_type: INT64, name: shape.clone(), raw_data });
        self.node("Reshape", &[&x.name, &shape], &format!("{name}.nchw"), Vec::new())
    }

    fn sequence(&mut self, x: Value, specs: &[LayerSpec], name: &str) -> Result<Value> {
        specs.iter().enumerate().try_fold(x, |cur, (i, spec)| self.layer(cur, spec, &format!("{name}.{i}")))
    }

    fn layer(&mut self, x: Value, spec: &LayerSpec, name: &str) -> Result<Value> {
        let [c, h, w] = x.shape;
        Ok(match spec {
            LayerSpec::Conv2d { out_channels, kernel, stride, pad, bias } => {
                let input = self.spatial(&x, name);
                let (o, k) = (*out_channels as i64, *kernel as i64);
                let mut inputs = vec![input, self.param(&format!("{name}.weight"), &[o, c as i64, k, k])?];
                if *bias {
                    inputs.push(self.param(&format!("{name}.bias"), &[o])?);
                }
                let p = *pad as i64;
                let attrs =
                    vec![ints("kernel_shape", &[k, k]), ints("strides", &[*stride as i64; 2]), ints("pads", &[p; 4])];
                let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                let out = [*out_channels, (h + 2 * pad - kernel) / stride + 1, (w + 2 * pad - kernel) / stride + 1];
                Value { name: self.node("Conv", &refs, name, attrs), shape: out, flat: false }
            }
            LayerSpec::MaxPool { kernel, stride } => {
                let input = self.spatial(&x, name);
                let (k, s) = (*kernel as i64, *stride as i64);
                let attrs = vec![ints("kernel_shape", &[k, k]), ints("strides", &[s, s]), int("ceil_mode", 0)];
                let out = [c, (h - kernel) / stride + 1, (w - kernel) / stride + 1];
                Value { name: self.node("MaxPool", &[&input], name, attrs), shape: out, flat: false }
            }
            LayerSpec::PRelu { shared } => {
                let channels = if *shared { 1 } else { c as i64 };
                let dims: Vec<i64> = if *shared {
                    vec![1]
                } else if x.flat {
                    vec![channels]
                } else {
                    vec![channels, 1, 1]
                };
                let slope = self.param(&format!("{name}.slope"), &dims)?;
                Value { name: self.node("PRelu", &[&x.name, &slope], name, Vec::new()), ..x }
            }
            LayerSpec::Linear { out_features, bias } => {
                let flat = if x.flat {
                    x.name.clone()
                } else {
                    self.node("Flatten", &[&x.name], &format!("{name}.flat"), vec![int("axis", 1)])
                };
                let (o, i) = (*out_features as i64, (c * h * w) as i64);
                let mut inputs = vec![flat, self.param(&format!("{name}.weight"), &[o, i])?];
                if *bias {
                    inputs.push(self.param(&format!("{name}.bias"), &[o])?);
                }
                let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                let out = self.node("Gemm", &refs, name, vec![int("transB", 1)]);
                Value { name: out, shape: [*out_features, 1, 1], flat: true }
            }
            LayerSpec::Flatten => {
                let out =
                    if x.flat { x.name.clone() } else { self.node("Flatten", &[&x.name], name, vec![int("axis", 1)]) };
                Value { name: out, shape: [c * h * w, 1, 1], flat: true }
            }
            LayerSpec::L2Norm => Value { name: self.l2_normalize(&x, name, 1e-10), ..x },
            LayerSpec::Residual { body, shortcut } => {
                let u = self.sequence(x.clone(), body, &format!("{name}.body"))?;
                let s = self.sequence(x, shortcut, &format!("{name}.shortcut"))?;
                if u.flat != s.flat || u.shape != s.shape {
                    return Err(Error::Config(format!(
                        "ONNX export: residual {name}'s branches end in different shapes"
                    )));
                }
                Value { name: self.node("Add", &[&u.name, &s.name], name, Vec::new()), ..u }
            }
        })
    }

    /// x / sqrt(sum of squares over the sample + eps), as the trainer's `L2Norm` computes it.
    fn l2_normalize(&mut self, x: &Value, name: &str, eps: f32) -> String {
        let axes: Vec<i64> = if x.flat { vec![1] } else { vec![1, 2, 3] };
        let sum = self.node(
            "ReduceSumSquare",
            &[&x.name],
            &format!("{name}.sum_squares"),
            vec![ints("axes", &axes), int("keepdims", 1)],
        );
        let eps_name = self.constant(&format!("{name}.eps"), &[], &[eps]);
        let shifted = self.node("Add", &[&sum, &eps_name], &format!("{name}.shifted"), Vec::new());
        let norm = self.node("Sqrt", &[&shifted], &format!("{name}.norm"), Vec::new());
        self.node("Div", &[&x.name, &norm], name, Vec::new())
    }
}

/// The ONNX model (protobuf bytes) of `model`'s embedding network: input `input`
/// [batch, C, H, W] float32, preprocessed as the metadata says; output `embedding`
/// [batch, D], L2-normalised like [`Model::embed_pixels`].
pub fn export(model: &Model) -> Result<Vec<u8>> {
    let net = model.network();
    let spec = net.spec();
    let values = net.param_values()?;
    let params = net.graph().params().iter().zip(values).map(|(p, v)| (p.name.clone(), v)).collect();
    let mut b = Builder { nodes: Vec::new(), initializers: Vec::new(), params };
    let input = Value { name: "input".into(), shape: spec.input, flat: false };
    let trunk = b.sequence(input, &spec.trunk, "trunk")?;
    let dim = trunk.shape.iter().product::<usize>() as i64;
    let flat = if trunk.flat {
        trunk.clone()
    } else {
        Value {
            name: b.node("Flatten", &[&trunk.name], "trunk.flat", vec![int("axis", 1)]),
            shape: [dim as usize, 1, 1],
            flat: true,
        }
    };
    b.l2_normalize(&flat, "embedding", 0.0);
    let [c, h, w] = spec.input;
    let graph = GraphProto {
        node: b.nodes,
        name: "centerloss embedding".into(),
        initializer: b.initializers,
        input: vec![value_info("input", &[c as i64, h as i64, w as i64])],
        output: vec![value_info("embedding", &[dim])],
    };
    let mut metadata = vec![
        ("centerloss.preprocessing", model.preprocessing().to_json()),
        ("centerloss.preprocessing.description", model.preprocessing().describe()),
        ("centerloss.network", serde_json::to_string(spec).map_err(|e| Error::Internal(e.to_string()))?),
    ];
    if !model.operating_points().is_empty() {
        let points = serde_json::to_string(model.operating_points()).map_err(|e| Error::Internal(e.to_string()))?;
        metadata.push(("centerloss.operating_points", points));
    }
    let proto = ModelProto {
        ir_version: IR_VERSION,
        producer_name: "centerloss".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "Face embedding ({dim} values, L2-normalised; compare with the dot product). Input: {}",
            model.preprocessing().describe()
        ),
        graph: Some(graph),
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
        metadata_props: metadata.into_iter().map(|(k, v)| StringStringEntryProto { key: k.into(), value: v }).collect(),
    };
    Ok(proto.encode_to_vec())
}
