# Does LeNet++ diverge at lr 0.05 with He-normal init in PyTorch too? Softmax only, the first
# 8 000 t10k images, batch 64, SGD momentum 0.9, weight decay 5e-4, 40 steps per init.
# python3 scripts/lenet_init.py he torch xavier   (MNIST=data/mnist by default)
import math, os, sys

import torch
import torch.nn as nn

from lenet_common import lenet_plus_plus, t10k

torch.set_num_threads(1)
x, y = t10k(os.environ.get('MNIST', 'data/mnist'))
x, y = x[:8000], y[:8000]


def init(trunk, head, kind):
    for m in trunk.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            if kind == 'he': nn.init.normal_(m.weight, 0, math.sqrt(2 / fan_in))
            elif kind == 'xavier': b = math.sqrt(3 / fan_in); nn.init.uniform_(m.weight, -b, b)
            if kind != 'torch': nn.init.zeros_(m.bias)
    if kind != 'torch':
        b = math.sqrt(6 / (2 + 10)); nn.init.uniform_(head.weight, -b, b)
for kind in sys.argv[1:]:
    torch.manual_seed(1)
    trunk, head = lenet_plus_plus(); init(trunk, head, kind)
    params = list(trunk.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4)
    g = torch.Generator().manual_seed(1); order = torch.randperm(8000, generator=g)
    with torch.no_grad():
        f = trunk(x[order[:64]]); print(kind, 'init: feature std %.3g, logit std %.3g' % (f.std(), head(f).std()), flush=True)
    losses = []
    for step in range(40):
        b = order[(step * 64) % 8000:(step * 64) % 8000 + 64]
        loss = nn.functional.cross_entropy(head(trunk(x[b])), y[b])
        opt.zero_grad(); loss.backward(); opt.step(); losses.append(loss.item())
        if not math.isfinite(loss.item()): break
    print(kind, ' '.join('%.3g' % l for l in losses), flush=True)
