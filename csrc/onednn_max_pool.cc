// tpflax's native part: oneDNN's max pooling as an XLA FFI handler (CPU, float32, rank-4 NHWC
// or NCHW), the kernel TensorFlow's MaxPool runs on CPU.
//
//   tpflax_onednn_max_pool   x -> y, first (uint8, y's shape)
// Attributes: kernel, strides, pad_lo, pad_hi (int64 [2] each: height, width) and nchw (bool).
//
// y is the maximum of each window (padding excluded); `first` is oneDNN's workspace for the
// training forward: for each output, the row-major index of the window's tap that holds the
// maximum, counted over the whole window, padded taps included. tpflax builds the derivative
// from it (tpflax/_src/max_pool.py), so it must mean exactly that: the handler checks that
// oneDNN lays it out as one uint8 per output in y's layout and fails otherwise.
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <sstream>
#include <string>

#include "dnnl.hpp"
#include "onednn_common.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;

namespace {

using tpflax::Engine;
using tpflax::NchwDims;
using tpflax::PlainDesc;
constexpr auto kF32 = memory::data_type::f32;
constexpr auto kU8 = memory::data_type::u8;

struct Entry {
  dnnl::primitive pool;
  memory::desc scratch;
};

memory::dims Pair(ffi::Span<const int64_t> v) { return {v[0], v[1]}; }

std::shared_ptr<Entry> Build(const memory::dims& src, const memory::dims& dst,
                             const memory::dims& kernel, const memory::dims& strides,
                             const memory::dims& lo, const memory::dims& hi, bool nchw) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::pooling_forward::primitive_desc pd(
      Engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::pooling_max,
      PlainDesc(src, kF32, nchw), PlainDesc(dst, kF32, nchw), strides, kernel,
      memory::dims{0, 0}, lo, hi, attr);
  if (pd.workspace_desc() != PlainDesc(dst, kU8, nchw)) {
    throw std::runtime_error("the workspace is not one uint8 index per output");
  }
  auto entry = std::make_shared<Entry>();
  entry->pool = dnnl::pooling_forward(pd);
  entry->scratch = pd.scratchpad_desc();
  return entry;
}

using Data = ffi::Buffer<ffi::F32, 4>;
using DataOut = ffi::ResultBuffer<ffi::F32, 4>;
using Index = ffi::Buffer<ffi::U8, 4>;
using IndexOut = ffi::ResultBuffer<ffi::U8, 4>;
using Ints = ffi::Span<const int64_t>;

ffi::Error MaxPool(Data x, DataOut y, IndexOut first, Ints kernel, Ints strides, Ints pad_lo,
                   Ints pad_hi, bool nchw) {
  try {
    if (kernel.size() != 2 || strides.size() != 2 || pad_lo.size() != 2 || pad_hi.size() != 2) {
      throw std::runtime_error("kernel, strides, pad_lo and pad_hi need two values each");
    }
    const auto src = NchwDims(x.dimensions(), nchw);
    const auto dst = NchwDims(y->dimensions(), nchw);
    std::ostringstream key;
    for (const auto& dims : {src, dst, Pair(kernel), Pair(strides), Pair(pad_lo), Pair(pad_hi)}) {
      for (auto d : dims) key << d << ',';
    }
    key << nchw;
    auto entry = tpflax::Cached<Entry>(key.str(), [&] {
      return Build(src, dst, Pair(kernel), Pair(strides), Pair(pad_lo), Pair(pad_hi), nchw);
    });
    auto& engine = Engine();
    std::lock_guard<std::mutex> lock(tpflax::ExecMutex());
    auto& stream = tpflax::Stream();
    entry->pool.execute(
        stream,
        {{DNNL_ARG_SRC, memory(PlainDesc(src, kF32, nchw), engine, x.typed_data())},
         {DNNL_ARG_DST, memory(PlainDesc(dst, kF32, nchw), engine, y->typed_data())},
         {DNNL_ARG_WORKSPACE, memory(PlainDesc(dst, kU8, nchw), engine, first->typed_data())},
         {DNNL_ARG_SCRATCHPAD,
          memory(entry->scratch, engine, tpflax::Grow(0, entry->scratch.get_size()))}});
    stream.wait();
  } catch (const std::exception& e) {
    return ffi::Error(ffi::ErrorCode::kInternal,
                      std::string("tpflax oneDNN max pooling: ") + e.what());
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(TpflaxOnednnMaxPool, MaxPool,
                              ffi::Ffi::Bind()
                                  .Arg<Data>()
                                  .Ret<Data>()
                                  .Ret<Index>()
                                  .Attr<Ints>("kernel")
                                  .Attr<Ints>("strides")
                                  .Attr<Ints>("pad_lo")
                                  .Attr<Ints>("pad_hi")
                                  .Attr<bool>("nchw"));
