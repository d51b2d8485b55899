#ifndef SEQUENT_CORE_DTYPE_H_
#define SEQUENT_CORE_DTYPE_H_

#include <cstddef>
#include <cstdint>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace sequent {

enum class DType : uint8_t { kF32, kF64, kBF16, kF16, kI32, kI64, kBool };

// Short names used by the text IR: f32, f64, bf16, f16, i32, i64, bool.
absl::string_view DTypeName(DType dtype);
absl::StatusOr<DType> ParseDType(absl::string_view name);
size_t DTypeSize(DType dtype);
bool IsFloating(DType dtype);
bool IsInteger(DType dtype);

// Maps a C++ element type to its DType (float -> kF32, ...).
template <typename T>
struct DTypeOf;
template <>
struct DTypeOf<float> {
  static constexpr DType value = DType::kF32;
};
template <>
struct DTypeOf<double> {
  static constexpr DType value = DType::kF64;
};
template <>
struct DTypeOf<int32_t> {
  static constexpr DType value = DType::kI32;
};
template <>
struct DTypeOf<int64_t> {
  static constexpr DType value = DType::kI64;
};
template <>
struct DTypeOf<bool> {
  static constexpr DType value = DType::kBool;
};

// bf16 and f16 are stored as raw 16-bit patterns; these convert with round-to-nearest-even.
uint16_t FloatToBF16(float value);
float BF16ToFloat(uint16_t bits);
uint16_t FloatToF16(float value);
float F16ToFloat(uint16_t bits);

}  // namespace sequent

#endif  // SEQUENT_CORE_DTYPE_H_
