#ifndef SEQUENT_FRONTEND_SAVING_H_
#define SEQUENT_FRONTEND_SAVING_H_

// Save files: Sequential::save / save_weights / load_weights, load_model and
// the ModelCheckpoint callback are built on these. The byte layout is
// documented in frontend/SAVE_FORMAT.md.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/tensor.h"
#include "frontend/device.h"
#include "frontend/model.h"

namespace sequent {

inline constexpr char kSaveMagic[] = "SEQUENTM";  // 8 bytes in the file.
inline constexpr uint32_t kSaveFormatVersion = 1;
// Header flag: the file holds only the layers' variables (save_weights).
inline constexpr uint32_t kSaveFlagWeightsOnly = 1u << 0;

struct SavedVariable {
  std::string name;
  Tensor value;
};

// The contents of a save file.
struct SaveFile {
  uint32_t version = kSaveFormatVersion;
  uint32_t flags = 0;
  std::string config;  // The model config as "key=value" lines.
  std::string graph;   // The optimized forward graph as IR text; may be empty.
  std::vector<SavedVariable> variables;
};

// The file's bytes: header, section table, sections, CRC32 trailer.
absl::StatusOr<std::string> EncodeSaveFile(const SaveFile& file);
// Checks every size and offset against bytes.size() before it reads or
// allocates anything, then the magic, version, checksums and records.
absl::StatusOr<SaveFile> DecodeSaveFile(absl::string_view bytes);

// Writes "<path>.tmp.<pid>", fsyncs it, renames it over `path` and fsyncs the
// directory: a reader sees the old file or the new one, never a torn one.
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view bytes);
// Reads and decodes; error messages start with the path.
absl::StatusOr<SaveFile> ReadSaveFile(const std::string& path);

// The Status versions of the API below.
absl::Status SaveModel(const Sequential& model, const std::string& path,
                       bool weights_only);
absl::StatusOr<Sequential> LoadModel(const std::string& path,
                                     std::optional<Device> device);
absl::Status LoadWeights(Sequential& model, const std::string& path);

// keras.models.load_model: the model as saved, compiled as it was (same
// optimizer state, learning rate, seed), on `device` or else the device it was
// saved from. Throws sequent::Error naming the file.
Sequential load_model(const std::string& path,
                      std::optional<Device> device = std::nullopt);

}  // namespace sequent

#endif  // SEQUENT_FRONTEND_SAVING_H_
