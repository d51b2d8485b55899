#ifndef SEQUENT_BACKENDS_CPU_DENORMALS_H_
#define SEQUENT_BACKENDS_CPU_DENORMALS_H_

// Denormal floats (|x| < 2^-126 in f32) flushed to zero while the CPU backend
// runs, as TensorFlow (and so Keras on it) does by default and PyTorch does
// after torch.set_flush_denormal(True).
//
// Why: a trained model's gradients and Adam moments decay towards zero, and
// x86 cores take a slow path for every denormal operand or result. Training a
// 784-512-512-10 MLP on one batch, the Adam updates ran 2-3x slower once the
// moments underflowed. Flushed, such values become 0: far below any weight's
// rounding, so no result a model reports changes beyond that.

namespace sequent::cpu {

// The process-wide switch, read by every Run: on unless SEQUENT_FLUSH_DENORMALS
// is "0" when the process first asks.
bool FlushDenormals();
void SetFlushDenormals(bool flush);

// For the duration of one run: the calling thread flushes when `flush` (its
// own mode comes back at destruction), and so do the `team` OpenMP threads this
// thread's parallel regions run on. Those pool threads keep the mode between
// runs (the caller's own OpenMP regions on them flush too, as in a TensorFlow
// process), so the team is switched only when it grows or `flush` changes: one
// parallel region then, none otherwise.
class ScopedFlushDenormals {
 public:
  ScopedFlushDenormals(bool flush, int team);
  ~ScopedFlushDenormals();
  ScopedFlushDenormals(const ScopedFlushDenormals&) = delete;
  ScopedFlushDenormals& operator=(const ScopedFlushDenormals&) = delete;

 private:
  unsigned int saved_mode_;
};

}  // namespace sequent::cpu

#endif  // SEQUENT_BACKENDS_CPU_DENORMALS_H_
