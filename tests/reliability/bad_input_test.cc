// Issue 10's bad-input table: one row per mistake a user (or a corrupt or
// hostile file) can make. Each row must end in sequent::Error whose text names
// the problem (or, where Keras accepts the input, in the behaviour Keras has),
// never a crash, abort, hang or an allocation a header merely claims (the table
// also runs under --config=asan).
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_replace.h"
#include "frontend/sequent.h"

namespace sequent {
namespace {

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

std::string WriteFile(const std::string& name, const std::string& bytes) {
  const std::string path = TempPath(name);
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Two classes, 4 features, 16 samples.
std::pair<Tensor, Tensor> Data(int64_t n = 16) {
  Tensor x(DType::kF32, Shape{n, 4});
  Tensor y(DType::kI32, Shape{n});
  for (int64_t i = 0; i < n; ++i) {
    for (int j = 0; j < 4; ++j) {
      x.data<float>()[i * 4 + j] = static_cast<float>((i % 2 ? 1 : -1) + j);
    }
    y.data<int32_t>()[i] = static_cast<int32_t>(i % 2);
  }
  return {x, y};
}

std::shared_ptr<Sequential> Compiled() {
  auto model = std::make_shared<Sequential>(
      std::initializer_list<LayerPtr>{Input({4}), Dense(8, "relu"), Dense(2)});
  model->compile(Adam{.learning_rate = 0.01},
                 SparseCategoricalCrossentropy{.from_logits = true},
                 {"accuracy"}, Device::CPU());
  return model;
}

// A saved compiled model's bytes (the file the corruption rows start from).
const std::string& SavedModel() {
  static const std::string* bytes = [] {
    const std::string path = TempPath("good.sqm");
    auto model = Compiled();
    auto [x, y] = Data();
    model->fit(x, y, {.verbose = 0});  // Variables exist once a step ran.
    model->save(path);
    return new std::string(ReadFile(path));
  }();
  return *bytes;
}

void PutU32(std::string& s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) s[at + i] = static_cast<char>(v >> (8 * i));
}
void PutU64(std::string& s, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i) s[at + i] = static_cast<char>(v >> (8 * i));
}
uint32_t Crc(const std::string& s, size_t begin, size_t end) {
  return static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(s.data() + begin),
            static_cast<uInt>(end - begin)));
}
// Rewrites the header, table and file checksums (SAVE_FORMAT.md), as a hostile
// writer would, so the reader has to catch the lie itself.
std::string FixChecksums(std::string s) {
  PutU32(s, 28, Crc(s, 0, 28));
  const size_t count = static_cast<unsigned char>(s[24]);
  const size_t table_end = 32 + count * 24;
  PutU32(s, table_end, Crc(s, 32, table_end));
  PutU32(s, s.size() - 4, Crc(s, 0, s.size() - 4));
  return s;
}
// The offset of the first dimension of the first saved variable: its record
// is name_len, name, dtype code, rank, dims.
size_t FirstDimOffset(const std::string& s) {
  const std::string name = ValueOrThrow(DecodeSaveFile(s)).variables.at(0).name;
  std::string record(4, '\0');
  PutU32(record, 0, static_cast<uint32_t>(name.size()));
  record += name;
  const size_t at = s.rfind(record);
  EXPECT_NE(at, std::string::npos);
  return at + record.size() + 8;
}

// A full Dense config with one key changed or added.
LayerConfig DenseConfig(const std::string& key, const std::string& value) {
  LayerConfig c = Dense(3)->config();
  c[key] = value;
  return c;
}

std::string Idx(unsigned char type, std::vector<uint32_t> dims,
                const std::string& payload) {
  std::string out = {0, 0, static_cast<char>(type),
                     static_cast<char>(dims.size())};
  for (uint32_t d : dims) {
    for (int i = 3; i >= 0; --i) out.push_back(static_cast<char>(d >> (8 * i)));
  }
  return out + payload;
}

std::string NpyHeader(const std::string& dict) {
  std::string header = dict;
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY\x01";
  out += '\0';
  out.push_back(static_cast<char>(header.size() & 0xFF));
  out.push_back(static_cast<char>(header.size() >> 8));
  return out + header;
}

struct BadInput {
  const char* name;
  std::function<void()> action;
  const char* message;  // Text the error must contain; "" for "no error".
};

std::vector<BadInput> BadInputs() {
  static const auto [x, y] = Data();
  return {
      // Model structure.
      {"conv2d_after_dense",
       [] {
         Sequential({Input({4}), Dense(8), Conv2D(2, {3, 3})}).summary_string();
       },
       "Conv2D expects a 4-D input (batch, height, width, channels), got "
       "f32[N,8]"},
      // Found by load_model_fuzzer (a saved input_shape=0): the first layer
      // read the value the failed Input never made.
      {"zero_input_dimension",
       [] {
         Sequential({Input({0}), Dense(2)}).summary_string();
       },
       "Input(shape=(0)): every dimension must be positive"},
      {"zero_input_dimension_in_a_model_file",
       [] {
         SaveFile f = ValueOrThrow(DecodeSaveFile(SavedModel()));
         const size_t at = f.config.find("input_shape=");
         f.config.replace(at, f.config.find('\n', at) - at, "input_shape=0");
         load_model(WriteFile("zero_dim.sqm", ValueOrThrow(EncodeSaveFile(f))));
       },
       "every dimension must be positive"},
      {"dense_on_images_without_flatten",
       [] {
         Sequential({Input({28, 28}), Dense(10)}).summary_string();
       },
       "add a Flatten() layer"},
      {"unknown_layer_type_in_config",
       [] {
         ValueOrThrow(LayerFromConfig("Densse", {{"name", "d"}}));
       },
       "Densse"},
      {"unknown_layer_config_key",
       [] {
         ValueOrThrow(LayerFromConfig("Dense", DenseConfig("unitz", "4")));
       },
       "unitz"},
      {"bad_layer_config_value",
       [] {
         ValueOrThrow(LayerFromConfig("Dense", DenseConfig("units", "x")));
       },
       "units"},
      {"unknown_activation",
       [] {
         Sequential({Input({4}), Dense(2, "relux")})
             .compile("adam", "mse", {}, Device::CPU());
       },
       "relux"},
      {"unknown_optimizer", [] { Compiled()->compile("adamm", "mse"); },
       "unknown optimizer 'adamm'"},
      {"unknown_loss", [] { Compiled()->compile("adam", "crossentropy"); },
       "unknown loss 'crossentropy'"},
      {"unknown_metric",
       [] { Compiled()->compile("adam", "mse", {"precision"}, Device::CPU()); },
       "unknown metric 'precision'"},

      // Data against the model.
      {"x_shape_differs_from_input",
       [] {
         Compiled()->fit(Tensor(DType::kF32, Shape{16, 5}), y, {.verbose = 0});
       },
       "x has shape (16, 5), but the model's Input expects (None, 4)"},
      {"bool_x",
       [] {
         Compiled()->fit(Tensor(DType::kBool, Shape{16, 4}), y, {.verbose = 0});
       },
       "x must be numeric, got bool"},
      {"label_out_of_range",
       [] {
         Tensor bad = y;
         bad.data<int32_t>()[3] = 7;
         Compiled()->fit(x, bad, {.verbose = 0});
       },
       "label 7 at sample 3 is out of range"},
      {"negative_label",
       [] {
         Tensor bad = y;
         bad.data<int32_t>()[2] = -1;
         Compiled()->fit(x, bad, {.verbose = 0});
       },
       "label -1 at sample 2 is out of range"},
      {"xy_length_mismatch",
       [] {
         Compiled()->fit(x, Tensor(DType::kI32, Shape{15}), {.verbose = 0});
       },
       "x has 16, y has 15"},
      {"nan_in_x",
       [] {
         Tensor bad = x;
         bad.data<float>()[5] = std::numeric_limits<float>::quiet_NaN();
         Compiled()->fit(bad, y, {.verbose = 0});
       },
       "x contains NaN (sample 1)"},
      {"inf_in_x",
       [] {
         Tensor bad = x;
         bad.data<float>()[9] = std::numeric_limits<float>::infinity();
         Compiled()->evaluate(bad, y, {.verbose = 0});
       },
       "x contains Inf (sample 2)"},
      {"nan_in_y",
       [] {
         auto model = std::make_shared<Sequential>(
             std::initializer_list<LayerPtr>{Input({4}), Dense(1)});
         model->compile("sgd", "mse", {}, Device::CPU());
         Tensor t(DType::kF32, Shape{16, 1});
         t.data<float>()[4] = std::numeric_limits<float>::quiet_NaN();
         model->fit(x, t, {.verbose = 0});
       },
       "y contains NaN or Inf at element 4"},
      {"empty_data",
       [] {
         Compiled()->fit(Tensor(DType::kF32, Shape{0, 4}),
                         Tensor(DType::kI32, Shape{0}), {.verbose = 0});
       },
       "x is empty (0 samples)"},
      {"batch_size_zero",
       [] { Compiled()->fit(x, y, {.batch_size = 0, .verbose = 0}); },
       "batch_size must be a positive integer, got 0"},
      {"validation_split_one",
       [] { Compiled()->fit(x, y, {.verbose = 0, .validation_split = 1.0}); },
       "validation_split must be in [0, 1), got 1"},
      {"validation_split_negative",
       [] { Compiled()->fit(x, y, {.verbose = 0, .validation_split = -0.5}); },
       "validation_split must be in [0, 1), got -0.5"},

      // Model files.
      {"model_file_missing", [] { load_model(TempPath("no_such_model.sqm")); },
       "no_such_model.sqm': No such file or directory"},
      {"model_file_not_a_model",
       [] { load_model(WriteFile("text.sqm", "hello, world\n")); },
       "not a sequent save file"},
      {"model_file_truncated",
       [] {
         const std::string& s = SavedModel();
         load_model(WriteFile("truncated.sqm", s.substr(0, s.size() / 2)));
       },
       "truncated.sqm': truncated: section"},
      {"model_file_bit_flipped",
       [] {
         std::string s = SavedModel();
         s[s.size() / 2] ^= 0x10;
         load_model(WriteFile("flipped.sqm", s));
       },
       "checksum mismatch"},
      {"model_file_newer_version",
       [] {
         std::string s = SavedModel();
         PutU32(s, 8, kSaveFormatVersion + 1);
         load_model(WriteFile("newer.sqm", FixChecksums(s)));
       },
       "newer than this build of sequent reads"},
      {"model_file_huge_section_length",
       [] {
         std::string s = SavedModel();
         PutU64(s, 32 + 16, uint64_t{1} << 62);  // CONF's length.
         load_model(WriteFile("huge_section.sqm", FixChecksums(s)));
       },
       "does not fit"},
      {"model_file_huge_file_size",
       [] {
         std::string s = SavedModel();
         PutU64(s, 16, uint64_t{1} << 40);
         load_model(WriteFile("huge_size.sqm", FixChecksums(s)));
       },
       "corrupt section table"},
      {"model_file_huge_variable_dims",
       [] {
         std::string s = SavedModel();
         const size_t at = FirstDimOffset(s);
         PutU64(s, at, uint64_t{1} << 40);
         load_model(WriteFile("huge_dims.sqm", FixChecksums(s)));
       },
       "needs more bytes than the"},
      {"model_file_negative_dims",
       [] {
         std::string s = SavedModel();
         const size_t at = FirstDimOffset(s);
         PutU64(s, at, static_cast<uint64_t>(int64_t{-4}));
         load_model(WriteFile("negative_dims.sqm", FixChecksums(s)));
       },
       "has negative dimension -4"},
      {"model_file_huge_layer_count",
       [] {
         SaveFile f = ValueOrThrow(DecodeSaveFile(SavedModel()));
         const size_t at = f.config.find("layers=");
         f.config.replace(at, f.config.find('\n', at) - at,
                          "layers=99999999999");
         const std::string bytes = ValueOrThrow(EncodeSaveFile(f));
         load_model(WriteFile("huge_layers.sqm", bytes));
       },
       "layer count '99999999999'"},
      {"model_file_graph_with_a_cycle",
       [] {
         SaveFile f = ValueOrThrow(DecodeSaveFile(SavedModel()));
         f.graph =
             "graph \"g\" {\n"
             "  %0 = relu(%1) : f32[N,4]\n"
             "  %1 = relu(%0) : f32[N,4]\n"
             "  output \"y_pred\" = %1\n"
             "}\n";
         load_model(WriteFile("cycle.sqm", ValueOrThrow(EncodeSaveFile(f))));
       },
       "section GRPH"},

      // Dataset files.
      {"idx_missing",
       [] { ValueOrThrow(LoadIdx(TempPath("nope.idx: no such file"))); },
       "nope.idx"},
      {"idx_bad_magic",
       [] {
         ValueOrThrow(
             LoadIdx(WriteFile("magic.idx: bad magic", "\x01\x02\x08\x01")));
       },
       "magic.idx"},
      {"idx_claims_more_than_it_holds",
       [] {
         ValueOrThrow(LoadIdx(
             WriteFile("claims.idx: truncated: header says 60000 u8 images",
                       Idx(0x08, {60000, 28, 28}, std::string(10, 'a')))));
       },
       "claims.idx"},
      {"idx_huge_dims",
       [] {
         ValueOrThrow(LoadIdx(
             WriteFile("huge.idx: header says 4294967295 f32 images",
                       Idx(0x0D, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, ""))));
       },
       "huge.idx"},
      {"csv_missing", [] { load_csv(TempPath("nope.csv: no such file")); },
       "nope.csv"},
      {"csv_ragged_row",
       [] { load_csv(WriteFile("ragged.csv:3: ragged row", "a,b\n1,2\n3\n")); },
       "ragged.csv"},
      {"csv_text_cell", [] { load_csv(WriteFile("text.csv", "a,b\n1,two\n")); },
       "not a number: \"two\""},
      {"npy_missing", [] { load_npy(TempPath("nope.npy: no such file")); },
       "nope.npy"},
      {"npy_bad_magic",
       [] { load_npy(WriteFile("magic.npy: bad magic", "NUMPY-ish")); },
       "magic.npy"},
      {"npy_huge_shape",
       [] {
         load_npy(WriteFile(
             "huge.npy: header says <f4 shape (100000000000, 100000000000), "
             "more than",
             NpyHeader("{'descr': '<f4', 'fortran_order': False, 'shape': "
                       "(100000000000, 100000000000), }")));
       },
       "huge.npy"},
      {"npy_fortran_order",
       [] {
         load_npy(WriteFile(
             "fortran.npy",
             NpyHeader("{'descr': '<f4', 'fortran_order': True, 'shape': "
                       "(1,), }") +
                 std::string(4, '\0')));
       },
       "fortran_order is True"},
      {"npy_truncated_data",
       [] {
         load_npy(WriteFile(
             "short.npy: truncated",
             NpyHeader("{'descr': '<f8', 'fortran_order': False, 'shape': "
                       "(1000,), }") +
                 std::string(16, '\0')));
       },
       "short.npy"},
  };
}

class BadInputTest : public ::testing::TestWithParam<BadInput> {};

TEST_P(BadInputTest, ErrorNamesTheProblem) {
  const BadInput& c = GetParam();
  try {
    c.action();
    ADD_FAILURE() << "no error; expected one mentioning: " << c.message;
  } catch (const Error& e) {
    std::cout << "error: " << e.what() << "\n";
    EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos)
        << "message: " << e.what() << "\nexpected to contain: " << c.message;
  }
}

INSTANTIATE_TEST_SUITE_P(Table, BadInputTest, ::testing::ValuesIn(BadInputs()),
                         [](const ::testing::TestParamInfo<BadInput>& info) {
                           return std::string(info.param.name);
                         });

// Keras accepts a batch_size larger than the data: the epoch is one smaller
// batch, not an error.
TEST(BadInputBehaviour, BatchLargerThanTheDataRunsOneSmallerBatch) {
  const auto [x, y] = Data(10);
  History h =
      Compiled()->fit(x, y, {.batch_size = 64, .epochs = 2, .verbose = 0});
  EXPECT_EQ(h.params["steps"], 1);
  ASSERT_EQ(h.history["loss"].size(), 2u);
  EXPECT_TRUE(std::isfinite(h.history["loss"][1]));
}

// TerminateOnNaN ends a run whose loss becomes NaN (here: weights set to NaN,
// so the first batch's loss is NaN) after that batch.
TEST(BadInputBehaviour, TerminateOnNaNStopsARunWhoseLossIsNaN) {
  const auto [x, y] = Data(64);
  auto model = Compiled();
  model->fit(x, y, {.batch_size = 16, .verbose = 0});
  std::vector<Tensor> w = model->get_weights();
  // The output layer's kernel: NaN through relu could come out as 0.
  for (int64_t i = 0; i < w[2].num_elements(); ++i) {
    w[2].data<float>()[i] = std::numeric_limits<float>::quiet_NaN();
  }
  model->set_weights(w);
  int batches = 0;
  auto count = std::make_shared<LambdaCallback>();
  count->on_batch_end_fn = [&](int, const Logs&) { ++batches; };
  History h =
      model->fit(x, y,
                 {.batch_size = 16,
                  .epochs = 5,
                  .verbose = 0,
                  .callbacks = {std::make_shared<TerminateOnNaN>(), count}});
  EXPECT_EQ(batches, 1);
  EXPECT_LE(h.epoch.size(), 1u);
}

}  // namespace
}  // namespace sequent
