"""Golden numbers for examples/sklearn_mlp.cc and tests/frontend/sklearn_test.cc: scikit-learn's
MLPClassifier(hidden_layer_sizes=(5, 5, 5), activation="relu", max_iter=100,
validation_fraction=0.2, early_stopping=True, random_state=0) on Fashion-MNIST, pixels scaled
to [0, 1] and flattened to 784 features, trained on the 60000 training images and scored on
the 10000 test images.

Writes test accuracy, n_iter_, the fit's wall time and seconds per epoch (fit time / n_iter_).
The dtype of X is float64 (numpy's default for x / 255.0) unless --float32 is given.

It also writes sklearn_step.txt (alone with --steps-only): single optimizer steps from fixed
weights, for tests/frontend/sklearn_test.cc. Each case fits once (max_iter=1, warm_start, one
full batch, no shuffling), overwrites coefs_/intercepts_ in place with the pattern weights
below and fits again: scikit-learn builds a fresh optimizer per fit, so that second fit is one
Adam or SGD step from the pattern weights. The file holds the loss of that step (at the pattern
weights) and the updated weights, layer by layer (coef row-major, then intercept).

  pip install scikit-learn numpy && python3 tools/golden/sklearn_mlp.py tests/frontend/golden
"""
import gzip
import os
import sys
import time
import warnings

import numpy as np
import sklearn
from sklearn.neural_network import MLPClassifier, MLPRegressor

DATA = "/usr/share/datasets/fashion-mnist"


def read_idx(name):
    with gzip.open(os.path.join(DATA, name), "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def pattern(n, a, b, scale):
    """scale * sin(a * i + b), i = 0..n-1 (also in sklearn_test.cc)."""
    return scale * np.sin(a * np.arange(n, dtype=np.float64) + b)


# name, estimator, hidden, activation, solver, alpha, n_outputs (regressor) or classes
STEP_CASES = [
    ("multiclass_relu_adam", "classifier", (4, 3), "relu", "adam", 0.01, 3),
    ("binary_tanh_sgd", "classifier", (4,), "tanh", "sgd", 0.1, 2),
    ("regress2_logistic_sgd", "regressor", (4,), "logistic", "sgd", 0.05, 2),
    ("regress1_identity_adam", "regressor", (3,), "identity", "adam", 0.1, 1),
]
STEP_ROWS, STEP_FEATURES = 12, 3


def step_cases():
    x = pattern(STEP_ROWS * STEP_FEATURES, 0.7, 0.3, 1.0).reshape(STEP_ROWS, STEP_FEATURES)
    lines = []
    for name, kind, hidden, activation, solver, alpha, k in STEP_CASES:
        params = dict(hidden_layer_sizes=hidden, activation=activation, solver=solver,
                      alpha=alpha, batch_size=STEP_ROWS, shuffle=False, max_iter=1,
                      warm_start=True, random_state=0, learning_rate_init=0.05,
                      momentum=0.9, nesterovs_momentum=True)
        if kind == "classifier":
            y = (np.arange(STEP_ROWS) * 7 % k).astype(np.int64)
            est = MLPClassifier(**params)
        else:
            y = pattern(STEP_ROWS * k, 0.9, 0.1, 2.0).reshape(STEP_ROWS, k)
            if k == 1:
                y = y.ravel()
            est = MLPRegressor(**params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(x, y)
            for layer, (coef, intercept) in enumerate(zip(est.coefs_, est.intercepts_)):
                coef[...] = pattern(coef.size, 0.37 + layer, 0.5, 0.6).reshape(coef.shape)
                intercept[...] = pattern(intercept.size, 1.3 + layer, 0.2, 0.1)
            est.fit(x, y)
        values = [f"{v:.10g}" for c, b in zip(est.coefs_, est.intercepts_)
                  for v in list(c.ravel()) + list(b.ravel())]
        lines.append(f"{name} loss {est.loss_:.10g}")
        lines.append(f"{name} weights " + " ".join(values))
    return lines


def rng_cases():
    """Whole short fits whose weights depend on every random draw: initial weights, the
    (stratified) early-stopping split and the epoch shuffles, from random_state."""
    lines = []
    n = 40
    x = pattern(n * STEP_FEATURES, 0.61, 0.2, 1.0).reshape(n, STEP_FEATURES)
    for name, kind, k in [("rng_multiclass", "classifier", 3), ("rng_binary", "classifier", 2),
                          ("rng_regressor", "regressor", 1)]:
        params = dict(hidden_layer_sizes=(4,), activation="tanh", batch_size=3, max_iter=4,
                      early_stopping=True, validation_fraction=0.3, random_state=3,
                      learning_rate_init=0.01, n_iter_no_change=100)
        if kind == "classifier":
            y = (np.arange(n) * 5 % 7 % k).astype(np.int64)
            est = MLPClassifier(**params)
        else:
            y = pattern(n, 0.9, 0.1, 2.0)
            est = MLPRegressor(**params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(x, y)
        values = [f"{v:.10g}" for c, b in zip(est.coefs_, est.intercepts_)
                  for v in list(c.ravel()) + list(b.ravel())]
        lines.append(f"{name} loss_curve " + " ".join(f"{v:.10g}" for v in est.loss_curve_))
        lines.append(f"{name} validation_scores " +
                     " ".join(f"{v:.10g}" for v in est.validation_scores_))
        lines.append(f"{name} weights " + " ".join(values))
    return lines


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else "."
    step_path = os.path.join(out_dir, "sklearn_step.txt")
    with open(step_path, "w") as f:
        f.write("# scikit-learn %s: one step from pattern weights\n" % sklearn.__version__)
        f.write("\n".join(step_cases() + rng_cases()) + "\n")
    print("wrote", step_path)
    if "--steps-only" in sys.argv:
        return
    dtype = np.float32 if "--float32" in sys.argv else np.float64
    x_train = (read_idx("train-images-idx3-ubyte.gz").reshape(-1, 784) / 255.0).astype(dtype)
    y_train = read_idx("train-labels-idx1-ubyte.gz").astype(np.int64)
    x_test = (read_idx("t10k-images-idx3-ubyte.gz").reshape(-1, 784) / 255.0).astype(dtype)
    y_test = read_idx("t10k-labels-idx1-ubyte.gz").astype(np.int64)

    def fit():
        clf = MLPClassifier(hidden_layer_sizes=(5, 5, 5), activation="relu", max_iter=100,
                            validation_fraction=0.2, early_stopping=True, random_state=0)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(x_train, y_train)
        return clf, time.perf_counter() - start

    # As a user runs it (BLAS with its default threads), then with BLAS held to one thread:
    # on a small, busy machine the default's thread spinning dominates the epoch.
    clf, seconds = fit()
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1):
        clf1, seconds1 = fit()
    accuracy = clf.score(x_test, y_test)
    lines = [
        f"# scikit-learn {sklearn.__version__}, numpy {np.__version__}, X {np.dtype(dtype).name}",
        f"test_accuracy {accuracy:.6f}",
        f"n_iter {clf.n_iter_}",
        f"best_validation_score {clf.best_validation_score_:.6f}",
        f"fit_seconds {seconds:.3f}",
        f"seconds_per_epoch {seconds / clf.n_iter_:.6f}",
        f"one_thread_test_accuracy {clf1.score(x_test, y_test):.6f}",
        f"one_thread_n_iter {clf1.n_iter_}",
        f"one_thread_seconds_per_epoch {seconds1 / clf1.n_iter_:.6f}",
        f"cpus {os.cpu_count()} load_average {os.getloadavg()[0]:.2f}",
    ]
    suffix = "_float32" if dtype == np.float32 else ""
    path = os.path.join(out_dir, f"sklearn_mlp{suffix}.txt")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print("wrote", path)


if __name__ == "__main__":
    main()
