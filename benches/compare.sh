#!/usr/bin/env bash
# Times the benchmark workloads in ferrax and in JAX (CPU), one after the other on this
# machine with the same number of threads, and prints a table of medians and ratios.
#
#   benches/compare.sh [NAME_FILTER...]      e.g. benches/compare.sh matmul softmax
#
# JAX is installed from PyPI into benches/.venv on first use. THREADS (default: all
# cores) sets rayon's threads for ferrax and XLA's for JAX. The two sides alternate for
# ROUNDS rounds (default 3) and each reports its best round, so that a burst of other
# work on the machine does not fall on one side only.
#
# Where wgpu finds a hardware GPU (GPU=0 skips this), a second table compares ferrax's GPU
# backend (benches/gpu.rs) with JAX on the GPU, run by GPU_PYTHON (default python3, which
# must have JAX with a GPU backend; without one the table has ferrax's column only).
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS=${THREADS:-$(nproc)}
VENV=benches/.venv
if ! "$VENV/bin/python" -c "import jax" 2>/dev/null; then
    echo "installing jax into $VENV ..." >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet jax
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

ROUNDS=${ROUNDS:-3}
jax_version=$("$VENV/bin/python" -c 'import jax; print(jax.__version__)')
cargo bench --quiet --bench compare --no-run
for round in $(seq "$ROUNDS"); do
    echo "round $round/$ROUNDS: ferrax ($THREADS threads) ..." >&2
    RAYON_NUM_THREADS=$THREADS cargo bench --quiet --bench compare -- "$@" >>"$out/ferrax.jsonl"
    echo "round $round/$ROUNDS: JAX $jax_version ($THREADS threads) ..." >&2
    # XLA's CPU backend sizes its pools from these (OPENBLAS_* and OMP_* do not apply).
    XLA_FLAGS="--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads=$THREADS ${XLA_FLAGS:-}" \
    JAX_PLATFORMS=cpu \
        "$VENV/bin/python" benches/jax_workloads.py "$@" >>"$out/jax.jsonl"
done

echo >&2
echo "$(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $THREADS threads, JAX $jax_version, best of $ROUNDS rounds; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
"$VENV/bin/python" benches/table.py "$out/ferrax.jsonl" "$out/jax.jsonl"

if [ "${GPU:-auto}" != 0 ]; then
    cargo bench --quiet --bench gpu --no-run
    cargo bench --quiet --bench gpu -- --hardware-only "$@" >"$out/ferrax_gpu.jsonl" 2>"$out/gpu.err" || true
    if [ -s "$out/ferrax_gpu.jsonl" ]; then
        py=${GPU_PYTHON:-python3}
        : >"$out/jax_gpu.jsonl"
        if "$py" -c 'import jax, sys; sys.exit(jax.devices()[0].platform != "gpu")' 2>/dev/null; then
            mkdir -p "$out/side" # its own folder: a script named like a package would shadow it
            cargo bench --quiet --bench gpu -- --jax-script >"$out/side/jax_gpu.py"
            "$py" "$out/side/jax_gpu.py" "$@" >"$out/jax_gpu.jsonl"
        else
            echo "(no JAX with a GPU backend in $py: ferrax's GPU column only)" >&2
        fi
        echo
        echo "GPU: $(sed -n 's/^gpu bench on //p' "$out/gpu.err" | head -1)"
        echo
        "$VENV/bin/python" benches/table.py "$out/ferrax_gpu.jsonl" "$out/jax_gpu.jsonl"
    else
        sed -n 's/^gpu bench: //p' "$out/gpu.err" | head -1 | sed 's/^/GPU rows: /' >&2
    fi
fi
