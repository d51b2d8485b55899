#ifndef SEQUENT_FRONTEND_DATA_H_
#define SEQUENT_FRONTEND_DATA_H_

// Data loading for the Keras-style frontend: IDX (MNIST / Fashion-MNIST), CSV,
// NumPy .npy, train/test splitting and feature scaling. Every function reports
// bad input through absl::Status; errors name the file and what was wrong with
// it.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/dtype.h"
#include "core/tensor.h"

namespace sequent {

// Inputs and targets with the same first dimension.
struct Dataset {
  Tensor x;
  Tensor y;
};

// Loaders refuse payloads larger than this, so a corrupt or hostile header
// cannot make them allocate absurd amounts of memory.
inline constexpr uint64_t kMaxDataBytes = uint64_t{4} << 30;

// ---------------------------------------------------------------------------------------
// IDX (http://yann.lecun.com/exdb/mnist/), gzipped (.gz) or raw; both are read
// through zlib, which passes non-gzip files through unchanged.
//
// Result dtype:
//   u8, i8, i16 with ndim 1  -> i32 (labels)
//   u8, i8, i16 with ndim>=2 -> f32, raw values (images; 0..255 for u8)
//   i32 -> i32, f32 -> f32, f64 -> f64
// The header's dimensions are checked against the actual data length, which
// must match exactly.
absl::StatusOr<Tensor> LoadIdx(const std::string& path);

// Fashion-MNIST from the four standard files in `dir`
// (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
// t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz). Returns {train, test};
// x is f32 [n,28,28], divided by 255 into [0,1] when `scale`, y is i32 [n] with
// values 0..9. The Debian package `dataset-fashion-mnist` installs the files
// into the default directory.
inline constexpr char kFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";
absl::StatusOr<std::pair<Dataset, Dataset>> LoadFashionMnist(
    const std::string& dir = kFashionMnistDir, bool scale = true);
// MNIST digits; same file names and layout as Fashion-MNIST.
absl::StatusOr<std::pair<Dataset, Dataset>> LoadMnist(const std::string& dir,
                                                      bool scale = true);

// ---------------------------------------------------------------------------------------
// CSV with numeric cells only. Cells may be double-quoted ("" escapes a quote);
// surrounding spaces are ignored; blank lines are skipped; CRLF line ends are
// accepted.
struct CsvOptions {
  bool header = true;
  char delimiter = ',';
};

struct CsvTable {
  // From the header row, or "0", "1", ... without one.
  std::vector<std::string> columns;
  // f32 [rows, columns.size()].
  Tensor values;
};

absl::StatusOr<CsvTable> LoadCsv(const std::string& path,
                                 CsvOptions options = {});

// x = every column but `label_column` (f32 [rows, cols-1]); y = that column as
// `label_dtype` [rows]. With an integer label_dtype every label must be a whole
// number in range.
absl::StatusOr<Dataset> SplitXY(const CsvTable& table,
                                absl::string_view label_column,
                                DType label_dtype = DType::kI32);

// ---------------------------------------------------------------------------------------
// NumPy .npy, format versions 1.0, 2.0 and 3.0, C order, little-endian.
// '<f4' -> f32, '<f8' -> f64, '<i4' -> i32, '<i8' -> i64, '|u1' -> i32, '|b1'
// -> bool.
absl::StatusOr<Tensor> LoadNpy(const std::string& path);
// Writes f32, f64, i32, i64 or bool as a version 1.0 file (2.0 if the header
// needs it).
absl::Status SaveNpy(const std::string& path, const Tensor& tensor);

// ---------------------------------------------------------------------------------------
// Rows `rows` (indices into the first dimension, each in range) of a tensor of
// any dtype and rank >= 1, in that order.
Tensor TakeRows(const Tensor& tensor, absl::Span<const int64_t> rows);

// Copies rows rows[0..count) of `src` (indices into its first dimension) into
// the first `count` rows of `dst`, which has src's row size: the input
// pipeline's per-batch gather, allocation-free.
void GatherRows(const Tensor& src, const int64_t* rows, int64_t count,
                Tensor& dst);

// Splits rows like scikit-learn's train_test_split: the test set gets
// ceil(test_size * n) rows, test_size in (0, 1). Without `shuffle` the test set
// is the last rows. `stratify` (needs `shuffle` and rank-1 integer-valued y, at
// least two rows per class) keeps each class's share in both parts.
// Deterministic for a given seed. Returns {train, test}.
absl::StatusOr<std::pair<Dataset, Dataset>> TrainTestSplit(
    const Dataset& data, double test_size, uint64_t seed, bool shuffle = true,
    bool stratify = false);

// ---------------------------------------------------------------------------------------
// Per-feature scalers over the rows of a [rows, features...] tensor (rank >=
// 2), as in scikit-learn. Statistics are f64 tensors of shape [features...].
// transform returns f32 for f32 or integer input and f64 for f64 input.

// (x - mean) / scale with scale the population standard deviation; constant
// features get scale 1.
struct StandardScaler {
  Tensor mean;
  Tensor scale;

  absl::Status fit(const Tensor& x);
  absl::StatusOr<Tensor> transform(const Tensor& x) const;
  absl::StatusOr<Tensor> fit_transform(const Tensor& x);
  absl::StatusOr<Tensor> inverse_transform(const Tensor& x) const;
  bool fitted() const { return fitted_; }

 private:
  bool fitted_ = false;
};

// x * scale + min, mapping each feature's [data_min, data_max] onto
// [feature_min, feature_max]; constant features get a data range of 1.
struct MinMaxScaler {
  double feature_min = 0.0;
  double feature_max = 1.0;
  Tensor data_min;
  Tensor data_max;
  Tensor scale;
  Tensor min;

  absl::Status fit(const Tensor& x);
  absl::StatusOr<Tensor> transform(const Tensor& x) const;
  absl::StatusOr<Tensor> fit_transform(const Tensor& x);
  absl::StatusOr<Tensor> inverse_transform(const Tensor& x) const;
  bool fitted() const { return fitted_; }

 private:
  bool fitted_ = false;
};

}  // namespace sequent

#endif  // SEQUENT_FRONTEND_DATA_H_
