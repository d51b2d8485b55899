"""Golden numbers for tests/frontend/parity_test.cc: one Adam step of the 784-512-512-10 MLP
and one SGD step of a small CNN in PyTorch, from deterministic initial weights and batches.

The test needs no Python: it rebuilds the same weights and batches from the formulas below,
runs one step through sequent (frontend -> IR -> autodiff -> backend) and compares the loss and
a fixed subsample of every updated weight with the values this script writes.

Keras's Adam puts epsilon outside the bias correction: var -= lr*sqrt(1-b2^t)/(1-b1^t) *
m/(sqrt(v)+eps). PyTorch's is var -= lr/(1-b1^t) * m/(sqrt(v)/sqrt(1-b2^t) + eps'), the same
step when eps' = eps/sqrt(1-b2^t); at t = 1 that is eps/sqrt(1-b2).

  pip install torch numpy && python3 tools/golden/torch_parity.py tests/frontend/golden
"""
import math
import sys

import numpy as np
import torch

torch.set_default_dtype(torch.float64)  # Golden values in f64; sequent runs f32 and f64.


def pattern(n, a, b, scale):
    """Deterministic values: scale * sin(a * i + b), i = 0..n-1 (also in parity_test.cc)."""
    i = np.arange(n, dtype=np.float64)
    return scale * np.sin(a * i + b)


def labels(n, classes, a):
    return (np.floor(np.abs(np.sin(a * np.arange(n) + 0.5)) * 1000) % classes).astype(np.int64)


def subsample(t):
    flat = t.detach().numpy().reshape(-1)
    step = max(1, flat.size // 500)
    return [float(v) for v in flat[::step]]


def write(result, path):
    """Plain text the C++ test reads with >>: the loss, then each weight's subsample."""
    with open(path, "w") as f:
        f.write(f"loss {result['loss']!r}\n")
        for i, values in enumerate(result["weights"]):
            f.write(f"weight {i} {len(values)}\n")
            f.write("".join(f"{v!r}\n" for v in values))


def mlp(out):
    batch = 16
    sizes = [(784, 512), (512, 512), (512, 10)]
    layers = []
    for k, (fan_in, fan_out) in enumerate(sizes):
        lin = torch.nn.Linear(fan_in, fan_out)
        w = pattern(fan_in * fan_out, 0.37 + 0.11 * k, 0.1 * k, 1.0 / math.sqrt(fan_in))
        b = pattern(fan_out, 0.23 + 0.05 * k, 0.3, 0.01)
        with torch.no_grad():
            # sequent's kernel is [in, out] row-major; torch's weight is [out, in].
            lin.weight.copy_(torch.tensor(w.reshape(fan_in, fan_out).T))
            lin.bias.copy_(torch.tensor(b))
        layers.append(lin)
    model = torch.nn.Sequential(layers[0], torch.nn.ReLU(), layers[1], torch.nn.ReLU(),
                                layers[2])
    x = torch.tensor(pattern(batch * 784, 0.013, 0.0, 0.5).reshape(batch, 784) + 0.5)
    y = torch.tensor(labels(batch, 10, 0.71))
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-7
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(b1, b2),
                           eps=eps / math.sqrt(1 - b2))
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    result = {"loss": float(loss.detach()), "weights": []}
    for lin in layers:
        result["weights"].append(subsample(lin.weight.T.contiguous()))  # Back to [in, out].
        result["weights"].append(subsample(lin.bias))
    write(result, f"{out}/torch_adam_mlp.txt")


def cnn(out):
    batch, size, filters = 4, 8, 4
    conv = torch.nn.Conv2d(1, filters, 3)
    dense = torch.nn.Linear(3 * 3 * filters, 10)
    k = pattern(3 * 3 * 1 * filters, 0.41, 0.2, 0.3).reshape(3, 3, 1, filters)  # HWIO
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(k.transpose(3, 2, 0, 1)))  # OIHW
        conv.bias.copy_(torch.tensor(pattern(filters, 0.3, 0.1, 0.05)))
        w = pattern(3 * 3 * filters * 10, 0.29, 0.4, 0.2).reshape(3 * 3 * filters, 10)
        dense.weight.copy_(torch.tensor(w.T))
        dense.bias.copy_(torch.tensor(pattern(10, 0.17, 0.2, 0.01)))
    x_nhwc = pattern(batch * size * size, 0.057, 0.3, 0.5).reshape(batch, size, size, 1) + 0.5
    x = torch.tensor(x_nhwc.transpose(0, 3, 1, 2))
    y = torch.tensor(labels(batch, 10, 0.37))
    h = torch.nn.functional.max_pool2d(torch.relu(conv(x)), 2)
    # Flatten in NHWC order, as sequent (and Keras) do.
    logits = dense(h.permute(0, 2, 3, 1).reshape(batch, -1))
    loss = torch.nn.functional.cross_entropy(logits, y)
    opt = torch.optim.SGD(list(conv.parameters()) + list(dense.parameters()), lr=0.1)
    opt.zero_grad()
    loss.backward()
    opt.step()
    result = {
        "loss": float(loss.detach()),
        "weights": [
            subsample(conv.weight.permute(2, 3, 1, 0).contiguous()),  # Back to HWIO.
            subsample(conv.bias),
            subsample(dense.weight.T.contiguous()),
            subsample(dense.bias),
        ],
    }
    write(result, f"{out}/torch_sgd_cnn.txt")


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/frontend/golden"
    mlp(out)
    cnn(out)
