# Does LeNet++ diverge at lr 0.05 with He-normal init in PyTorch too? Softmax only, the first
# 8 000 t10k images, batch 64, SGD momentum 0.9, weight decay 5e-4, 40 steps per init.
# python3 scripts/lenet_init.py he torch xavier   (MNIST=../shared/data/mnist by default)
import gzip, math, os, struct, sys

import torch
import torch.nn as nn
torch.set_num_threads(1)
def idx(path):
    data = gzip.open(path).read()
    magic, n = struct.unpack('>II', data[:8])
    if magic == 2051:
        r, c = struct.unpack('>II', data[8:16]); return torch.tensor(list(data[16:]), dtype=torch.float32).view(n, 1, r, c)
    return torch.tensor(list(data[8:]), dtype=torch.long)
root = os.environ.get('MNIST', '../shared/data/mnist') + '/'

files = os.listdir(root)
img = [f for f in files if 'images' in f][0]; lab = [f for f in files if 'labels' in f][0]
x = (idx(root + img)[:8000] - 127.5) / 128.0
y = idx(root + lab)[:8000]
def lenet():
    conv = lambda i, o: nn.Conv2d(i, o, 5, 1, 2)
    return nn.Sequential(conv(1, 32), nn.PReLU(32), conv(32, 32), nn.PReLU(32), nn.MaxPool2d(2, 2),
        conv(32, 64), nn.PReLU(64), conv(64, 64), nn.PReLU(64), nn.MaxPool2d(2, 2),
        conv(64, 128), nn.PReLU(128), conv(128, 128), nn.PReLU(128), nn.MaxPool2d(3, 2),
        nn.Flatten(), nn.Linear(128 * 3 * 3, 2), nn.PReLU(2)), nn.Linear(2, 10, bias=False)
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
    trunk, head = lenet(); init(trunk, head, kind)
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
