#!/usr/bin/env bash
# Runs a prebuilt binary (from .gpu/, see scripts/gpu-bench.sh for how to prepare it) on a
# machine with a real Vulkan GPU and no network: unpacks the Vulkan loader and GL dispatch
# libraries when missing, points the loader at NVIDIA's manifest, then runs
#   scripts/gpu-run.sh collective_report --out $OUT/BENCHMARKS-collective-gpu.md
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1
shift
bin=.gpu/$name
[ -x "$bin" ] || bin=target/release/examples/$name
if [ ! -x "$bin" ]; then
    echo "gpu-run: no prebuilt $name in .gpu/ or target/release/examples/ (see scripts/gpu-bench.sh)" >&2
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
exec "$bin" "$@"
