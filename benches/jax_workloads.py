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


def oscillator_grads():
    # per-example gradients of scalar code: a Duffing oscillator's three coefficients,
    # shared, integrated for 200 explicit steps from each example's start; the squared
    # miss of each example's target (as benches/workloads/mod.rs writes it with a loop)
    def loss(p, x0, v0, target):
        k, c, f = p[0], p[1], p[2]

        def step(_, s):
            x, v = s
            a = -k * x - c * v - f * x * x * x
            v = v + 0.01 * a
            return (x + 0.01 * v, v)

        x, _ = jax.lax.fori_loop(0, OSC_STEPS, step, (x0, v0))
        return (x - target) * (x - target)

    with x64():
        p = jnp.array([1.0, 0.1, 0.5], dtype=jnp.float64)
        keys = jax.random.split(jax.random.PRNGKey(71), 3)
        x0, v0, target = (jax.random.normal(k, (OSC_BATCH,), jnp.float64) for k in keys)
        f = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0, 0)))

    def run():
        with x64():
            return f(p, x0, v0, target)

    # per step 9 flops forward, about 2.5 times that with the reverse sweep
    return {"flops": 3.5 * 9 * OSC_STEPS * OSC_BATCH}, run


OSC_STEPS, OSC_BATCH = 200, 4096


def fit_grads():
    # per-example gradients of a cubic's four coefficients, shared, over each example's
    # own 16 points (a sequence per example); the mean squared miss
    def loss(c, xs, ys):
        y = c[0] + xs * (c[1] + xs * (c[2] + xs * c[3]))
        return jnp.mean((y - ys) * (y - ys))

    with x64():
        c = jnp.array([0.5, -1.0, 0.25, 0.1], dtype=jnp.float64)
        kx, ky = jax.random.split(jax.random.PRNGKey(75), 2)
        xs = jax.random.normal(kx, (FIT_BATCH, FIT_POINTS), jnp.float64)
        ys = jax.random.normal(ky, (FIT_BATCH, FIT_POINTS), jnp.float64)
        f = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0)))

    def run():
        with x64():
            return f(c, xs, ys)

    # per point 8 flops forward, about 2.5 times that with the reverse sweep
    return {"flops": 3.5 * 8 * FIT_POINTS * FIT_BATCH}, run


FIT_POINTS, FIT_BATCH = 16, 4096

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


def per_example_grads():
    # one example's loss: MLP 64-128-10, tanh, log-softmax cross-entropy (benches/workloads)
    k1, k2 = jax.random.split(jax.random.PRNGKey(21))
    params = (
        jax.random.normal(k1, (64, 128), jnp.float32) * 0.125,
        jnp.zeros((128,), jnp.float32),
        jax.random.normal(k2, (128, 10), jnp.float32) * 0.088,
        jnp.zeros((10,), jnp.float32),
    )
    x = normal(23, (256, 64))
    y = jax.nn.one_hot(jnp.arange(256) * 7 % 10, 10, dtype=jnp.float32)

    def loss(p, x, y):
        w1, b1, w2, b2 = p
        h = jnp.tanh(x @ w1 + b1)
        return -jnp.sum(jax.nn.log_softmax(h @ w2 + b2) * y)

    f = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0)))
    return {"flops": 3.0 * 256 * 2.0 * (64 * 128 + 128 * 10)}, lambda: f(params, x, y)


def cnn(per_example):
    # examples/data/cnn_model.rs on 64 images of 28 x 28: conv 1 -> 32 (3 x 3, SAME), relu,
    # conv 32 -> 64 (3 x 3, stride 2, SAME), relu, dense 12544 -> 10; NCHW / OIHW
    n, side, c1, c2 = 64, 28, 32, 64
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(71), 3)
    h = side // 2
    params = (
        jax.random.normal(k1, (c1, 1, 3, 3), jnp.float32) * (2.0 / 9) ** 0.5,
        jnp.zeros((c1, 1, 1), jnp.float32),
        jax.random.normal(k2, (c2, c1, 3, 3), jnp.float32) * (2.0 / (9 * c1)) ** 0.5,
        jnp.zeros((c2, 1, 1), jnp.float32),
        jax.random.normal(k3, (c2 * h * h, 10), jnp.float32) * (2.0 / (c2 * h * h)) ** 0.5,
        jnp.zeros((10,), jnp.float32),
    )
    x = normal(72, (n, 1, side, side))
    y = jax.nn.one_hot(jnp.arange(n) * 7 % 10, 10, dtype=jnp.float32)
    dn = ("NCHW", "OIHW", "NCHW")

    def loss(p, x, y):
        w1, b1, w2, b2, w, b = p
        a = jax.nn.relu(jax.lax.conv_general_dilated(x, w1, (1, 1), "SAME", dimension_numbers=dn) + b1)
        a = jax.nn.relu(jax.lax.conv_general_dilated(a, w2, (2, 2), "SAME", dimension_numbers=dn) + b2)
        z = a.reshape(x.shape[0], -1) @ w + b
        return -jnp.mean(jnp.sum(jax.nn.log_softmax(z, axis=1) * y, axis=1))

    fwd = 2.0 * n * (c1 * 9 * side * side + c2 * c1 * 9 * h * h + c2 * h * h * 10)
    if per_example:
        f = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0)))
        xs, ys = x[:, None], y[:, None]
        return {"flops": 3.0 * fwd}, lambda: f(params, xs, ys)
    f = jax.jit(jax.value_and_grad(loss))
    return {"flops": 3.0 * fwd}, lambda: f(params, x, y)


def rnn_grad(per_example):
    # an Elman network over 64 steps, batch 32, 64 inputs, 256 hidden (benches/workloads):
    # the batch's gradient, or every sequence's (vmap of grad over axis 1 of xs)
    t, b, i, h = 64, 32, 64, 256
    xs = normal(41, (t, b, i))
    w = normal(42, (i, h)) / jnp.sqrt(float(i))
    u = normal(43, (h, h)) / jnp.sqrt(float(h))

    def loss(w, u, xs):
        def step(hid, x):
            hid = jnp.tanh(x @ w + hid @ u)
            return hid, hid

        _, hs = jax.lax.scan(step, jnp.zeros(xs.shape[1:-1] + (h,), jnp.float32), xs)
        return jnp.mean(hs**2)

    g = jax.grad(loss, argnums=(0, 1))
    f = jax.jit(jax.vmap(g, in_axes=(None, None, 1)) if per_example else g)
    return {"flops": 3.0 * t * 2 * b * (i * h + h * h)}, lambda: f(w, u, xs)


def fixed_point_grad():
    # 16 trips of h = tanh(h W + x) from zero, batch 256, width 512 (benches/workloads): the
    # gradient of the mean square of the last state with respect to W; ferrax writes the
    # loop as `while k < 16`, JAX as fori_loop (a while_loop has no reverse mode)
    b, n, trips = 256, 512, 16
    x = normal(51, (b, n))
    w = normal(52, (n, n)) * (0.5 / jnp.sqrt(float(n)))

    def loss(w, x):
        h = jax.lax.fori_loop(0, trips, lambda _, h: jnp.tanh(h @ w + x), jnp.zeros_like(x))
        return jnp.mean(h**2)

    f = jax.jit(jax.grad(loss))
    return {"flops": 3.0 * trips * 2 * b * n * n}, lambda: f(w, x)


def gp_grads():
    # per-example gradients of a Gaussian process likelihood, 64 covariances of 64 x 64
    b, n = 64, 64
    m = normal(61, (b, n, n))
    k = m @ jnp.swapaxes(m, -1, -2) / n + jnp.eye(n, dtype=jnp.float32)
    y = normal(62, (b, n))

    def nll(k, y):
        l = jnp.linalg.cholesky(k)
        alpha = jax.scipy.linalg.solve_triangular(l, y, lower=True)
        return 0.5 * (jnp.sum(alpha * alpha) + 2.0 * jnp.sum(jnp.log(jnp.diagonal(l))))

    f = jax.jit(jax.vmap(jax.grad(nll, argnums=(0, 1))))
    return {"flops": 0.0}, lambda: f(k, y)


def eigh_grads(b, n):
    # gradients of sum(tanh(w) (v^T u)^2) through a symmetric eigendecomposition; per
    # example for b > 1
    m = normal(65, (b, n, n))
    a = (m + jnp.swapaxes(m, -1, -2)) * 0.5
    u = normal(66, (b, n))

    def loss(a, u):
        w, v = jnp.linalg.eigh(a)
        return jnp.sum(jnp.tanh(w) * (v.T @ u) ** 2)

    if b == 1:
        f = jax.jit(jax.grad(loss, argnums=(0, 1)))
        return {"flops": 0.0}, lambda: f(a[0], u[0])
    f = jax.jit(jax.vmap(jax.grad(loss, argnums=(0, 1))))
    return {"flops": 0.0}, lambda: f(a, u)


def solve_grad():
    # the gradient of sum(tanh(A^-1 B)), A [512, 512], B [512, 64]
    n, k = 512, 64
    a = normal(63, (n, n)) / jnp.sqrt(float(n)) + 2.0 * jnp.eye(n, dtype=jnp.float32)
    b = normal(64, (n, k))
    f = jax.jit(jax.grad(lambda a, b: jnp.sum(jnp.tanh(jnp.linalg.solve(a, b))), argnums=(0, 1)))
    return {"flops": 0.0}, lambda: f(a, b)


def jacobian(n_in, n_out, mode):
    """mode: "best" (the faster of jacfwd and jacrev, timed here), "fwd" or "rev"."""
    with x64():
        x = jax.random.normal(jax.random.PRNGKey(33), (n_in,), jnp.float64)
        w = jax.random.normal(jax.random.PRNGKey(34), (n_out, n_in), jnp.float64)

        def g(x, w):
            return jnp.tanh(w @ x) * jnp.sum(x * x)

        fwd, rev = jax.jit(jax.jacfwd(g)), jax.jit(jax.jacrev(g))
        f = {"fwd": fwd, "rev": rev}.get(mode)
        if f is None:
            ready(fwd(x, w)), ready(rev(x, w))
            f = min((fwd, rev), key=lambda h: quick_median(lambda: h(x, w)))

    def run():
        with x64():
            return f(x, w)

    return {"flops": 0.0}, run


def hessian():
    with x64():
        x = jax.random.normal(jax.random.PRNGKey(31), (200,), jnp.float64)
        a = jax.random.normal(jax.random.PRNGKey(32), (200, 200), jnp.float64)

        def h(x, a):
            return jnp.sum(jnp.sin(x) * x * x) + x @ (a @ x)

        f = jax.jit(jax.hessian(h))

    def run():
        with x64():
            return f(x, a)

    return {"flops": 0.0}, run


def pinn_hessians():
    # per-point Hessians of u: R^3 -> R (tanh, 64 wide, two hidden layers) at 1024 points
    xs = normal(81, (1024, 3))
    w1, b1 = normal(82, (3, 64)), normal(83, (64,)) * 0.1
    w2, b2 = normal(84, (64, 64)) * 0.125, normal(85, (64,)) * 0.1
    w3 = normal(86, (64,)) * 0.125

    def u(x, w1, b1, w2, b2, w3):
        h = jnp.tanh(x @ w1 + b1)
        h = jnp.tanh(h @ w2 + b2)
        return jnp.sum(h @ w3)

    f = jax.jit(jax.vmap(jax.hessian(u), in_axes=(0, None, None, None, None, None)))
    return {"flops": 0.0}, lambda: f(xs, w1, b1, w2, b2, w3)


def deep_pinn_hessians():
    # per-point Hessians of u: R^3 -> R with four tanh layers of 64, the hidden ones a loop
    # over lists of weights (unrolled by tracing), at 1024 points
    xs = normal(81, (1024, 3))
    w1, b1 = normal(82, (3, 64)), normal(83, (64,)) * 0.1
    ws = [normal(90 + i, (64, 64)) * 0.125 for i in range(3)]
    bs = [normal(95 + i, (64,)) * 0.1 for i in range(3)]
    w_out = normal(86, (64,)) * 0.125

    def u(x, w1, b1, ws, bs, w_out):
        h = jnp.tanh(x @ w1 + b1)
        for w, b in zip(ws, bs):
            h = jnp.tanh(h @ w + b)
        return jnp.sum(h @ w_out)

    f = jax.jit(jax.vmap(jax.hessian(u), in_axes=(0, None, None, None, None, None)))
    return {"flops": 0.0}, lambda: f(xs, w1, b1, ws, bs, w_out)


def activations():
    # the value and gradient of sum(gelu(x) + softplus(x) silu(x)), x [4096, 1024]
    x = normal(71, (4096, 1024))

    def loss(x):
        return jnp.sum(jax.nn.gelu(x, approximate=False) + jax.nn.softplus(x) * jax.nn.silu(x))

    f = jax.jit(jax.value_and_grad(loss))
    return {"bytes": 2.0 * 4 * 4096 * 1024}, lambda: f(x)


def returns_grad():
    # G[t] = r[t] + sigmoid(l[t]) G[t + 1] over 64 episodes of 1024 steps, by an associative
    # scan of affine maps (JAX's fast form of a linear recurrence); grad of sum(tanh(G))
    r = normal(72, (64, 1024))
    logit = normal(73, (1024,))

    def combine(p, q):
        a1, b1 = p
        a2, b2 = q
        return a2 * a1, a2 * b1 + b2

    def loss(r, logit):
        a = jnp.broadcast_to(jax.nn.sigmoid(logit), r.shape)
        _, g = jax.lax.associative_scan(combine, (a, r), reverse=True, axis=1)
        return jnp.sum(jnp.tanh(g))

    f = jax.jit(jax.grad(loss, argnums=(0, 1)))
    return {"flops": 0.0}, lambda: f(r, logit)


def expm_grad():
    # the gradient of sum(expm(A) W), A [64, 64] with entries of deviation 0.1
    a = normal(74, (64, 64)) * 0.1
    w = normal(75, (64, 64))
    f = jax.jit(jax.grad(lambda a, w: jnp.sum(jax.scipy.linalg.expm(a) * w)))
    return {"flops": 0.0}, lambda: f(a, w)


def einsum_attention():
    # the gradient of attention written in einsum over [batch, time, head, dim], 8x128x8x64
    q, k, v = (normal(s, (8, 128, 8, 64)) for s in (76, 77, 78))

    def loss(q, k, v):
        p = jax.nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", q, k) * 0.125, axis=-1)
        return jnp.mean(jnp.square(jnp.einsum("bhqk,bkhd->bqhd", p, v)))

    f = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))
    return {"flops": 0.0}, lambda: f(q, k, v)


def graph_network():
    # per-graph gradients of a message-passing layer: 64 graphs with their own edges
    # (64 nodes, 256 edges, every node sending itself one), 16 features, 64 hidden
    b, n, e, f, h = 64, 64, 256, 16, 64
    loops = jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32), (b, n))
    src = jnp.concatenate([loops, jax.random.randint(jax.random.PRNGKey(81), (b, e - n), 0, n)], axis=1)
    dst = jnp.concatenate([loops, jax.random.randint(jax.random.PRNGKey(82), (b, e - n), 0, n)], axis=1)
    x, y = normal(83, (b, n, f)), normal(84, (b, n, 1))
    ws = (normal(85, (f, h)) * 0.25, normal(86, (h, h)) * 0.125, normal(87, (h, h)) * 0.125,
          normal(88, (h, 1)) * 0.125)

    def loss(ws, x, src, dst, y):
        w_msg, w_sum, w_max, w_out = ws
        m = jnp.tanh(x[src] @ w_msg)
        s = jax.ops.segment_sum(m, dst, num_segments=n)
        t = jax.ops.segment_max(m, dst, num_segments=n)
        hh = jnp.tanh(s @ w_sum + t @ w_max)
        return jnp.mean(jnp.square(hh @ w_out - y))

    f_ = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0, 0, 0)))
    return {"flops": 0.0}, lambda: f_(ws, x, src, dst, y)


def quick_median(run, n=30):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        ready(run())
        times.append(time.perf_counter() - t)
    return sorted(times)[n // 2]


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
    "per_example_grads_mlp_b256_f32": per_example_grads,
    "rnn_grad_t64_b32_f32": lambda: rnn_grad(False),
    "rnn_per_example_grads_t64_b32_f32": lambda: rnn_grad(True),
    "cnn_step_b64_f32": lambda: cnn(False),
    "cnn_per_example_grads_b64_f32": lambda: cnn(True),
    "fixed_point_grad_b256_f32": fixed_point_grad,
    "gp_per_example_grads_b64_n64_f32": gp_grads,
    "eigh_per_example_grads_b64_n32_f32": lambda: eigh_grads(64, 32),
    "eigh_grad_n256_f32": lambda: eigh_grads(1, 256),
    "solve_grad_n512_f32": solve_grad,
    "jacobian_tall_10to1000_f64": lambda: jacobian(10, 1000, "best"),
    "jacfwd_tall_10to1000_f64": lambda: jacobian(10, 1000, "fwd"),
    "jacrev_tall_10to1000_f64": lambda: jacobian(10, 1000, "rev"),
    "jacobian_wide_1000to10_f64": lambda: jacobian(1000, 10, "best"),
    "jacfwd_wide_1000to10_f64": lambda: jacobian(1000, 10, "fwd"),
    "jacrev_wide_1000to10_f64": lambda: jacobian(1000, 10, "rev"),
    "activations_grad_4M_f32": activations,
    "returns_grad_b64_t1024_f32": returns_grad,
    "expm_grad_n64_f32": expm_grad,
    "einsum_attention_grad_f32": einsum_attention,
    "gnn_per_graph_grads_b64_f32": graph_network,
    "hessian_200_f64": hessian,
    "pinn_hessians_b1024_f32": pinn_hessians,
    "deep_pinn_hessians_b1024_f32": deep_pinn_hessians,
    "oscillator_per_example_grads_b4096_f64": oscillator_grads,
    "fit_per_example_grads_b4096_f64": fit_grads,
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
