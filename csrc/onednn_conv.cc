// tpflax's native part: oneDNN convolutions as XLA FFI handlers (CPU, float32 and a bfloat16
// forward, NHWC/HWIO).
//
// Five handlers, all on rank-4 buffers (batching is done in Python, src/tpflax/_src/onednn.py):
//   tpflax_onednn_conv_fwd          x [N,H,W,C], w [kh,kw,C/g,O]   -> y  [N,OH,OW,O]
//   tpflax_onednn_conv_bwd_data     dy [N,OH,OW,O], w              -> dx [N,H,W,C]
//   tpflax_onednn_conv_bwd_weights  x, dy                          -> dw [kh,kw,C/g,O]
//   tpflax_onednn_conv_fwd_post     x, w, v_1 .. v_k [O]           -> y, then post-ops on y
//   tpflax_onednn_conv_fwd_bf16     the forward on bfloat16 x, w, y (float32 accumulation)
// Attributes: strides, pad_lo, pad_hi, dilation (int64[2] each; dilation 1 = none, as in XLA)
// and groups (int64); fwd_post also `post`, the post-ops in order (int64 codes, kPost*: add,
// subtract or multiply by the next per-channel vector v_i, or ReLU), which oneDNN applies to
// each float32 result before it is stored (BatchNorm's inference affine and ReLU in the
// convolution's own pass). Shapes come from the buffers; Python computes the output shapes.
//
// Primitives (and their weight reorders) are cached by shape and attributes under a mutex;
// the engine, the one-at-a-time execution and the scratch buffers are onednn_common.h's.
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "dnnl.hpp"
#include "onednn_common.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

namespace {

using tpflax::Engine;
using tpflax::ExecMutex;
using tpflax::Grow;

struct Geometry {
  memory::dims src, wei, dst, strides, dilates, pad_l, pad_r;
  memory::dims wei_strides;
  dt type = dt::f32;  // of src, weights and dst (bf16: the forward only, f32 accumulation)
};

// oneDNN's logical dims: src/dst {N, C, H, W}; weights {O, I, kh, kw} or, grouped,
// {G, O/G, I/G, kh, kw}. The user's weights are HWIO: explicit strides describe them.
Geometry MakeGeometry(ffi::Span<const int64_t> x_dims, ffi::Span<const int64_t> w_dims,
                      ffi::Span<const int64_t> y_dims, ffi::Span<const int64_t> strides,
                      ffi::Span<const int64_t> pad_lo, ffi::Span<const int64_t> pad_hi,
                      ffi::Span<const int64_t> dilation, int64_t groups) {
  Geometry g;
  const int64_t kh = w_dims[0], kw = w_dims[1], ig = w_dims[2], o = w_dims[3];
  g.src = {x_dims[0], x_dims[3], x_dims[1], x_dims[2]};
  g.dst = {y_dims[0], y_dims[3], y_dims[1], y_dims[2]};
  if (groups == 1) {
    g.wei = {o, ig, kh, kw};
    g.wei_strides = {1, o, kw * ig * o, ig * o};
  } else {
    const int64_t og = o / groups;
    g.wei = {groups, og, ig, kh, kw};
    g.wei_strides = {og, 1, o, kw * ig * o, ig * o};
  }
  g.strides = {strides[0], strides[1]};
  g.dilates = {dilation[0] - 1, dilation[1] - 1};
  g.pad_l = {pad_lo[0], pad_lo[1]};
  g.pad_r = {pad_hi[0], pad_hi[1]};
  return g;
}

// Post-op codes of tpflax_onednn_conv_fwd_post (tpflax/_src/onednn.py's POST_OPS).
constexpr int64_t kPostAdd = 1, kPostSub = 2, kPostMul = 3, kPostRelu = 4;
using Post = std::vector<int64_t>;

std::string Key(const char* op, const Geometry& g, const Post& post) {
  std::ostringstream s;
  s << op << '|' << static_cast<int>(g.type);
  for (const auto* v :
       {&g.src, &g.wei, &g.dst, &g.strides, &g.dilates, &g.pad_l, &g.pad_r, &post}) {
    s << '|';
    for (auto d : *v) s << d << ',';
  }
  return s.str();
}

// A per-channel vector [O] as oneDNN's second operand of a binary post-op on dst {N,O,H,W}.
memory::desc ChannelDesc(const Geometry& g) {
  return memory::desc({1, g.dst[1], 1, 1}, dt::f32, tag::abcd);
}

dnnl::primitive_attr Attr(const Geometry& g, const Post& post) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (post.empty()) return attr;
  dnnl::post_ops ops;
  for (int64_t code : post) {
    if (code == kPostRelu) {
      ops.append_eltwise(dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    } else {
      const auto alg = code == kPostAdd   ? dnnl::algorithm::binary_add
                       : code == kPostSub ? dnnl::algorithm::binary_sub
                                          : dnnl::algorithm::binary_mul;
      ops.append_binary(alg, ChannelDesc(g));
    }
  }
  attr.set_post_ops(ops);
  return attr;
}

// One cached convolution: the primitive, the descriptors it wants, and the reorder between
// the user's HWIO weights and the primitive's blocked layout (absent when they agree).
struct Entry {
  dnnl::primitive conv;
  memory::desc scratch_md, wei_md;
  bool reorder = false;
  dnnl::reorder wei_reorder;
};

dnnl::convolution_forward::primitive_desc ForwardDesc(const Geometry& g, dnnl::prop_kind kind,
                                                      const Post& post = {}) {
  memory::desc src(g.src, g.type, tag::nhwc), dst(g.dst, g.type, tag::nhwc);
  memory::desc wei(g.wei, g.type, tag::any);
  return dnnl::convolution_forward::primitive_desc(
      Engine(), kind, dnnl::algorithm::convolution_direct, src, wei, dst, g.strides, g.dilates,
      g.pad_l, g.pad_r, Attr(g, post));
}

std::shared_ptr<Entry> Build(const char* op, const Geometry& g, const Post& post) {
  auto entry = std::make_shared<Entry>();
  memory::desc user_wei(g.wei, g.type, g.wei_strides);
  const std::string name(op);
  if (name == "fwd") {
    auto pd = ForwardDesc(g, dnnl::prop_kind::forward_inference, post);
    entry->conv = dnnl::convolution_forward(pd);
    entry->scratch_md = pd.scratchpad_desc();
    entry->wei_md = pd.weights_desc();
  } else {
    auto hint = ForwardDesc(g, dnnl::prop_kind::forward_training);
    memory::desc src(g.src, dt::f32, tag::nhwc), dst(g.dst, dt::f32, tag::nhwc);
    memory::desc wei(g.wei, dt::f32, tag::any);
    if (name == "bwd_data") {
      dnnl::convolution_backward_data::primitive_desc pd(
          Engine(), dnnl::algorithm::convolution_direct, src, wei, dst, g.strides, g.dilates,
          g.pad_l, g.pad_r, hint, Attr(g, {}));
      entry->conv = dnnl::convolution_backward_data(pd);
      entry->scratch_md = pd.scratchpad_desc();
      entry->wei_md = pd.weights_desc();
    } else {
      dnnl::convolution_backward_weights::primitive_desc pd(
          Engine(), dnnl::algorithm::convolution_direct, src, wei, dst, g.strides, g.dilates,
          g.pad_l, g.pad_r, hint, Attr(g, {}));
      entry->conv = dnnl::convolution_backward_weights(pd);
      entry->scratch_md = pd.scratchpad_desc();
      entry->wei_md = pd.diff_weights_desc();
    }
  }
  entry->reorder = entry->wei_md != user_wei;
  if (entry->reorder) {
    if (name == "bwd_weights") {
      entry->wei_reorder = dnnl::reorder(dnnl::reorder::primitive_desc(
          Engine(), entry->wei_md, Engine(), user_wei));
    } else {
      entry->wei_reorder = dnnl::reorder(dnnl::reorder::primitive_desc(
          Engine(), user_wei, Engine(), entry->wei_md));
    }
  }
  return entry;
}

std::shared_ptr<Entry> Lookup(const char* op, const Geometry& g, const Post& post) {
  return tpflax::Cached<Entry>(Key(op, g, post), [&] { return Build(op, g, post); });
}

// Runs one convolution: `x` is src (fwd, bwd_weights) or diff_dst (bwd_data), `w_or_dy` the
// user's HWIO weights (fwd, bwd_data) or diff_dst (bwd_weights), `out` the result; `post`
// and `vectors` (fwd only) the post-ops and the per-channel operands of the binary ones.
ffi::Error Run(const char* op, const Geometry& g, void* x, void* w_or_dy, void* out,
               const Post& post = {}, const std::vector<void*>& vectors = {}) {
  try {
    auto entry = Lookup(op, g, post);
    auto& engine = Engine();
    memory::desc src(g.src, g.type, tag::nhwc), dst(g.dst, g.type, tag::nhwc);
    memory::desc user_wei(g.wei, g.type, g.wei_strides);
    std::lock_guard<std::mutex> lock(ExecMutex());
    auto& stream = tpflax::Stream();
    memory scratch(entry->scratch_md, engine, Grow(0, entry->scratch_md.get_size()));
    const std::string name(op);
    if (name == "bwd_weights") {
      memory src_m(src, engine, x), dst_m(dst, engine, w_or_dy), user_m(user_wei, engine, out);
      memory wei_m = entry->reorder
                         ? memory(entry->wei_md, engine, Grow(1, entry->wei_md.get_size()))
                         : user_m;
      entry->conv.execute(stream, {{DNNL_ARG_SRC, src_m},
                                   {DNNL_ARG_DIFF_DST, dst_m},
                                   {DNNL_ARG_DIFF_WEIGHTS, wei_m},
                                   {DNNL_ARG_SCRATCHPAD, scratch}});
      if (entry->reorder) entry->wei_reorder.execute(stream, wei_m, user_m);
    } else {
      memory user_m(user_wei, engine, w_or_dy);
      memory wei_m = user_m;
      if (entry->reorder) {
        wei_m = memory(entry->wei_md, engine, Grow(1, entry->wei_md.get_size()));
        entry->wei_reorder.execute(stream, user_m, wei_m);
      }
      if (name == "fwd") {
        memory src_m(src, engine, x), dst_m(dst, engine, out);
        std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, src_m},
                                                {DNNL_ARG_WEIGHTS, wei_m},
                                                {DNNL_ARG_DST, dst_m},
                                                {DNNL_ARG_SCRATCHPAD, scratch}};
        for (size_t i = 0, v = 0; i < post.size(); ++i) {
          if (post[i] == kPostRelu) continue;
          args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(static_cast<int>(i)) | DNNL_ARG_SRC_1,
                       memory(ChannelDesc(g), engine, vectors[v++]));
        }
        entry->conv.execute(stream, args);
      } else {
        memory dst_m(dst, engine, x), src_m(src, engine, out);
        entry->conv.execute(stream, {{DNNL_ARG_DIFF_DST, dst_m},
                                     {DNNL_ARG_WEIGHTS, wei_m},
                                     {DNNL_ARG_DIFF_SRC, src_m},
                                     {DNNL_ARG_SCRATCHPAD, scratch}});
      }
    }
    stream.wait();
  } catch (const dnnl::error& e) {
    return ffi::Error(ffi::ErrorCode::kInternal,
                      std::string("tpflax oneDNN convolution (") + op + "): " + e.what());
  }
  return ffi::Error::Success();
}

using F32 = ffi::Buffer<ffi::F32, 4>;
using Ints = ffi::Span<const int64_t>;
using Vector = ffi::Buffer<ffi::F32, 1>;

ffi::Error Forward(F32 x, F32 w, ffi::ResultBuffer<ffi::F32, 4> y, Ints strides, Ints pad_lo,
                   Ints pad_hi, Ints dilation, int64_t groups) {
  auto g = MakeGeometry(x.dimensions(), w.dimensions(), y->dimensions(), strides, pad_lo,
                        pad_hi, dilation, groups);
  return Run("fwd", g, x.typed_data(), w.typed_data(), y->typed_data());
}

using BF16 = ffi::Buffer<ffi::BF16, 4>;

ffi::Error ForwardBf16(BF16 x, BF16 w, ffi::ResultBuffer<ffi::BF16, 4> y, Ints strides,
                       Ints pad_lo, Ints pad_hi, Ints dilation, int64_t groups) {
  auto g = MakeGeometry(x.dimensions(), w.dimensions(), y->dimensions(), strides, pad_lo,
                        pad_hi, dilation, groups);
  g.type = dt::bf16;
  return Run("fwd", g, x.untyped_data(), w.untyped_data(), y->untyped_data());
}

ffi::Error ForwardPost(F32 x, F32 w, ffi::RemainingArgs rest, ffi::ResultBuffer<ffi::F32, 4> y,
                       Ints strides, Ints pad_lo, Ints pad_hi, Ints dilation, int64_t groups,
                       Ints post) {
  auto g = MakeGeometry(x.dimensions(), w.dimensions(), y->dimensions(), strides, pad_lo,
                        pad_hi, dilation, groups);
  Post codes(post.begin(), post.end());
  std::vector<void*> vectors;
  for (size_t i = 0; i < rest.size(); ++i) {
    auto v = rest.get<Vector>(i);
    if (!v.has_value()) return v.error();
    if (v->element_count() != static_cast<size_t>(g.dst[1])) {
      return ffi::Error(ffi::ErrorCode::kInvalidArgument,
                        "tpflax oneDNN convolution (fwd_post): a post-op vector's length is not "
                        "the output's channels");
    }
    vectors.push_back(v->typed_data());
  }
  size_t binary = 0;
  for (int64_t code : codes) {
    if (code < kPostAdd || code > kPostRelu) {
      return ffi::Error(ffi::ErrorCode::kInvalidArgument,
                        "tpflax oneDNN convolution (fwd_post): unknown post-op code");
    }
    binary += code != kPostRelu;
  }
  if (binary != vectors.size()) {
    return ffi::Error(ffi::ErrorCode::kInvalidArgument,
                      "tpflax oneDNN convolution (fwd_post): one vector per binary post-op");
  }
  return Run("fwd", g, x.typed_data(), w.typed_data(), y->typed_data(), codes, vectors);
}

ffi::Error BackwardData(F32 dy, F32 w, ffi::ResultBuffer<ffi::F32, 4> dx, Ints strides,
                        Ints pad_lo, Ints pad_hi, Ints dilation, int64_t groups) {
  auto g = MakeGeometry(dx->dimensions(), w.dimensions(), dy.dimensions(), strides, pad_lo,
                        pad_hi, dilation, groups);
  return Run("bwd_data", g, dy.typed_data(), w.typed_data(), dx->typed_data());
}

ffi::Error BackwardWeights(F32 x, F32 dy, ffi::ResultBuffer<ffi::F32, 4> dw, Ints strides,
                           Ints pad_lo, Ints pad_hi, Ints dilation, int64_t groups) {
  auto g = MakeGeometry(x.dimensions(), dw->dimensions(), dy.dimensions(), strides, pad_lo,
                        pad_hi, dilation, groups);
  return Run("bwd_weights", g, x.typed_data(), dy.typed_data(), dw->typed_data());
}

}  // namespace

#define TPFLAX_CONV_BINDING                      \
  ffi::Ffi::Bind()                               \
      .Arg<F32>()                                \
      .Arg<F32>()                                \
      .Ret<ffi::Buffer<ffi::F32, 4>>()           \
      .Attr<Ints>("strides")                     \
      .Attr<Ints>("pad_lo")                      \
      .Attr<Ints>("pad_hi")                      \
      .Attr<Ints>("dilation")                    \
      .Attr<int64_t>("groups")

XLA_FFI_DEFINE_HANDLER_SYMBOL(TpflaxOnednnConvFwd, Forward, TPFLAX_CONV_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(TpflaxOnednnConvFwdPost, ForwardPost,
                              ffi::Ffi::Bind()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .RemainingArgs()
                                  .Ret<F32>()
                                  .Attr<Ints>("strides")
                                  .Attr<Ints>("pad_lo")
                                  .Attr<Ints>("pad_hi")
                                  .Attr<Ints>("dilation")
                                  .Attr<int64_t>("groups")
                                  .Attr<Ints>("post"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(TpflaxOnednnConvFwdBf16, ForwardBf16,
                              ffi::Ffi::Bind()
                                  .Arg<BF16>()
                                  .Arg<BF16>()
                                  .Ret<BF16>()
                                  .Attr<Ints>("strides")
                                  .Attr<Ints>("pad_lo")
                                  .Attr<Ints>("pad_hi")
                                  .Attr<Ints>("dilation")
                                  .Attr<int64_t>("groups"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(TpflaxOnednnConvBwdData, BackwardData, TPFLAX_CONV_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(TpflaxOnednnConvBwdWeights, BackwardWeights,
                              TPFLAX_CONV_BINDING);

// For tpflax's report (tp.conv_impl, tpflax --version): oneDNN's version and the instruction
// set it dispatches to on this CPU (dnnl_cpu_isa_t, e.g. avx512_core).
extern "C" const char* tpflax_onednn_version() {
  static std::string text = [] {
    const dnnl_version_t* v = dnnl_version();
    std::ostringstream s;
    s << v->major << '.' << v->minor << '.' << v->patch;
    return s.str();
  }();
  return text.c_str();
}

extern "C" int tpflax_onednn_isa() { return static_cast<int>(dnnl_get_effective_cpu_isa()); }

// oneDNN's instruction sets by name, from its own header, in ascending order: each set's bits
// contain those of the sets before it.
namespace {
struct IsaName {
  const char* name;
  dnnl_cpu_isa_t isa;
};
constexpr IsaName kIsas[] = {
    {"default", dnnl_cpu_isa_default},
    {"sse41", dnnl_cpu_isa_sse41},
    {"avx", dnnl_cpu_isa_avx},
    {"avx2", dnnl_cpu_isa_avx2},
    {"avx2_vnni", dnnl_cpu_isa_avx2_vnni},
    {"avx2_vnni_2", dnnl_cpu_isa_avx2_vnni_2},
    {"avx512_core", dnnl_cpu_isa_avx512_core},
    {"avx512_core_vnni", dnnl_cpu_isa_avx512_core_vnni},
    {"avx512_core_bf16", dnnl_cpu_isa_avx512_core_bf16},
    {"avx512_core_fp16", dnnl_cpu_isa_avx512_core_fp16},
    {"avx512_core_amx", dnnl_cpu_isa_avx512_core_amx},
    {"avx512_core_amx_fp16", dnnl_cpu_isa_avx512_core_amx_fp16},
};
}  // namespace

// The name of the instruction set oneDNN dispatches to here ("" when the header's list above
// lacks it).
extern "C" const char* tpflax_onednn_isa_name() {
  const dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
  for (const IsaName& entry : kIsas) {
    if (entry.isa == isa) return entry.name;
  }
  return "";
}

// Whether oneDNN's kernels here include the named instruction set (its bits are all set in the
// effective one); false for a name the list above lacks.
extern "C" int tpflax_onednn_dispatches(const char* name) {
  const int isa = static_cast<int>(dnnl_get_effective_cpu_isa());
  for (const IsaName& entry : kIsas) {
    if (std::strcmp(entry.name, name) == 0) {
      const int bits = static_cast<int>(entry.isa);
      return (isa & bits) == bits;
    }
  }
  return 0;
}
