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
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.gpu/bench_report
[ -x "$bin" ] || bin=target/release/examples/bench_report
if [ ! -x "$bin" ]; then
    echo "gpu-bench: no prebuilt bench_report (see the top of this script)" >&2
    exit 1
fi
if ! ldconfig -p | grep -q 'libGLdispatch\.so\.0' || ! ldconfig -p | grep -q 'libvulkan\.so\.1'; then
    for deb in .gpu/*.deb; do
        [ -e "$deb" ] && dpkg -x "$deb" /
    done
    ldconfig
fi
# NVIDIA's driver manifest, where the container runtime puts it.
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
    if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ]; then
        export VK_DRIVER_FILES="$icd"
    fi
done
export WGPU_BACKEND="${WGPU_BACKEND:-vulkan}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
# PyTorch is rarely on such a machine; the peers then say so and the tables leave them out.
"$bin" --out "${OUT:-.}/BENCHMARKS-gpu.md" "$@"
