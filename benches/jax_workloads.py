"""The JAX side of benches/compare.sh.

The same workloads as benches/workloads/mod.rs (same names, shapes and dtypes), each
jitted, compiled and warmed up before timing; then run repeatedly for about two seconds
(at least 10, at most 200 runs) with block_until_ready, and the median printed as one
JSON object per line: {"name", "median_s", "runs", "flops" | "bytes"}.

Arguments: name filters (a workload runs if its name contains one of them).
Threads: set XLA_FLAGS before running (compare.sh does).
"""

import contextlib
import json
import sys
import time

import jax
import jax.numpy as jnp

M16 = 1 << 24


def normal(seed, shape):
    return jax.random.normal(jax.random.PRNGKey(seed), shape, jnp.float32)


def matmul(n):
    a, b = normal(1, (n, n)), normal(2, (n, n))
    f = jax.jit(jnp.matmul)
    return {"flops": 2.0 * n**3}, lambda: f(a, b)


def tanh_affine():
    # x [4096, 4096], w and b [4096] broadcast over rows (as in workloads/mod.rs)
    x, w, b = normal(3, (4096, 4096)), normal(4, (4096,)), normal(5, (4096,))
    f = jax.jit(lambda x, w, b: jnp.tanh(x * w + b))
    return {"bytes": 2.0 * 4 * M16}, lambda: f(x, w, b)


def softmax():
    x = normal(6, (4096, 1024))
    f = jax.jit(lambda x: jax.nn.softmax(x, axis=-1))
    return {"bytes": 2.0 * 4 * 4096 * 1024}, lambda: f(x)


def total():
    x = normal(7, (M16,))
    f = jax.jit(jnp.sum)
    return {"bytes": 4.0 * M16}, lambda: f(x)


def copy():
    x = normal(8, (M16,))
    f = jax.jit(jnp.copy)
    return {"bytes": 2.0 * 4 * M16}, lambda: f(x)


@contextlib.contextmanager
def x64():
    """f64 inside the block only (other rows stay f32): jit's cache is keyed on this flag."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)


def rosen_grad():
    # Rosenbrock's function vectorised, in f64, as benches/rosen.rs writes it with a loop
    def rosen(x):
        return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    with x64():
        x = 0.5 + 0.4 * jnp.sin(jnp.arange(1_000_000, dtype=jnp.float64) * 0.37)
        f = jax.jit(jax.grad(rosen))

    def run():
        with x64():
            return f(x)

    return {"bytes": 2.0 * 8 * 1_000_000}, run


MLP_WIDTHS = (784, 512, 512, 10)


def mlp(step):
    # the same MLP as examples/data/mlp_model.rs: relu hidden layers, softmax cross-entropy
    keys = jax.random.split(jax.random.PRNGKey(11), len(MLP_WIDTHS) - 1)
    params = [
        (jax.random.normal(k, (i, o), jnp.float32) * (2.0 / i) ** 0.5, jnp.zeros((o,), jnp.float32))
        for k, i, o in zip(keys, MLP_WIDTHS[:-1], MLP_WIDTHS[1:])
    ]
    x = normal(12, (256, 784))
    y = jax.nn.one_hot(jnp.arange(256) * 7 % 10, 10, dtype=jnp.float32)

    def loss(params, x, y):
        h = x
        for w, b in params[:-1]:
            h = jax.nn.relu(h @ w + b)
        w, b = params[-1]
        logits = h @ w + b
        return -jnp.mean(jnp.sum(jax.nn.log_softmax(logits, axis=1) * y, axis=1))

    f = jax.jit(jax.value_and_grad(loss)) if step else jax.jit(loss)
    fwd = sum(2.0 * 256 * i * o for i, o in zip(MLP_WIDTHS[:-1], MLP_WIDTHS[1:]))
    return {"flops": 3.0 * fwd if step else fwd}, lambda: f(params, x, y)


def ready(out):
    """Blocks until every array of a result (a pytree) is computed."""
    return jax.block_until_ready(out)


WORKLOADS = {
    "matmul_1024_f32": lambda: matmul(1024),
    "matmul_2048_f32": lambda: matmul(2048),
    "tanh_affine_16M_f32": tanh_affine,
    "softmax_4096x1024_f32": softmax,
    "sum_16M_f32": total,
    "copy_16M_f32": copy,
    "rosen_grad_1M_f64": rosen_grad,
    "mlp_step_b256_f32": lambda: mlp(True),
    "mlp_forward_b256_f32": lambda: mlp(False),
}


def main():
    filters = [a for a in sys.argv[1:] if not a.startswith("--")]
    for name, build in WORKLOADS.items():
        if filters and not any(f in name for f in filters):
            continue
        work, run = build()
        ready(run())  # compile and warm up
        times = []
        start = time.perf_counter()
        while len(times) < 10 or (len(times) < 200 and time.perf_counter() - start < 2.0):
            t = time.perf_counter()
            ready(run())
            times.append(time.perf_counter() - t)
        times.sort()
        print(json.dumps({"name": name, "median_s": times[len(times) // 2], "runs": len(times), **work}), flush=True)


if __name__ == "__main__":
    main()
