# What scripts/lenet_init.py and scripts/lenet_recipe.py share: MNIST's t10k IDX files
# (gzipped or raw) as tensors, and LeNet++ (the paper's MNIST network) as PyTorch modules.
import gzip, os, struct

import torch
import torch.nn as nn


def idx(path):
    """One IDX file: images as float [n, 1, rows, cols] in 0..255, labels as long [n]."""
    data = (gzip.open if path.endswith('.gz') else open)(path, 'rb').read()
    magic, n = struct.unpack('>II', data[:8])
    if magic == 2051:
        r, c = struct.unpack('>II', data[8:16])
        return torch.frombuffer(bytearray(data[16:]), dtype=torch.uint8).float().view(n, 1, r, c)
    return torch.frombuffer(bytearray(data[8:]), dtype=torch.uint8).long()


def t10k(root):
    """The t10k images scaled as mnist_2d scales them, (x - 127.5) / 128, and the labels."""
    files = sorted(os.listdir(root))
    images = [f for f in files if f.startswith('t10k-images')][0]
    labels = [f for f in files if f.startswith('t10k-labels')][0]
    return (idx(os.path.join(root, images)) - 127.5) / 128.0, idx(os.path.join(root, labels))


def lenet_plus_plus():
    """LeNet++ as (trunk, head): conv 5x5 pad 2 + PReLU, 32, 32, pool, 64, 64, pool, 128, 128,
    pool 3/2, a 2-D feature + PReLU, and a 10-class head without bias (PyTorch's init)."""
    conv = lambda i, o: nn.Conv2d(i, o, 5, 1, 2)
    trunk = nn.Sequential(conv(1, 32), nn.PReLU(32), conv(32, 32), nn.PReLU(32), nn.MaxPool2d(2, 2),
                          conv(32, 64), nn.PReLU(64), conv(64, 64), nn.PReLU(64), nn.MaxPool2d(2, 2),
                          conv(64, 128), nn.PReLU(128), conv(128, 128), nn.PReLU(128), nn.MaxPool2d(3, 2),
                          nn.Flatten(), nn.Linear(128 * 3 * 3, 2), nn.PReLU(2))
    return trunk, nn.Linear(2, 10, bias=False)
