// Writes the seed corpora under fuzz/corpus/ (run by fuzz/run_fuzzer.sh seeds):
// a tiny compiled model, its optimized graph as IR text, small IDX, CSV and
// NPY files.
#include <fstream>
#include <string>

#include "core/text_ir.h"
#include "frontend/sequent.h"

namespace {

void Write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string Idx(unsigned char type, const std::string& dims,
                const std::string& payload) {
  std::string out = {0, 0, static_cast<char>(type),
                     static_cast<char>(dims.size() / 4)};
  return out + dims + payload;
}

}  // namespace

int main() {
  using namespace sequent;
  const std::string c = "fuzz/corpus/";
  Sequential model({Input({3}), Dense(2, "relu"), Dropout(0.5),
                    BatchNormalization(), Dense(2)});
  model.compile(Adam{}, SparseCategoricalCrossentropy{.from_logits = true},
                {"accuracy"}, Device("reference"));
  model.save(c + "load_model_fuzzer/mlp.sqm");
  Sequential plain({Input({2, 2}), Flatten(), Dense(1)});
  plain.save(c + "load_model_fuzzer/uncompiled.sqm");
  Write(c + "text_ir_fuzzer/mlp.txt",
        PrintGraph(model.graph(GraphStage::kOptimized)));
  Write(c + "text_ir_fuzzer/train.txt",
        PrintGraph(model.graph(GraphStage::kTrain)));

  // u8 labels [3] and u8 images [2,2,2]; f32 [2].
  Write(c + "idx_fuzzer/labels.idx", Idx(0x08, {0, 0, 0, 3}, {1, 2, 3}));
  Write(c + "idx_fuzzer/images.idx",
        Idx(0x08, {0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2},
            {0, 1, 2, 3, 4, 5, 6, 7}));
  Write(c + "idx_fuzzer/floats.idx",
        Idx(0x0D, {0, 0, 0, 2}, std::string("\x3f\x80\0\0\x40\0\0\0", 8)));

  Write(c + "csv_fuzzer/header.csv", "\x01a,b,label\n1,2.5,0\n-3,4e2,1\n");
  Write(c + "csv_fuzzer/quoted.csv",
        "\x01\"x\",\"y\"\r\n\"1\", 2\r\n\r\n3,\"4\"\r\n");
  Write(c + "csv_fuzzer/semicolon.csv", std::string("\x02") + "1;2\n3;4\n");

  Tensor f(DType::kF32, Shape{2, 3});
  for (int i = 0; i < 6; ++i) f.data<float>()[i] = i * 0.5f;
  ThrowIfError(SaveNpy(c + "npy_fuzzer/f32.npy", f));
  Tensor l(DType::kI64, Shape{4});
  for (int i = 0; i < 4; ++i) l.data<int64_t>()[i] = i;
  ThrowIfError(SaveNpy(c + "npy_fuzzer/i64.npy", l));
  Tensor b(DType::kBool, Shape{2});
  ThrowIfError(SaveNpy(c + "npy_fuzzer/bool.npy", b));
  return 0;
}
