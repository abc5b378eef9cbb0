#!/usr/bin/env python3
"""Checks an exported model with onnxruntime: the embeddings onnxruntime computes from
the .onnx must equal those `centerloss embed` computes on the GPU (max abs error <= 1e-4).

    python3 -m pip install onnxruntime numpy
    cargo run --release -- export --model out/yale/center.safetensors --onnx out/yale/face.onnx
    python3 scripts/onnx_check.py --model out/yale/center.safetensors --onnx out/yale/face.onnx

Random inputs in [-1, 1] are written as an .npy of preprocessed rows, embedded by the
`centerloss` command (--command; default: `cargo run --release --`) and by onnxruntime.
"""
import argparse
import os
import shlex
import subprocess
import sys
import tempfile

import numpy as np
import onnxruntime as ort


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="the .safetensors the .onnx was exported from")
    parser.add_argument("--onnx", required=True)
    parser.add_argument("--images", type=int, default=16, help="random inputs to compare")
    parser.add_argument("--command", default="cargo run --release --", help="how to run centerloss")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()

    session = ort.InferenceSession(args.onnx, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    print("preprocessing:", meta.get("centerloss.preprocessing.description", "(not recorded)"))
    shape = session.get_inputs()[0].shape[1:]
    rng = np.random.default_rng(0)
    images = rng.uniform(-1.0, 1.0, size=[args.images, *shape]).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        pixels = os.path.join(tmp, "inputs.npy")
        np.save(pixels, images.reshape(args.images, -1))
        out = os.path.join(tmp, "gpu")
        cmd = shlex.split(args.command) + ["embed", "--model", args.model, pixels, "--out", out, "--quiet"]
        subprocess.run(cmd, check=True)
        gpu = np.load(out + ".npy")
    (runtime,) = session.run(["embedding"], {"input": images})
    error = float(np.abs(runtime - gpu).max())
    print(f"onnxruntime {ort.__version__}: {args.images} inputs {list(shape)}, embedding {runtime.shape[1]} values, "
          f"max abs difference to the GPU {error:.2e} (tolerance {args.tolerance:g})")
    return 0 if error <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
