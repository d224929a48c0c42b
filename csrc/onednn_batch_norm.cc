// tpflax's native part: oneDNN's batch normalization with batch statistics (training) as XLA
// FFI handlers (CPU, float32, rank-4 NHWC or NCHW).
//
//   tpflax_onednn_bn_fwd   x, gamma [C], beta [C]              -> y, mean [C], variance [C]
//   tpflax_onednn_bn_bwd   x, dy, mean, variance, gamma        -> dx, dgamma [C], dbeta [C]
// Attributes: epsilon (float32), nchw (bool: x is [N,C,H,W], else [N,H,W,C]) and one_thread
// (bool: run on one OpenMP thread, onednn_common.h's OneThread; the caller's choice by size).
//
// The forward normalizes x with its own biased batch statistics, y = gamma * (x - mean) /
// sqrt(variance + epsilon) + beta, and returns them; the backward is that function's full
// gradient (through the statistics too) given the forward's mean and variance. These are the
// kernels TensorFlow's FusedBatchNormV3 runs on CPU (tensorpack's BatchNorm in training).
// Primitives are cached by shape (onednn_common.h); executions share the convolutions' lock.
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <unordered_map>

#include "dnnl.hpp"
#include "onednn_common.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;

namespace {

using tpflax::Engine;

struct Entry {
  dnnl::primitive fwd, bwd;
  memory::desc fwd_scratch, bwd_scratch;
};

// The float32 data buffer's descriptor, in its layout.
memory::desc DataDesc(ffi::Span<const int64_t> d, bool nchw) {
  return tpflax::PlainDesc(tpflax::NchwDims(d, nchw), memory::data_type::f32, nchw);
}

memory::desc ChannelDesc(const memory::desc& data) {
  return memory::desc({data.get_dims()[1]}, memory::data_type::f32, memory::format_tag::a);
}

std::shared_ptr<Entry> Build(const memory::desc& data, float epsilon) {
  auto entry = std::make_shared<Entry>();
  const auto flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::batch_normalization_forward::primitive_desc fwd(
      Engine(), dnnl::prop_kind::forward_training, data, data, epsilon, flags, attr);
  dnnl::batch_normalization_backward::primitive_desc bwd(
      Engine(), dnnl::prop_kind::backward, data, data, data, epsilon, flags, fwd, attr);
  entry->fwd = dnnl::batch_normalization_forward(fwd);
  entry->bwd = dnnl::batch_normalization_backward(bwd);
  entry->fwd_scratch = fwd.scratchpad_desc();
  entry->bwd_scratch = bwd.scratchpad_desc();
  return entry;
}

// The forward and backward for this shape, layout and epsilon (cached).
std::shared_ptr<Entry> Lookup(const memory::desc& data, float epsilon, bool nchw,
                              bool one_thread) {
  std::ostringstream key;
  for (auto d : data.get_dims()) key << d << ',';
  uint32_t bits;
  std::memcpy(&bits, &epsilon, sizeof bits);
  key << bits << ',' << nchw << ',' << one_thread;
  return tpflax::Cached<Entry>(key.str(), [&] { return Build(data, epsilon); });
}

using Data = ffi::Buffer<ffi::F32, 4>;
using Vector = ffi::Buffer<ffi::F32, 1>;
using DataOut = ffi::ResultBuffer<ffi::F32, 4>;
using VectorOut = ffi::ResultBuffer<ffi::F32, 1>;

using Args = std::unordered_map<int, std::pair<memory::desc, void*>>;

// Runs the cached forward (or, with `backward`, backward) for `data` with `args` (each a
// descriptor and the buffer it describes) and a scratchpad.
ffi::Error Run(bool backward, const memory::desc& data, float epsilon, bool nchw,
               bool one_thread, const Args& args) {
  try {
    std::optional<tpflax::OneThread> single;
    if (one_thread) single.emplace();
    auto entry = Lookup(data, epsilon, nchw, one_thread);
    const dnnl::primitive& primitive = backward ? entry->bwd : entry->fwd;
    const memory::desc& scratch_md = backward ? entry->bwd_scratch : entry->fwd_scratch;
    auto& engine = Engine();
    std::lock_guard<std::mutex> lock(tpflax::ExecMutex());
    std::unordered_map<int, memory> memories;
    for (const auto& [arg, md_ptr] : args) {
      memories.emplace(arg, memory(md_ptr.first, engine, md_ptr.second));
    }
    memories.emplace(DNNL_ARG_SCRATCHPAD,
                     memory(scratch_md, engine, tpflax::Grow(0, scratch_md.get_size())));
    auto& stream = tpflax::Stream();
    primitive.execute(stream, memories);
    stream.wait();
  } catch (const dnnl::error& e) {
    return ffi::Error(ffi::ErrorCode::kInternal,
                      std::string("tpflax oneDNN batch normalization (") +
                          (backward ? "bwd" : "fwd") + "): " + e.what());
  }
  return ffi::Error::Success();
}

ffi::Error Forward(Data x, Vector gamma, Vector beta, DataOut y, VectorOut mean,
                   VectorOut variance, float epsilon, bool nchw, bool one_thread) {
  const auto data = DataDesc(x.dimensions(), nchw);
  const auto channel = ChannelDesc(data);
  return Run(false, data, epsilon, nchw, one_thread,
             {{DNNL_ARG_SRC, {data, x.typed_data()}},
              {DNNL_ARG_SCALE, {channel, gamma.typed_data()}},
              {DNNL_ARG_SHIFT, {channel, beta.typed_data()}},
              {DNNL_ARG_DST, {data, y->typed_data()}},
              {DNNL_ARG_MEAN, {channel, mean->typed_data()}},
              {DNNL_ARG_VARIANCE, {channel, variance->typed_data()}}});
}

ffi::Error Backward(Data x, Data dy, Vector mean, Vector variance, Vector gamma, DataOut dx,
                    VectorOut dgamma, VectorOut dbeta, float epsilon, bool nchw,
                    bool one_thread) {
  const auto data = DataDesc(x.dimensions(), nchw);
  const auto channel = ChannelDesc(data);
  return Run(true, data, epsilon, nchw, one_thread,
             {{DNNL_ARG_SRC, {data, x.typed_data()}},
              {DNNL_ARG_DIFF_DST, {data, dy.typed_data()}},
              {DNNL_ARG_MEAN, {channel, mean.typed_data()}},
              {DNNL_ARG_VARIANCE, {channel, variance.typed_data()}},
              {DNNL_ARG_SCALE, {channel, gamma.typed_data()}},
              {DNNL_ARG_DIFF_SRC, {data, dx->typed_data()}},
              {DNNL_ARG_DIFF_SCALE, {channel, dgamma->typed_data()}},
              {DNNL_ARG_DIFF_SHIFT, {channel, dbeta->typed_data()}}});
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(TpflaxOnednnBnFwd, Forward,
                              ffi::Ffi::Bind()
                                  .Arg<Data>()
                                  .Arg<Vector>()
                                  .Arg<Vector>()
                                  .Ret<Data>()
                                  .Ret<Vector>()
                                  .Ret<Vector>()
                                  .Attr<float>("epsilon")
                                  .Attr<bool>("nchw")
                                  .Attr<bool>("one_thread"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(TpflaxOnednnBnBwd, Backward,
                              ffi::Ffi::Bind()
                                  .Arg<Data>()
                                  .Arg<Data>()
                                  .Arg<Vector>()
                                  .Arg<Vector>()
                                  .Arg<Vector>()
                                  .Ret<Data>()
                                  .Ret<Vector>()
                                  .Ret<Vector>()
                                  .Attr<float>("epsilon")
                                  .Attr<bool>("nchw")
                                  .Attr<bool>("one_thread"));
