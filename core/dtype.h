#ifndef SEQUENT_CORE_DTYPE_H_
#define SEQUENT_CORE_DTYPE_H_

#include <bit>
#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

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

// bf16 and f16 are stored as raw 16-bit patterns; these convert with
// round-to-nearest-even. FloatToBF16 is inline and branch-free (NaN stays a
// quiet NaN) so that the CPU backend's conversion loops vectorize around it.
inline uint16_t FloatToBF16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
  const bool nan = (bits & 0x7FFFFFFFu) > 0x7F800000u;
  return static_cast<uint16_t>(nan ? ((bits >> 16) | 0x40u) : rounded);
}
float BF16ToFloat(uint16_t bits);
uint16_t FloatToF16(float value);
float F16ToFloat(uint16_t bits);

}  // namespace sequent

#endif  // SEQUENT_CORE_DTYPE_H_
