#include "backends/cpu/denormals.h"

#include <omp.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define SEQUENT_HAS_MXCSR 1
#endif

namespace sequent::cpu {
namespace {

#ifdef SEQUENT_HAS_MXCSR
// MXCSR's flush-to-zero (results) and denormals-are-zero (operands) bits.
constexpr unsigned int kFlushBits = 0x8040;
unsigned int Mode() { return _mm_getcsr(); }
void SetMode(unsigned int mode) { _mm_setcsr(mode); }
#else
constexpr unsigned int kFlushBits = 0;
unsigned int Mode() { return 0; }
void SetMode(unsigned int) {}
#endif

void SetFlushing(bool flush) {
  SetMode(flush ? Mode() | kFlushBits : Mode() & ~kFlushBits);
}

std::atomic<bool>& Switch() {
  static std::atomic<bool> flush = [] {
    const char* env = std::getenv("SEQUENT_FLUSH_DENORMALS");
    return env == nullptr || std::strcmp(env, "0") != 0;
  }();
  return flush;
}

// The largest team of this thread's OpenMP pool switched to flushing (0: none
// since the last switch back). libgomp keeps a pool per thread that starts
// parallel regions and reuses its threads in order, so a team of at most this
// size runs on threads already switched.
thread_local int flushing_team = 0;

}  // namespace

bool FlushDenormals() { return Switch().load(std::memory_order_relaxed); }

void SetFlushDenormals(bool flush) {
  Switch().store(flush, std::memory_order_relaxed);
}

ScopedFlushDenormals::ScopedFlushDenormals(bool flush, int team)
    : saved_mode_(Mode()) {
  if (kFlushBits == 0) return;
  if (flush ? team > flushing_team : flushing_team > 0) {
    const int size = flush ? team : flushing_team;
#pragma omp parallel num_threads(size)
    SetFlushing(flush);
    flushing_team = flush ? team : 0;
  }
  SetFlushing(flush);
}

ScopedFlushDenormals::~ScopedFlushDenormals() { SetMode(saved_mode_); }

}  // namespace sequent::cpu
