#!/usr/bin/env bash
# On the GPU machine (device tool: `bash benches/gpu_run.sh`, carry [".device", ".gl"],
# after benches/gpu_bundle.sh here): the GPU tests on the real driver, the GPU bench, a
# matmul tile sweep and JAX's side of the same workloads, into $OUT (8 files at most):
# info.txt, tests.log, ferrax.jsonl, sweep.txt, jax.jsonl, jax.err, table.txt.
# About 2 minutes on an H200. SWEEP=0 skips the sweeps (matmul tiles, submission sizes,
# elements per thread, K splits).
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/ferrax_gpu_out}
mkdir -p "$OUT"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
source .device/setup.sh
for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
  [ -e "$f" ] && export VK_DRIVER_FILES=$f && break
done
B=$(ls .device/bin/gpu-* | head -1)
{ date; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
  echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"; } > "$OUT/info.txt" 2>&1
if "$B" --bench scale_1K 2>&1 | tee -a "$OUT/info.txt" | grep -q skipped; then
  VK_LOADER_DEBUG=error,warn,driver "$B" --bench scale_1K 2>&1 | head -60 >> "$OUT/info.txt"
  cat "$OUT/info.txt"; exit 1
fi
export FERRAX_REQUIRE_GPU=1
{ T0=$SECONDS
  timeout 60 .device/tests/ferrax_runtime-* gpu:: --test-threads 4
  timeout 90 .device/tests/gpu-*
  for t in .device/bin/gpu_grad-* .device/bin/gpu_activity-*; do timeout 60 "$t" --nocapture; done
  echo "tests took $((SECONDS-T0)) s"; } > "$OUT/tests.log" 2>&1
T0=$SECONDS
timeout 150 "$B" --bench > "$OUT/ferrax.jsonl" 2>> "$OUT/info.txt"
echo "bench took $((SECONDS-T0)) s" >> "$OUT/info.txt"
# the host's part of the MLP step: with the NVIDIA driver, then with the noop adapter
"$B" --host 2>> "$OUT/info.txt"
WGPU_BACKEND=noop WGPU_NOOP_BACKEND=1 "$B" --host 2>> "$OUT/info.txt"
# where the GPU's time goes, per kernel (timestamp queries; into info.txt)
FERRAX_GPU_PROFILE=1 BENCH_SECONDS=0.5 timeout 60 "$B" --bench mlp tanh_affine_64M matmul_1024 softmax sum_16M \
  2>> "$OUT/info.txt" > /dev/null
if [ "${SWEEP:-1}" != 0 ]; then
  T0=$SECONDS
  for t in 128,128,8,8,8,sd 128,128,16,8,8,s 64,128,8,4,8,sd 64,64,16,4,4 32,32,8,4,4,sd 32,32,8,4,4; do
    echo "# $t"; FERRAX_GPU_MATMUL_TILE=$t BENCH_SECONDS=0.5 timeout 25 "$B" --bench matmul mlp
  done > "$OUT/sweep.txt" 2>&1
  # submitting while the host records: the MLP step with a submission every n dispatches
  for n in 2 4 8 16 256; do
    echo "# FERRAX_GPU_BATCH=$n"; FERRAX_GPU_BATCH=$n BENCH_SECONDS=0.5 timeout 25 "$B" --bench mlp_step
  done >> "$OUT/sweep.txt" 2>&1
  # elements per thread of the elementwise kernels
  for e in 1 2 4 8; do
    echo "# FERRAX_GPU_PER_THREAD=$e"; FERRAX_GPU_PER_THREAD=$e BENCH_SECONDS=0.5 timeout 25 "$B" --bench tanh_affine
  done >> "$OUT/sweep.txt" 2>&1
  # small products split along K (the most slices; 1 never splits)
  for s in 1 2 4 8; do
    echo "# FERRAX_GPU_SPLIT_K=$s"; FERRAX_GPU_SPLIT_K=$s BENCH_SECONDS=0.5 timeout 25 "$B" --bench mlp_step
  done >> "$OUT/sweep.txt" 2>&1
  echo "sweep took $((SECONDS-T0)) s" >> "$OUT/info.txt"
fi
T0=$SECONDS
mkdir -p /tmp/jaxside # not in the working directory: a file named jax.py would shadow JAX
"$B" --jax-script > /tmp/jaxside/side.py
PYTHONUNBUFFERED=1 timeout 120 python3 /tmp/jaxside/side.py > "$OUT/jax.jsonl" 2> "$OUT/jax.err"
echo "jax took $((SECONDS-T0)) s" >> "$OUT/info.txt"
python3 benches/table.py "$OUT/ferrax.jsonl" "$OUT/jax.jsonl" > "$OUT/table.txt" 2>&1
cat "$OUT/info.txt" "$OUT/table.txt"
grep -E '^test result|FAILED|panicked' "$OUT/tests.log"
