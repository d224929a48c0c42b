// What tpflax's oneDNN handlers share (onednn_conv.cc, onednn_batch_norm.cc): one CPU engine
// per process, the primitive caches, one execution at a time, and per-thread scratch buffers.
//
// Executions are serialised: each XLA thread that calls in would otherwise run its own OpenMP
// team at once (oversubscription). Scratchpads are user-managed (thread-local buffers), so
// cached primitives are never shared mutable state.
#ifndef TPFLAX_CSRC_ONEDNN_COMMON_H_
#define TPFLAX_CSRC_ONEDNN_COMMON_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <omp.h>

#include "dnnl.hpp"

namespace tpflax {

inline dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

inline std::mutex& ExecMutex() {
  static std::mutex m;
  return m;
}

// The entry cached under `key` (one cache per Entry type, under its own mutex), made by
// `build()` the first time it is asked for.
template <typename Entry, typename Build>
std::shared_ptr<Entry> Cached(const std::string& key, Build build) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<Entry>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  std::shared_ptr<Entry> entry = build();
  cache.emplace(key, entry);
  return entry;
}

// Thread-local buffer `slot` (0: scratchpads, 1: reordered weights), grown to `bytes`.
inline void* Grow(int slot, size_t bytes) {
  thread_local std::vector<uint8_t> buffers[2];
  auto& buffer = buffers[slot];
  if (buffer.size() < bytes) buffer.resize(bytes);
  return buffer.empty() ? nullptr : buffer.data();
}

// Runs oneDNN on one OpenMP thread in this scope (the calling thread's setting, restored on
// exit). For batch normalization below a size the caller chooses: with two threads its calls
// stalled for 2-10x their time in many rounds, on one thread never, and as fast
// (docs/speed.md). Primitives created and run in such a scope see one thread both times, and
// are cached apart from the two-thread ones (the caller's key says which).
class OneThread {
 public:
  OneThread() : saved_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~OneThread() { omp_set_num_threads(saved_); }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;

 private:
  int saved_;
};

// oneDNN's logical dims {N, C, H, W} of a rank-4 buffer laid out [N, C, H, W] (`nchw`) or
// [N, H, W, C].
template <typename Dims>
dnnl::memory::dims NchwDims(const Dims& d, bool nchw) {
  return nchw ? dnnl::memory::dims{d[0], d[1], d[2], d[3]}
              : dnnl::memory::dims{d[0], d[3], d[1], d[2]};
}

// The plain (unblocked) descriptor of such a buffer: its logical dims, `type`, its layout.
inline dnnl::memory::desc PlainDesc(const dnnl::memory::dims& nchw_dims,
                                    dnnl::memory::data_type type, bool nchw) {
  return dnnl::memory::desc(
      nchw_dims, type, nchw ? dnnl::memory::format_tag::nchw : dnnl::memory::format_tag::nhwc);
}

// The calling thread's stream on Engine().
inline dnnl::stream& Stream() {
  thread_local dnnl::stream stream(Engine());
  return stream;
}

}  // namespace tpflax

#endif  // TPFLAX_CSRC_ONEDNN_COMMON_H_
