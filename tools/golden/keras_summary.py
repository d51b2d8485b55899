"""Regenerates tests/frontend/golden/keras_summary.txt: Keras 3's model.summary() for the two
models tests/frontend/summary_test.cc builds (80-column terminal, as in a log file).

  pip install keras torch && KERAS_BACKEND=torch COLUMNS=80 python3 tools/golden/keras_summary.py \
      > tests/frontend/golden/keras_summary.txt
"""
import keras
from keras import layers

keras.Sequential([keras.Input((28, 28)), layers.Flatten(),
                  layers.Dense(512, activation="relu"),
                  layers.Dense(512, activation="relu"), layers.Dense(10)]).summary()
keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(32, (3, 3), activation="relu"),
                  layers.MaxPooling2D((2, 2)), layers.BatchNormalization(),
                  layers.Dropout(0.2), layers.Flatten(), layers.Dense(10)]).summary()
