"""Golden numbers for examples/sklearn_mlp.cc and tests/frontend/sklearn_test.cc: scikit-learn's
MLPClassifier(hidden_layer_sizes=(5, 5, 5), activation="relu", max_iter=100,
validation_fraction=0.2, early_stopping=True, random_state=0) on Fashion-MNIST, pixels scaled
to [0, 1] and flattened to 784 features, trained on the 60000 training images and scored on
the 10000 test images.

Writes test accuracy, n_iter_, the fit's wall time and seconds per epoch (fit time / n_iter_).
The dtype of X is float64 (numpy's default for x / 255.0) unless --float32 is given.

  pip install scikit-learn numpy && python3 tools/golden/sklearn_mlp.py tests/frontend/golden
"""
import gzip
import os
import sys
import time
import warnings

import numpy as np
import sklearn
from sklearn.neural_network import MLPClassifier

DATA = "/usr/share/datasets/fashion-mnist"


def read_idx(name):
    with gzip.open(os.path.join(DATA, name), "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else "."
    dtype = np.float32 if "--float32" in sys.argv else np.float64
    x_train = (read_idx("train-images-idx3-ubyte.gz").reshape(-1, 784) / 255.0).astype(dtype)
    y_train = read_idx("train-labels-idx1-ubyte.gz").astype(np.int64)
    x_test = (read_idx("t10k-images-idx3-ubyte.gz").reshape(-1, 784) / 255.0).astype(dtype)
    y_test = read_idx("t10k-labels-idx1-ubyte.gz").astype(np.int64)

    clf = MLPClassifier(hidden_layer_sizes=(5, 5, 5), activation="relu", max_iter=100,
                        validation_fraction=0.2, early_stopping=True, random_state=0)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(x_train, y_train)
    seconds = time.perf_counter() - start
    accuracy = clf.score(x_test, y_test)
    lines = [
        f"# scikit-learn {sklearn.__version__}, numpy {np.__version__}, X {np.dtype(dtype).name}",
        f"test_accuracy {accuracy:.6f}",
        f"n_iter {clf.n_iter_}",
        f"best_validation_score {clf.best_validation_score_:.6f}",
        f"fit_seconds {seconds:.3f}",
        f"seconds_per_epoch {seconds / clf.n_iter_:.6f}",
    ]
    suffix = "_float32" if dtype == np.float32 else ""
    path = os.path.join(out_dir, f"sklearn_mlp{suffix}.txt")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print("wrote", path)


if __name__ == "__main__":
    main()
