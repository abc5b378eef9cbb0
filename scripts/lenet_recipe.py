# mnist_2d's recipe replicated in PyTorch, to choose its defaults in minutes rather than hours:
# LeNet++ (fan-in uniform weights, zero biases), the first 8 000 t10k images train and the last
# 2 000 test, batch 64, SGD momentum 0.9, weight decay 5e-4 on weights only, the rate divided by
# 10 at 60% and 85% of training, a random 28x28 crop of the image padded by 2, softmax + center
# loss (lambda, alpha 0.5, the paper's update). Prints the test accuracy after every epoch.
# The defaults are mnist_2d's: lr 0.1, 5 epochs, the gradients' global L2 norm clipped to 1.
#   python3 scripts/lenet_recipe.py --lam 0.01 --seed 1
# Options: --clip C (0: no clipping), --warmup N (linear warm-up steps), --torch-bias
# (PyTorch's bias init), --no-augment.
import argparse, math, os, time

import torch
import torch.nn as nn

from lenet_common import lenet_plus_plus, t10k

p = argparse.ArgumentParser()
p.add_argument('--lr', type=float, default=0.1)
p.add_argument('--epochs', type=int, default=5)
p.add_argument('--lam', type=float, default=0.0)
p.add_argument('--seed', type=int, default=1)
p.add_argument('--batch', type=int, default=64)
p.add_argument('--warmup', type=int, default=0)
p.add_argument('--torch-bias', action='store_true')
p.add_argument('--no-augment', action='store_true')
p.add_argument('--clip', type=float, default=1.0)
p.add_argument('--mnist', default=os.environ.get('MNIST', 'data/mnist'))
a = p.parse_args()
torch.set_num_threads(os.cpu_count())


x, y = t10k(a.mnist)
xtr, ytr, xte, yte = x[:8000], y[:8000], x[8000:], y[8000:]
torch.manual_seed(a.seed)
trunk, head = lenet_plus_plus()
for m in trunk.modules():
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        bound = 1 / math.sqrt(m.weight[0].numel())
        nn.init.uniform_(m.weight, -bound, bound)
        if not a.torch_bias:
            nn.init.zeros_(m.bias)
bound = math.sqrt(6 / 12)
nn.init.uniform_(head.weight, -bound, bound)
named = list(trunk.named_parameters()) + list(head.named_parameters())
weights = [p for n, p in named if n.endswith('weight') and p.dim() > 1]
others = [p for n, p in named if not (n.endswith('weight') and p.dim() > 1)]
opt = torch.optim.SGD([{'params': weights, 'weight_decay': 5e-4}, {'params': others, 'weight_decay': 0.0}],
                      lr=a.lr, momentum=0.9)
B = a.batch
steps = a.epochs * (8000 // B)
milestones = [int(steps * 0.6), int(steps * 0.85)]
centers = torch.zeros(10, 2)
g = torch.Generator().manual_seed(a.seed)
t0, step = time.time(), 0
tag = 'lr %g lambda %g seed %d' % (a.lr, a.lam, a.seed) + (' clip %g' % a.clip if a.clip > 0 else '')
for epoch in range(a.epochs):
    order = torch.randperm(8000, generator=g)
    for i in range(8000 // B):
        ramp = min(1.0, (step + 1) / a.warmup) if a.warmup else 1.0
        for group in opt.param_groups:
            group['lr'] = a.lr * 0.1 ** sum(step >= m for m in milestones) * ramp
        b = order[i * B:(i + 1) * B]
        xb = nn.functional.pad(xtr[b], (2, 2, 2, 2), value=0.0)
        dx, dy = torch.randint(0, 5, (2,), generator=g).tolist()  # drawn either way: same batches
        if a.no_augment:
            dx, dy = 2, 2
        xb, yb = xb[:, :, dy:dy + 28, dx:dx + 28], ytr[b]
        f = trunk(xb)
        loss = nn.functional.cross_entropy(head(f), yb)
        if a.lam > 0:
            loss = loss + a.lam * 0.5 * ((f - centers[yb]) ** 2).sum() / B
        opt.zero_grad()
        loss.backward()
        if a.clip > 0:
            nn.utils.clip_grad_norm_(weights + others, a.clip)
        opt.step()
        step += 1
        if a.lam > 0:
            with torch.no_grad():
                delta = torch.zeros_like(centers).index_add_(0, yb, centers[yb] - f.detach())
                count = torch.bincount(yb, minlength=10).float().unsqueeze(1)
                centers -= 0.5 * delta / (1 + count)
        if not math.isfinite(loss.item()):
            print('%s: diverged at step %d' % (tag, step), flush=True)
            raise SystemExit(1)
    with torch.no_grad():
        acc = (head(trunk(xte)).argmax(1) == yte).float().mean().item()
    print('%s: epoch %d, loss %.3f, test %.2f%% (%.0f s)' % (tag, epoch + 1, loss.item(), 100 * acc, time.time() - t0),
          flush=True)
