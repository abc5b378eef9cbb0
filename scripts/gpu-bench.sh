#!/usr/bin/env bash
# Runs the prebuilt benchmark report on a machine with a real Vulkan GPU (NVIDIA), with no
# network there: nothing is compiled or downloaded on that machine.
#
# Prepare where cargo and the network are (x86-64 Linux):
#   cargo build --release --example bench_report
#   mkdir -p .gpu && cp target/release/examples/bench_report .gpu/
#   strip .gpu/bench_report
#   # Vulkan loader and the GL dispatch libraries NVIDIA's Vulkan driver links against, for a
#   # bare machine (Debian packages, unpacked there):
#   (cd .gpu && apt-get download libvulkan1 libglvnd0 libegl1 libgl1 libglx0 libopengl0 libgles2)
# Then on the GPU machine, from the repository root:
#   scripts/gpu-bench.sh [extra bench_report arguments, e.g. --peer-device cuda]
# It prints the same tables as BENCHMARKS.md and writes them to ${OUT:-.}/BENCHMARKS-gpu.md.
# The GEMM tile configurations the tuner measures there go to ${OUT:-.}/tuning.json; copied
# to .gpu/tuning.json, they are read by the next call instead of measured again.
set -euo pipefail
cd "$(dirname "$0")/.."
export CENTERLOSS_TUNE_CACHE="${CENTERLOSS_TUNE_CACHE:-${OUT:-.}/tuning.json}"
if [ -f .gpu/tuning.json ] && [ ! -f "$CENTERLOSS_TUNE_CACHE" ]; then
    cp .gpu/tuning.json "$CENTERLOSS_TUNE_CACHE"
fi
# The Vulkan set-up and the binary's lookup (.gpu/, else target/) are scripts/gpu-run.sh's.
# PyTorch is rarely on such a machine; the peers then say so and the tables leave them out.
exec scripts/gpu-run.sh bench_report --out "${OUT:-.}/BENCHMARKS-gpu.md" "$@"
