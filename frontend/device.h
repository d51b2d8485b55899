#ifndef SEQUENT_FRONTEND_DEVICE_H_
#define SEQUENT_FRONTEND_DEVICE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "backends/backend.h"

namespace sequent {

// Where a model runs: "cpu", "cuda" / "cuda:N", or "reference" (the oracle, for
// tests). Device::Auto() is PyTorch's idiom: CUDA when a GPU and the CUDA
// backend are there, else CPU.
class Device {
 public:
  Device() : Device(Auto()) {}
  // Parses "cpu", "cuda", "cuda:1", "gpu", "reference"; anything else throws
  // sequent::Error.
  Device(const char* spec);  // NOLINT: implicit, as tf.device("cpu") reads.
  Device(const std::string& spec);  // NOLINT

  static Device Auto();
  static Device CPU() { return Device("cpu"); }
  static Device CUDA(int index = 0) {
    return Device("cuda:" + std::to_string(index));
  }

  const std::string& type() const { return type_; }
  int index() const { return index_; }
  std::string ToString() const;
  friend bool operator==(const Device& a, const Device& b) {
    return a.type_ == b.type_ && a.index_ == b.index_;
  }

 private:
  struct Parsed {};
  Device(Parsed, std::string type, int index)
      : type_(std::move(type)), index_(index) {}
  std::string type_;
  int index_ = 0;
};

// True when this build has the CUDA backend (built with --config=cuda), GPU
// or not.
bool CudaBuilt();

// True when this build has the CUDA backend and a GPU is visible.
bool CudaAvailable();

// The backend for a device; CUDA requests fail with a message saying why.
absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(const Device& device);

// tf.device: inside the scope, models compiled without an explicit device use
// this one.
class WithDevice {
 public:
  explicit WithDevice(Device device);
  ~WithDevice();
  WithDevice(const WithDevice&) = delete;
  WithDevice& operator=(const WithDevice&) = delete;
  // The innermost scoped device, or Device::Auto().
  static Device Current();

 private:
  std::unique_ptr<Device> previous_;
};

}  // namespace sequent

#endif  // SEQUENT_FRONTEND_DEVICE_H_
