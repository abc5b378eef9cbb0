#!/usr/bin/env python3
"""Center-loss step in PyTorch (CPU or CUDA), the peers of `centerloss`'s GPU step.

Two formulations, timed on the same shapes as the Rust benchmarks:
  distmat  the widely used one: a full B x K distance matrix, centers learned by a separate
           SGD optimizer with the 1/lambda gradient rescaling (O(B*K*D) per step)
  indexed  the best plain-PyTorch form of the paper's rule: index_select for the gather,
           unique + index_add_ for the per-class average update (O(B*D) per step)

Prints a table, or JSON lines with --json. Exits 0 (saying so) when torch is missing.
--device cuda times the same code on the GPU (synchronised around each step).
--search ROWS,DIM,PROBES,K times 1:N search instead: numpy (probes @ gallery.T, then
argpartition and a sort of the k best) and, where torch is installed, torch.topk on --device.
--gemm N,N,... times torch.mm on N x N f32 matrices instead (cuBLAS on CUDA), with TF32
off and with torch's defaults; --trainer on CUDA times both settings too (our kernels
compute in f32, so TF32 off is the like-for-like peer).
"""
import argparse
import json
import statistics
import sys
import time

SHAPES_B = [128, 512, 2048]
SHAPES_D = [2, 128, 512]
SHAPES_K = [10, 10575, 100000]


def distmat_step(torch, x, labels, centers, opt, lam, num_classes):
    # The popular implementation (a B x K distance matrix, masked).
    b = x.size(0)
    distmat = x.pow(2).sum(dim=1, keepdim=True).expand(b, num_classes) + \
        centers.pow(2).sum(dim=1, keepdim=True).expand(num_classes, b).t()
    distmat = torch.addmm(distmat, x, centers.t(), beta=1, alpha=-2)
    classes = torch.arange(num_classes, device=x.device)
    mask = labels.unsqueeze(1).expand(b, num_classes).eq(classes.expand(b, num_classes))
    dist = distmat * mask.float()
    loss = lam * dist.clamp(min=1e-12, max=1e12).sum() / b
    opt.zero_grad()
    if x.grad is not None:
        x.grad = None
    loss.backward()
    centers.grad.data *= 1.0 / lam  # the popular rescaling, so the centers' rate is alpha
    opt.step()
    return loss.item(), x.grad


def indexed_step(torch, x, labels, centers, lam, alpha):
    # The paper's rule, O(B*D): gather, loss, gradient, per-class scatter-average update.
    b = x.size(0)
    with torch.no_grad():
        c = centers.index_select(0, labels)
        diff = x - c
        loss = lam * 0.5 * diff.pow(2).sum() / b
        grad = diff * (lam / b)
        uniq, inv = torch.unique(labels, return_inverse=True)
        counts = torch.bincount(inv, minlength=uniq.numel()).to(x.dtype)
        sums = torch.zeros(uniq.numel(), x.size(1), device=x.device).index_add_(0, inv, -diff)
        centers.index_add_(0, uniq, -alpha * sums / (1.0 + counts).unsqueeze(1))
    return loss.item(), grad


def min_bytes(b, d, distinct):
    """The least bytes a step moves (as the Rust harness counts them): read x, read the
    gathered centers, write the gradient, read and write each touched center row, read
    the labels."""
    return 4 * (3 * b * d + 2 * distinct * d + b)


def timed(torch, device, run, reps):
    """Median seconds of `reps` calls of `run` after one warm-up, synchronised on CUDA."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    run()
    sync()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def time_case(torch, device, kind, b, d, k, reps, lam=0.01, alpha=0.5):
    g = torch.Generator().manual_seed(0)
    x0 = (torch.rand(b, d, generator=g) * 2 - 1).to(device)
    labels = torch.randint(0, k, (b,), generator=g).to(device)
    distinct = int(torch.unique(labels).numel())
    if kind == "distmat":
        centers = torch.nn.Parameter(torch.zeros(k, d, device=device))
        opt = torch.optim.SGD([centers], lr=alpha)
        run = lambda: distmat_step(torch, x0.clone().requires_grad_(True), labels, centers, opt, lam, k)
    else:
        centers = torch.zeros(k, d, device=device)
        run = lambda: indexed_step(torch, x0, labels, centers, lam, alpha)
    return timed(torch, device, run, reps), min_bytes(b, d, distinct)


def lenet_plus_plus(torch):
    nn = torch.nn
    def conv(i, o):
        return [nn.Conv2d(i, o, 5, padding=2), nn.PReLU(o)]
    layers = conv(1, 32) + conv(32, 32) + [nn.MaxPool2d(2, 2)] + conv(32, 64) + conv(64, 64) + \
        [nn.MaxPool2d(2, 2)] + conv(64, 128) + conv(128, 128) + [nn.MaxPool2d(3, 2), nn.Flatten(),
                                                                nn.Linear(128 * 3 * 3, 2), nn.PReLU(2)]
    return nn.Sequential(*layers), 2, 10, (1, 28, 28)


def face_resnet(torch):
    """The same network as NetworkSpec::face_resnet(1, 64, 128, 150)."""
    nn = torch.nn

    class Unit(nn.Module):
        def __init__(self, w):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(w, w, 3, padding=1), nn.PReLU(w), nn.Conv2d(w, w, 3, padding=1), nn.PReLU(w))

        def forward(self, x):
            return x + self.body(x)

    layers = [nn.Conv2d(1, 16, 5, stride=2, padding=2), nn.PReLU(16), nn.MaxPool2d(2, 2), Unit(16)]
    for i, o in [(16, 32), (32, 64)]:
        layers += [nn.Conv2d(i, o, 3, stride=2, padding=1), nn.PReLU(o), Unit(o)]
    layers += [nn.Flatten(), nn.Linear(64 * 4 * 4, 128)]
    return nn.Sequential(*layers), 128, 150, (1, 64, 64)


def time_training(torch, device, make, batch, reps, lam=0.01, alpha=0.5):
    """Images per second of SGD steps on softmax + center loss (indexed form)."""
    net, dim, classes, shape = make(torch)
    net = net.to(device)
    head = torch.nn.Linear(dim, classes).to(device)
    opt = torch.optim.SGD(list(net.parameters()) + list(head.parameters()), lr=0.01, momentum=0.9, weight_decay=5e-4)
    centers = torch.zeros(classes, dim, device=device)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand((batch,) + shape, generator=g) * 2 - 1).to(device)
    y = torch.randint(0, classes, (batch,), generator=g).to(device)

    def step():
        opt.zero_grad()
        emb = net(x)
        loss = torch.nn.functional.cross_entropy(head(emb), y)
        c = centers.index_select(0, y)
        loss = loss + lam * 0.5 * (emb - c).pow(2).sum() / batch
        loss.backward()
        opt.step()
        with torch.no_grad():
            indexed_step(torch, emb.detach(), y, centers, lam, alpha)

    return batch / timed(torch, device, step, reps)


def precisions(torch, device):
    """The peer's precision settings to time: torch's defaults and, on CUDA, TF32 off
    (cuBLAS and cuDNN then compute in f32). Each is a name and a function that applies it."""
    defaults = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)

    def apply(matmul, cudnn):
        def set_flags():
            torch.backends.cuda.matmul.allow_tf32 = matmul
            torch.backends.cudnn.allow_tf32 = cudnn
        return set_flags

    settings = [("default", apply(*defaults))]
    if device.type == "cuda":
        settings.append(("tf32_off", apply(False, False)))
    return settings


def time_gemm(torch, device, n, reps):
    """GFLOP/s of torch.mm on n x n f32 matrices."""
    g = torch.Generator().manual_seed(0)
    a = torch.rand(n, n, generator=g).to(device)
    b = torch.rand(n, n, generator=g).to(device)
    return 2 * n ** 3 / timed(torch, device, lambda: torch.mm(a, b), reps) / 1e9


def search_peers(args, rows, dim, probes, k):
    """Median seconds of `probes` unit probes against `rows` unit gallery rows, top k each."""
    import numpy as np
    rng = np.random.default_rng(0)
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)
    gallery = unit(rng.standard_normal((rows, dim), dtype=np.float32))
    probe = unit(rng.standard_normal((probes, dim), dtype=np.float32))

    def numpy_search():
        scores = probe @ gallery.T
        best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, best, axis=1), axis=1)
        return np.take_along_axis(best, order, axis=1)

    numpy_search()
    times = []
    for _ in range(args.reps):
        start = time.perf_counter()
        numpy_search()
        times.append(time.perf_counter() - start)
    row = {"search": "numpy", "seconds": statistics.median(times), "numpy": np.__version__, "rows": rows, "dim": dim, "probes": probes, "k": k}
    print(json.dumps(row) if args.json else f"numpy {np.__version__}: {row['seconds']:.3f} s", flush=True)
    try:
        import torch
    except Exception:
        return 0
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        return 0
    g, p = torch.from_numpy(gallery).to(device), torch.from_numpy(probe).to(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    torch.topk(p @ g.T, k, dim=1)
    sync()
    times = []
    for _ in range(args.reps):
        start = time.perf_counter()
        torch.topk(p @ g.T, k, dim=1)
        sync()
        times.append(time.perf_counter() - start)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    row = {"search": "torch", "seconds": statistics.median(times), "torch": torch.__version__, "device": where}
    print(json.dumps(row) if args.json else f"PyTorch {torch.__version__} on {where}: {row['seconds']:.3f} s", flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--shapes", default=None, help="B,D,K;B,D,K;... (default: the full grid)")
    ap.add_argument("--trainer", action="store_true", help="time LeNet++ (batch 128) and the face network (batch 64) training instead")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the GPU peer, where torch sees one)")
    ap.add_argument("--max-distmat", type=float, default=3e10,
                    help="skip the distmat formulation above this many B*K*D (it takes minutes and GBs)")
    ap.add_argument("--search", default=None, help="ROWS,DIM,PROBES,K: time 1:N search (numpy, and torch where installed)")
    ap.add_argument("--gemm", default=None, help="N,N,...: time torch.mm on N x N f32 matrices instead")
    args = ap.parse_args()
    if args.search:
        return search_peers(args, *(int(v) for v in args.search.split(",")))
    try:
        import torch
    except Exception as e:  # torch missing or unloadable
        print(f"peers.py: PyTorch is not available ({e.__class__.__name__}: {e}); no peer figures.", file=sys.stderr)
        if args.json:
            print(json.dumps({"torch": None, "reason": str(e)}))
        return 0
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("peers.py: --device cuda but torch sees no CUDA device; no peer figures.", file=sys.stderr)
        if args.json:
            print(json.dumps({"torch": None, "reason": "no CUDA device"}))
        return 0
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    # Read torch's defaults once, before any setting changes them.
    settings = precisions(torch, device)
    if args.gemm:
        for n in (int(v) for v in args.gemm.split(",")):
            for precision, apply in settings:
                apply()
                gflops = time_gemm(torch, device, n, args.reps)
                row = {"gemm": n, "precision": precision, "gflops": gflops, "torch": torch.__version__, "device": where}
                print(json.dumps(row) if args.json else f"torch.mm {n}^3 ({precision}): {gflops:.1f} GFLOP/s", flush=True)
        settings[0][1]()
        return 0
    if args.trainer:
        for name, make, batch in [("lenet_plus_plus", lenet_plus_plus, 128), ("face_resnet", face_resnet, 64)]:
            for precision, apply in settings:
                apply()
                ips = time_training(torch, device, make, batch, args.reps)
                row = {"net": name, "batch": batch, "precision": precision, "images_per_second": ips,
                       "torch": torch.__version__, "device": where}
                text = f"{name} batch {batch} ({precision}): {ips:.1f} images/s (PyTorch {torch.__version__})"
                print(json.dumps(row) if args.json else text, flush=True)
        settings[0][1]()
        return 0
    if args.shapes:
        shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes.split(";")]
    else:
        shapes = [(b, d, k) for b in SHAPES_B for d in SHAPES_D for k in SHAPES_K]
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": where}
    if args.json:
        print(json.dumps(meta))
    else:
        print(f"PyTorch {meta['torch']} on {where} ({meta['threads']} CPU threads); median of {args.reps} steps")
        print("| formulation | B | D | K | ms/step | GB/s (min bytes) |")
        print("|---|---|---|---|---|---|")
    for (b, d, k) in shapes:
        for kind in ["distmat", "indexed"]:
            if kind == "distmat" and b * k * d > args.max_distmat:
                row = {"formulation": kind, "B": b, "D": d, "K": k, "seconds": None, "skipped": "B*K*D too large"}
            else:
                seconds, nbytes = time_case(torch, device, kind, b, d, k, args.reps)
                row = {"formulation": kind, "B": b, "D": d, "K": k, "seconds": seconds, "gbps": nbytes / seconds / 1e9}
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                s = row["seconds"]
                ms = "skipped" if s is None else f"{1e3 * s:.3f}"
                gbps = "" if s is None else f"{row['gbps']:.2f}"
                print(f"| {kind} | {b} | {d} | {k} | {ms} | {gbps} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
