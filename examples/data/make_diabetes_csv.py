"""Regenerates examples/data/diabetes.csv: the Diabetes data set (Efron, Hastie, Johnstone and
Tibshirani, "Least Angle Regression", 2004; 442 patients, 10 baseline variables, target = disease
progression one year later), unscaled, from the copy bundled with scikit-learn.

  pip install scikit-learn && python3 examples/data/make_diabetes_csv.py
"""
import csv

from sklearn.datasets import load_diabetes

d = load_diabetes(scaled=False)
with open("examples/data/diabetes.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(list(d.feature_names) + ["target"])
    for row, t in zip(d.data, d.target):
        w.writerow([repr(float(v)) if v != int(v) else int(v) for v in row] + [int(t)])
