#!/usr/bin/env python3
"""The verification benchmarks' standard accuracy as insightface's arcface_torch computes it
(eval/verification.py: calculate_roc's accuracy with KFold(10, shuffle=False) and
thresholds np.arange(0, 4, 0.01)), on pair distances given as a float32 .npy of [n, 2]
rows (squared distance, 1.0 where the pair shows one person else 0.0); in float64.
Prints JSON: accuracy (mean over folds), std, and each fold's threshold.

    python3 scripts/verification_reference.py pairs.npy

tests/benchmark.rs runs it when numpy is present, and otherwise compares with the values it
printed for the test's fixed input, recorded in the test.
"""

import json
import sys

import numpy as np


def kfold(n, folds):
    """sklearn.model_selection.KFold(folds, shuffle=False).split: contiguous test folds."""
    sizes = np.full(folds, n // folds, dtype=int)
    sizes[: n % folds] += 1
    start = 0
    for size in sizes:
        test = np.arange(start, start + size)
        train = np.setdiff1d(np.arange(n), test)
        yield train, test
        start += size


def accuracy(threshold, dist, same):
    predict = np.less(dist, threshold)
    tp = np.sum(np.logical_and(predict, same))
    tn = np.sum(np.logical_and(np.logical_not(predict), np.logical_not(same)))
    return float(tp + tn) / dist.size


def main():
    rows = np.load(sys.argv[1]).astype(np.float64)
    dist, same = rows[:, 0], rows[:, 1] > 0.5
    thresholds = np.arange(0, 4, 0.01)
    accuracies, chosen = [], []
    for train, test in kfold(len(dist), 10):
        train_acc = np.array([accuracy(t, dist[train], same[train]) for t in thresholds])
        best = thresholds[int(np.argmax(train_acc))]
        chosen.append(float(best))
        accuracies.append(accuracy(best, dist[test], same[test]))
    print(json.dumps({"accuracy": float(np.mean(accuracies)), "std": float(np.std(accuracies)), "thresholds": chosen}))


if __name__ == "__main__":
    main()
