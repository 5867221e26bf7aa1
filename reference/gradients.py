"""Reference gradients computed by JAX, for the tests that check ferrax's gradients.

Two losses, in float64, at fixed parameters and inputs (a deterministic formula, stored in
the data file with the results, so a test reads everything from one place):

- `mlp`: x [8, 6] -> dense 6x5 -> relu -> dense 5x4 -> relu -> dense 4x3, mean softmax
  cross-entropy against integer labels;
- `resnet`: x -> dense 6x5 (h), then two residual blocks
  `h = h + dense(tanh(dense(layer_norm(h) * gamma + beta)))` (5 -> 7 -> 5, layer norm over
  the features with eps 1e-5 and the biased variance), then dense 5x3 and the same
  cross-entropy.

Run: benches/.venv/bin/python reference/gradients.py > reference/gradients.txt

Format of the output: `#` lines are comments; every other entry is a header line
`<model> <name> <dims...>` (no dims for a scalar) followed by one line of the values in
row-major order, printed exactly (repr). Names: `x`, `labels`, each parameter (`w0`, `b0`, ..
for mlp; `w_in`, `b_in`, `block0.gamma`, `block0.beta`, `block0.w1`, `block0.b1`,
`block0.w2`, `block0.b2`, .., `w_out`, `b_out` for resnet), `loss`, and `grad.<parameter>`.
"""

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_platforms", "cpu")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

BATCH, FEATURES, CLASSES = 8, 6, 3


def values(seed, shape, scale):
    """scale * sin(0.37 * i + 1.3 * seed + 0.1) over the row-major index i."""
    n = int(np.prod(shape, dtype=np.int64))
    i = np.arange(n, dtype=np.float64)
    return jnp.asarray(scale * np.sin(0.37 * i + 1.3 * seed + 0.1)).reshape(shape)


def cross_entropy(logits, labels):
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))


def mlp_params():
    widths = [FEATURES, 5, 4, CLASSES]
    p = {}
    for k, (a, b) in enumerate(zip(widths, widths[1:])):
        p[f"w{k}"] = values(10 + 2 * k, (a, b), 0.6)
        p[f"b{k}"] = values(11 + 2 * k, (b,), 0.2)
    return p


def mlp_loss(p, x, labels):
    h = x
    layers = len(p) // 2
    for k in range(layers):
        h = h @ p[f"w{k}"] + p[f"b{k}"]
        if k + 1 < layers:
            h = jax.nn.relu(h)
    return cross_entropy(h, labels)


def resnet_params():
    p = {"w_in": values(30, (FEATURES, 5), 0.6), "b_in": values(31, (5,), 0.2)}
    for k in range(2):
        s = 40 + 10 * k
        p[f"block{k}.gamma"] = 1.0 + values(s, (5,), 0.3)
        p[f"block{k}.beta"] = values(s + 1, (5,), 0.2)
        p[f"block{k}.w1"] = values(s + 2, (5, 7), 0.5)
        p[f"block{k}.b1"] = values(s + 3, (7,), 0.2)
        p[f"block{k}.w2"] = values(s + 4, (7, 5), 0.5)
        p[f"block{k}.b2"] = values(s + 5, (5,), 0.2)
    p["w_out"] = values(60, (5, CLASSES), 0.6)
    p["b_out"] = values(61, (CLASSES,), 0.2)
    return p


def layer_norm(h, gamma, beta):
    mean = jnp.mean(h, axis=-1, keepdims=True)
    var = jnp.mean((h - mean) ** 2, axis=-1, keepdims=True)
    return (h - mean) / jnp.sqrt(var + 1e-5) * gamma + beta


def resnet_loss(p, x, labels):
    h = x @ p["w_in"] + p["b_in"]
    for k in range(2):
        y = layer_norm(h, p[f"block{k}.gamma"], p[f"block{k}.beta"])
        y = jnp.tanh(y @ p[f"block{k}.w1"] + p[f"block{k}.b1"])
        h = h + y @ p[f"block{k}.w2"] + p[f"block{k}.b2"]
    return cross_entropy(h @ p["w_out"] + p["b_out"], labels)


def emit(model, name, array):
    a = np.asarray(array)
    print(" ".join([model, name] + [str(d) for d in a.shape]))
    print(" ".join(repr(v.item()) for v in a.reshape(-1)))


def main():
    print(f"# jax {jax.__version__}, float64; see reference/gradients.py")
    x = values(1, (BATCH, FEATURES), 1.0)
    labels = jnp.asarray([(3 * i + 1) % CLASSES for i in range(BATCH)], jnp.int32)
    for model, params, loss_fn in (
        ("mlp", mlp_params(), mlp_loss),
        ("resnet", resnet_params(), resnet_loss),
    ):
        emit(model, "x", x)
        emit(model, "labels", labels)
        for name, value in params.items():
            emit(model, name, value)
        loss, grads = jax.value_and_grad(loss_fn)(params, x, labels)
        emit(model, "loss", loss)
        for name, g in grads.items():
            emit(model, f"grad.{name}", g)


main()
