#include "frontend/device.h"

#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/reference/reference_backend.h"
#include "frontend/error.h"

#ifdef SEQUENT_WITH_CUDA
#include "backends/cuda/cuda_backend.h"
#endif

namespace sequent {
namespace {

thread_local std::optional<Device> scoped_device;

absl::StatusOr<std::pair<std::string, int>> ParseDevice(
    const std::string& spec) {
  std::string type = spec;
  int index = 0;
  if (const size_t colon = spec.find(':'); colon != std::string::npos) {
    type = spec.substr(0, colon);
    if (!absl::SimpleAtoi(spec.substr(colon + 1), &index) || index < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bad device '", spec, "': the index after ':' must be a number"));
    }
  }
  if (type == "gpu") type = "cuda";
  if (type != "cpu" && type != "cuda" && type != "reference") {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown device '", spec, "' (valid: cpu, cuda, cuda:N, reference)"));
  }
  return std::make_pair(type, index);
}

}  // namespace

Device::Device(const char* spec) : Device(std::string(spec)) {}

Device::Device(const std::string& spec) {
  auto parsed = ValueOrThrow(ParseDevice(spec));
  type_ = parsed.first;
  index_ = parsed.second;
}

Device Device::Auto() {
  return CudaAvailable() ? Device(Parsed{}, "cuda", 0)
                         : Device(Parsed{}, "cpu", 0);
}

std::string Device::ToString() const {
  return type_ == "cuda" ? absl::StrCat(type_, ":", index_) : type_;
}

bool CudaBuilt() {
#ifdef SEQUENT_WITH_CUDA
  return true;
#else
  return false;
#endif
}

bool CudaAvailable() {
#ifdef SEQUENT_WITH_CUDA
  return CudaBackend::DeviceStatus().ok();
#else
  return false;  // Built without --config=cuda.
#endif
}

absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(const Device& device) {
  if (device.type() == "cpu") return std::unique_ptr<Backend>(new CpuBackend());
  if (device.type() == "reference")
    return std::unique_ptr<Backend>(new ReferenceBackend());
#ifdef SEQUENT_WITH_CUDA
  if (absl::Status s = CudaBackend::DeviceStatus(); !s.ok()) return s;
  return std::unique_ptr<Backend>(new CudaBackend());
#endif
  return absl::UnavailableError(
      absl::StrCat("device '", device.ToString(),
                   "' requested, but this build of sequent has no CUDA "
                   "backend; use Device::CPU() or "
                   "Device::Auto()"));
}

WithDevice::WithDevice(Device device) {
  if (scoped_device) previous_ = std::make_unique<Device>(*scoped_device);
  scoped_device = std::move(device);
}

WithDevice::~WithDevice() {
  if (previous_) {
    scoped_device = *previous_;
  } else {
    scoped_device.reset();
  }
}

Device WithDevice::Current() {
  return scoped_device ? *scoped_device : Device::Auto();
}

}  // namespace sequent
