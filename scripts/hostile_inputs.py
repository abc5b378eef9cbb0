#!/usr/bin/env python3
"""Runs the `centerloss` command on hostile files and careless options, one process each, and
prints a Markdown table: the exit code, the peak resident memory, the seconds, and the last
line the command printed. Every case must end in exit 0 (a valid input), 1 (`error: ...`) or
2 (an option refused by clap), under 1 GiB and without a hang (a case over --timeout seconds
is killed and reported as a hang).

    cargo build --release && python3 scripts/hostile_inputs.py [--bin target/release/centerloss]

It trains a tiny model first (a few seconds on lavapipe). Python's standard library only.
"""

import argparse
import base64
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time


# A 48 x 48 grey JPEG of a Yale face (802 bytes), written by the image crate.
FACE_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAgAAAQABAAD/wAALCAAwADABAREA/9sAQwAIBgYHBgUIBwcHCQkICgwUDQwLCwwZEhMPFB0aHx4dGhwc"
    "ICQuJyAiLCMcHCg3KSwwMTQ0NB8nOT04MjwuMzQy/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgED"
    "AwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RF"
    "RkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJ"
    "ytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/9oACAEBAAA/APffLT+4v5UeWn9xfyrkvFfjzTfDEUkaDzrpRyi/dU+5"
    "/pXEWXxR1LUJ2lhuokH/AD7vHwPx616R4Z8Wad4mgf7LKPtMIHnRd1P9RW9RWR4ovZdO8L6ldw58yKBmUjqOOteF6FbSeJop"
    "pLqQtCvIzySx61WutKjglklhUjy/lbFReE9VOheL7GeKYr5kyrKu7AZWOCDX0zRXPeOvM/4QbWfK++bVwMV4d4W1uDw14bku"
    "bm3lmaWQiNUHZeCfzq9ceIdPtLWPUru0mW3v8+XhQehwcVx10Y38WWrWZLW87I0eR7+lfWi8KPpS02SNJo2jkUOjDDKRkEV5"
    "jbTaFo2nzafqdnHJMsj+XEB3LE4rKXX/AAvqNxZ2c8XmRwBxJGIyvl/MeQe1PsvD+j6x4+0uSzhYWdqryAoe6kFc/jXsWaKK"
    "8i8a6IG1y8giaSOeYC4hn6kHncB7VxUWlaq1yI5bxkXrI5hGXA969T+GtjGIL2+SMrEX8qE+qjqR+OK73OKTzov+eif99CmS"
    "3dvDG0kk0aooySWFeS+MtVk1S8N/YSKslqSItp5Kj1ri7rxtrd/D9kkdCHG3hecf0r2fwJf2Z8MWdmk8fn26bZELYOc9a6fz"
    "oj/y0T/voV//2Q=="
)


def run(argv, timeout):
    """(exit code or 'hang', peak RSS in MiB, seconds, last line of output)."""
    start = time.time()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "RUST_LOG": "warn"})
    out = b""
    os.set_blocking(proc.stdout.fileno(), False)
    while True:
        chunk = proc.stdout.read()
        if chunk:
            out += chunk
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            out += proc.stdout.read() or b""
            code = os.waitstatus_to_exitcode(status)
            break
        if time.time() - start > timeout:
            proc.kill()
            _, _, usage = os.wait4(proc.pid, 0)
            code = "hang"
            break
        time.sleep(0.02)
    lines = [l for l in out.decode("utf-8", "replace").splitlines() if l.strip()]
    last = lines[-1] if lines else ""
    if last.startswith("For more information"):  # clap's usage hint after its error line
        last = next((l for l in lines if l.startswith("error:")), last)
    return code, usage.ru_maxrss / 1024, time.time() - start, last


def pickle_deep():
    return b"\x80\x02)" + b"\x85" * 200_000 + b"."


def pickle_memo(image_bytes, references):
    """A list of one memoised image and `references` references back to it, then flags."""
    out = b"\x80\x02](T" + struct.pack("<I", image_bytes) + b"\x07" * image_bytes + b"q\x01"
    out += b"h\x01" * references + b"e]" + b"\x88" * ((references + 1) // 2) + b"e\x86."
    return out


def npy(header, data=b""):
    h = header.encode()
    pad = (-(10 + len(h) + 1)) % 64
    h += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + data


def safetensors_with(model, network):
    """The tiny model's file with its `network` entry replaced (one tensor kept)."""
    raw = open(model, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header["__metadata__"]
    meta["network"] = json.dumps(network)
    preprocessing = json.loads(meta["preprocessing"])
    preprocessing["input"] = network["input"]
    meta["preprocessing"] = json.dumps(preprocessing)
    new = {"__metadata__": meta, "step": {"dtype": "U64", "shape": [1], "data_offsets": [0, 8]}}
    text = json.dumps(new).encode()
    return struct.pack("<Q", len(text)) + text + b"\0" * 8


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", default="target/release/centerloss")
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = p.parse_args()
    exe = os.path.abspath(args.bin)
    t = tempfile.mkdtemp(prefix="centerloss-hostile-")
    j = lambda *parts: os.path.join(t, *parts)
    small = ["--identities", "6", "--eval-identities", "4", "--images-per-identity", "6", "--resolution", "32"]
    code, *_ = run([exe, "faces", "--steps", "4", "--batch", "8", "--embed-dim", "16", "--out", j("model")] + small,
                   600)
    run([exe, "faces", "--write-folder", j("folder")] + small, 60)
    run([exe, "faces", "--write-rec", j("pack")] + small, 60)
    model = j("model", "center.safetensors")
    if code != 0 or not os.path.exists(model):
        sys.exit("could not train the tiny model")
    img_a, img_b = j("folder", "id00007", "001.png"), j("folder", "id00007", "002.png")

    open(j("deep.bin"), "wb").write(pickle_deep())
    open(j("memo.bin"), "wb").write(pickle_memo(1 << 20, 2000))
    open(j("memo4.bin"), "wb").write(pickle_memo(4 << 20, 4000))
    open(j("huge.npy"), "wb").write(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (%d, 128), }" % (1 << 57)))
    open(j("extra-key.npy"), "wb").write(
        npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 16), 'x': 1}", b"\0" * 64))
    os.makedirs(j("idx-wrap"))
    dims = struct.pack(">III", 1 << 22, 1 << 22, 1 << 22)
    open(j("idx-wrap", "t10k-images-idx3-ubyte"), "wb").write(b"\0\0\x08\x03" + dims)
    open(j("idx-wrap", "t10k-labels-idx1-ubyte"), "wb").write(b"\0\0\x08\x01\0\0\0\x01\x03")
    os.makedirs(j("zero-mnist"))
    os.symlink("/dev/zero", j("zero-mnist", "t10k-images-idx3-ubyte"))
    open(j("zero-mnist", "t10k-labels-idx1-ubyte"), "wb").write(b"\0\0\x08\x01\0\0\0\x01\x03")
    os.makedirs(j("bomb-mnist"))
    with gzip.open(j("bomb-mnist", "t10k-images-idx3-ubyte.gz"), "wb", compresslevel=9) as f:
        f.write(b"\0\0\x08\x03" + struct.pack(">III", 10000, 28, 28))
        zeros = b"\0" * (1 << 24)
        for _ in range(256):  # 4 GiB of zeros after a header that declares 7.8 MB
            f.write(zeros)
    shutil.copy(j("idx-wrap", "t10k-labels-idx1-ubyte"), j("bomb-mnist"))
    os.mkfifo(j("fifo.bin"))
    os.mkfifo(j("fifo.png"))
    jpeg = j("half.jpg")
    open(jpeg, "wb").write(FACE_JPEG[:len(FACE_JPEG) // 2])
    for name, labels in [("pack-labels", (1e30, 3e30))]:
        shutil.copytree(j("pack"), j(name))
        rec = bytearray(open(j(name, "train.rec"), "rb").read())
        offsets = [int(l.split()[1]) for l in open(j(name, "train.idx")) if l.split()[0] in ("1", "2")]
        for off, label in zip(sorted(offsets), labels):
            rec[off + 12:off + 16] = struct.pack("<f", label)
        open(j(name, "train.rec"), "wb").write(rec)
    face = json.loads(json.dumps({"input": [1, 32, 32], "trunk": [], "num_classes": 6, "classifier_bias": True,
                                  "init": "HeNormal"}))
    conv = lambda c: {"Conv2d": {"out_channels": c, "kernel": 3, "stride": 1, "pad": 1, "bias": True}}
    specs = {
        "2^62 channels": dict(face, trunk=[conv(1 << 62)]),
        "a 2^32 x 2^32 input": dict(face, input=[1, 1 << 32, 1 << 32], trunk=[conv(4)]),
        "10^9 channels": dict(face, trunk=[conv(10 ** 9)]),
        "a 10^9-wide linear layer": dict(face, trunk=[{"Linear": {"out_features": 10 ** 9, "bias": True}}]),
        "5x10^7 channels": dict(face, trunk=[conv(5 * 10 ** 7)]),
    }
    hostile_models = {}
    for i, (what, spec) in enumerate(specs.items()):
        path = j(f"hostile{i}.safetensors")
        open(path, "wb").write(safetensors_with(model, spec))
        hostile_models[what] = path
    # Outputs that are inputs: copies, so that a failure shows as a changed file.
    shutil.copy(model, j("m.safetensors"))
    run([exe, "embed", "--model", model, j("folder"), "--out", j("g")], 120)
    os.makedirs(j("odd", "id"))
    shutil.copy(img_a, j("odd", "id", "two\nlines.png"))
    shutil.copy(img_b, j("odd", "id", b"caf\xe9.png".decode("utf-8", "surrogateescape")))
    shutil.copy(img_b, j("odd", "id", "plain.png"))
    open(j("afile"), "w").write("a file")
    open(j("empty-pairs.txt"), "w").write("0\n")

    M = j("m.safetensors")
    cases = [
        ("a .bin nesting 200 000 levels (verify --bin)", ["verify", "--model", M, "--bin", j("deep.bin")]),
        ("a .bin nesting 200 000 levels (faces --eval-bin)", ["faces", "--eval-bin", j("deep.bin"), "--steps", "1"] + small),
        ("1 MB .bin: a 1 MiB image referenced 2 000 times", ["verify", "--model", M, "--bin", j("memo.bin")]),
        ("4 MB .bin asking for 16 GiB through the memo", ["verify", "--model", M, "--bin", j("memo4.bin")]),
        (".npy of shape (2^57, 128) and no data (search)", ["search", "--model", M, "--gallery", j("huge.npy"), "--probe", img_a]),
        (".npy of shape (2^57, 128) and no data (embed)", ["embed", "--model", M, j("huge.npy"), "--out", j("e1")]),
        (".npy header with a key numpy refuses", ["search", "--model", M, "--gallery", j("extra-key.npy"), "--probe", img_a]),
        ("IDX dimensions whose product wraps", ["mnist", "--data", j("idx-wrap")]),
        ("/dev/zero as MNIST", ["mnist", "--data", j("zero-mnist")]),
        ("gzip bomb as MNIST (4 GiB of zeros)", ["mnist", "--data", j("bomb-mnist")]),
    ]
    for what, path in hostile_models.items():
        cases.append((f"model spec: {what} (export)", ["export", "--model", path, "--onnx", j("h.onnx")]))
    cases.append(("model spec: 2^62 channels (verify)", ["verify", "--model", hostile_models["2^62 channels"], img_a, img_b]))
    for opt in [["--resolution", "0"], ["--images-per-identity", "0"], ["--difficulty", "NaN"], ["--difficulty=-1"],
                ["--resolution", "100000"], ["--embed-dim", "1000000000"], ["--prefetch-batches", "1000000000"],
                ["--test-identities", "0"], ["--test-identities", "NaN"], ["--test-identities=-1"],
                ["--eval-identities", "0"], ["--devices", "0"], ["--in-memory-max", "17592186044416"],
                ["--resolution", "4096"], ["--embed-dim", "65536"]]:
        cases.append((f"faces {' '.join(opt)}", ["faces", "--steps", "1", "--out", j("o")] + opt))
    cases += [
        ("export --onnx = --model", ["export", "--model", M, "--onnx", M]),
        ("embed --out = --model", ["embed", "--model", M, j("folder"), "--out", M]),
        ("search --out = --gallery", ["search", "--model", M, "--gallery", j("g.npy"), "--probe", img_a, "--out", j("g.npy")]),
        ("faces --write-rec onto an existing pack", ["faces", "--write-rec", j("pack")] + small),
        ("verify --threshold NaN", ["verify", "--model", M, "--threshold", "NaN", img_a, img_b]),
        ("verify --pairs with an empty list", ["verify", "--model", M, "--pairs", j("empty-pairs.txt"), "--data", j("folder")]),
        ("pack labels 1e30 and 3e30", ["faces", "--data", j("pack-labels"), "--steps", "1", "--out", j("o")]),
        ("a FIFO as --bin", ["verify", "--model", M, "--bin", j("fifo.bin")]),
        ("a FIFO as an image", ["verify", "--model", M, j("fifo.png"), img_a]),
        ("--report-json into a file's folder", ["faces", "--report-json", j("afile", "r.json")] + small),
        ("embed --out afile/emb", ["embed", "--model", M, j("folder"), "--out", j("afile", "emb")]),
        ("names with a line break and non-UTF-8 bytes (embed)", ["embed", "--model", M, j("odd"), "--out", j("odd-emb")]),
        ("... read back by search", ["search", "--model", M, "--gallery", j("odd-emb.npy"),
                                     "--probe", j("odd", "id", "two\nlines.png"), "--top-k", "2"]),
    ]
    cases.append(("a JPEG cut in half (verify)", ["verify", "--model", M, jpeg, img_a]))
    before = {p: open(p, "rb").read() for p in [M, j("g.npy")]}
    print("| case | exit | peak RSS (MiB) | seconds | last line |\n|---|---|---|---|---|")
    bad = 0
    for what, argv in cases:
        code, rss, secs, last = run([exe] + argv, args.timeout)
        ok = code in (0, 1, 2) and rss < 1024
        bad += not ok
        last = last.replace(t, "T").replace("|", "\\|")[:160]
        print(f"| {what} | {code} | {rss:.0f} | {secs:.1f} | {'' if ok else '**FAIL** '}{last} |".replace("\n", " "))
    for p, data in before.items():
        if open(p, "rb").read() != data:
            bad += 1
            print(f"**FAIL**: {p} was overwritten")
    from_pack = subprocess.run([exe, "embed", "--model", M, j("pack"), "--out", j("pack-emb")], capture_output=True)
    print(f"\nthe pack reads after --write-rec over it: exit {from_pack.returncode}")
    if not args.keep:
        shutil.rmtree(t, ignore_errors=True)
    else:
        print(f"kept {t}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
