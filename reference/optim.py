"""Reference trajectories of optax's optimizers on a fixed quadratic, for runtime/tests/optim.rs.

The parameters are a vector p and a scalar q; the gradient of
0.5 * sum(a * (p - c)^2) + 0.5 * aq * (q - cq)^2 is written out (g = a * (p - c)) so that
both sides compute it with the same floating-point operations.

Run: benches/.venv/bin/python reference/optim.py > reference/optim.txt
Output, one line per optimizer, dtype and step:
    <optimizer> <dtype> <step> <p[0]> ... <p[4]> <q>
with every value printed exactly (repr of the float).
"""

import jax

jax.config.update("jax_platforms", "cpu")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

P0 = [0.5, -1.0, 2.0, 0.0, 3.0]
A = [1.0, 2.0, 0.5, 4.0, 0.1]
C = [1.0, 1.0, -1.0, 0.5, 2.0]
Q0, AQ, CQ = 1.5, 3.0, -0.5
STEPS = 10

OPTIMIZERS = {
    "sgd": optax.sgd(0.1),
    "momentum": optax.sgd(0.1, momentum=0.9),
    "nesterov": optax.sgd(0.1, momentum=0.9, nesterov=True),
    "adam": optax.adam(0.05, b1=0.9, b2=0.999, eps=1e-8),
}

print(f"# optax {optax.__version__}, jax {jax.__version__}")
for name, opt in OPTIMIZERS.items():
    for dtype in (jnp.float32, jnp.float64):
        # f32 as JAX users run it (x64 off: step counts and bias corrections in f32);
        # x64 on only where it has to be, for the f64 parameters.
        jax.config.update("jax_enable_x64", dtype == jnp.float64)
        a, c = jnp.array(A, dtype), jnp.array(C, dtype)
        aq, cq = jnp.array(AQ, dtype), jnp.array(CQ, dtype)
        params = (jnp.array(P0, dtype), jnp.array(Q0, dtype))
        state = opt.init(params)
        for step in range(1, STEPS + 1):
            p, q = params
            grads = (a * (p - c), aq * (q - cq))
            updates, state = opt.update(grads, state, params)
            params = optax.apply_updates(params, updates)
            values = list(np.asarray(params[0], np.float64)) + [float(params[1])]
            print(name, np.dtype(dtype).name, step, " ".join(repr(float(v)) for v in values))
