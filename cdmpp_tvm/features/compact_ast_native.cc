// Compiled compact-AST extractor: the same walk and the same features as the Python reference
// (compact_ast.py, buffer_access.py, schema.py), about an order of magnitude faster.
//
// Built and loaded by native.py with tvm_ffi.cpp.load_inline. The TVM wheel has no TIR headers, so
// TIR nodes are read through tvm-ffi reflection: each node type's fields are looked up by name once
// (TVMFFIGetTypeInfo, its own fields then its ancestors', as Python attribute lookup does) and
// cached per type index; object fields are then read as a pointer at the field's offset, anything
// else through the field's getter. Type keys, feature columns and the math-function names come
// from Python (cdmpp_configure), so the schema has one source of truth.
//
// Bit-for-bit agreement with Python is the goal: every float operation is done in double, in the
// same order as the Python code (left-to-right products like math.prod, Python's max/min returning
// the first of equal values, copysign(log2(|x| + 1), x)), and compiled with -ffp-contract=off.
// Whatever this walker cannot reproduce exactly (a huge IntImm, a division by zero the Python code
// would raise on, a malformed node) raises ValueError, and native.py runs the Python walker on that
// program instead.
#include <tvm/ffi/any.h>
#include <tvm/ffi/c_api.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/object.h>
#include <tvm/ffi/string.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace {

namespace ffi = tvm::ffi;
using ffi::Any;
using ffi::Object;

#define CDMPP_UNSUPPORTED(msg) TVM_FFI_THROW(ValueError) << "cdmpp native featurizer: " << msg

// ---------------------------------------------------------------------------------------------
// Node kinds (one per Python class compact_ast.py dispatches on) and the fields read.

enum Kind : uint8_t {
  K_OTHER, K_FOR, K_SEQ, K_REALIZE, K_BLOCK, K_STORE, K_IF, K_ALLOC, K_PRIMFUNC, K_VAR, K_INTIMM,
  K_FLOATIMM, K_STRINGIMM, K_LOAD, K_CALL, K_ADD, K_SUB, K_MUL, K_DIV, K_MOD, K_FLOORDIV,
  K_FLOORMOD, K_MIN, K_MAX, K_EQ, K_NE, K_LT, K_LE, K_GT, K_GE, K_AND, K_OR, K_NOT, K_SELECT,
  K_CAST, K_ITERVAR, K_BUFFERTYPE, K_PRIMTYPE, K_NUM_KINDS
};
const char* const kKindNames[K_NUM_KINDS] = {
    "", "For", "SeqStmt", "SBlockRealize", "SBlock", "BufferStore", "IfThenElse", "AllocBuffer",
    "PrimFunc", "Var", "IntImm", "FloatImm", "StringImm", "TensorLoad", "Call", "Add", "Sub", "Mul",
    "Div", "Mod", "FloorDiv", "FloorMod", "Min", "Max", "EQ", "NE", "LT", "LE", "GT", "GE", "And",
    "Or", "Not", "Select", "Cast", "IterVar", "BufferType", "PrimType"};

enum Slot : uint8_t {
  S_BODY, S_A, S_B, S_VALUE, S_TRUE_VALUE, S_FALSE_VALUE, S_CONDITION, S_NAME, S_SEQ, S_LOOP_VAR,
  S_EXTENT, S_KIND, S_THREAD_BINDING, S_ANNOTATIONS, S_ITER_VALUES, S_BLOCK, S_ITER_VARS,
  S_ALLOC_BUFFERS, S_INIT, S_BUFFER, S_INDICES, S_THEN_CASE, S_ELSE_CASE, S_SOURCE, S_OP, S_ARGS,
  S_VAR, S_THREAD_TAG, S_TY, S_DTYPE, S_STORAGE_SCOPE, S_SHAPE, S_NUM_SLOTS
};
const char* const kSlotNames[S_NUM_SLOTS] = {
    "body", "a", "b", "value", "true_value", "false_value", "condition", "name", "seq", "loop_var",
    "extent", "kind", "thread_binding", "annotations", "iter_values", "block", "iter_vars",
    "alloc_buffers", "init", "buffer", "indices", "then_case", "else_case", "source", "op", "args",
    "var", "thread_tag", "ty", "dtype", "storage_scope", "shape"};

// Fields each kind must have (checked once in cdmpp_configure, so a TVM with other field names
// refuses to load instead of producing different features).
const std::vector<std::pair<Kind, std::vector<Slot>>> kRequired = {
    {K_FOR, {S_LOOP_VAR, S_EXTENT, S_KIND, S_BODY, S_THREAD_BINDING, S_ANNOTATIONS}},
    {K_SEQ, {S_SEQ}}, {K_REALIZE, {S_ITER_VALUES, S_BLOCK}},
    {K_BLOCK, {S_ITER_VARS, S_ALLOC_BUFFERS, S_INIT, S_BODY}},
    {K_STORE, {S_BUFFER, S_VALUE, S_INDICES}}, {K_IF, {S_THEN_CASE, S_ELSE_CASE}},
    {K_ALLOC, {S_BUFFER}}, {K_PRIMFUNC, {S_BODY}}, {K_VAR, {S_TY}}, {K_INTIMM, {S_VALUE}},
    {K_LOAD, {S_SOURCE, S_INDICES}}, {K_CALL, {S_OP, S_ARGS}}, {K_SELECT, {S_CONDITION, S_TRUE_VALUE, S_FALSE_VALUE}},
    {K_CAST, {S_VALUE}}, {K_NOT, {S_A}}, {K_ITERVAR, {S_VAR, S_THREAD_TAG}},
    {K_BUFFERTYPE, {S_DTYPE, S_STORAGE_SCOPE, S_SHAPE}}, {K_PRIMTYPE, {S_DTYPE}},
    {K_ADD, {S_A, S_B}}, {K_SUB, {S_A, S_B}}, {K_MUL, {S_A, S_B}}, {K_DIV, {S_A, S_B}},
    {K_MOD, {S_A, S_B}}, {K_FLOORDIV, {S_A, S_B}}, {K_FLOORMOD, {S_A, S_B}}};

struct TypeTable {
  Kind kind = K_OTHER;
  bool is_intimm = false;       // isinstance(x, IntImm): the type or an ancestor is IntImm
  bool is_buffer_type = false;  // isinstance(x, BufferType)
  const TVMFFIFieldInfo* field[S_NUM_SLOTS] = {};
};

struct Config {
  bool ready = false;
  int32_t type_index[K_NUM_KINDS] = {};
  int dim = 0, buf0 = 0, ai0 = 0;
  int col_is_gpu = 0, col_alloc_size = 0, col_alloc_prod = 0, col_alloc_outer_prod = 0;
  int col_outer_d_alloc = 0, col_outer_prod = 0, col_num_loops = 0, col_unroll = 0;
  int col_const = 0, col_global = 0, col_shared = 0, col_local = 0, col_depth = 0;
  int col_reads = 0, col_update = 0;
  std::unordered_map<std::string, int> columns;
  std::unordered_set<std::string> math_funcs;
};

Config g_config;
constexpr int32_t kMaxTypeIndex = 1 << 14;
std::atomic<const TypeTable*> g_tables[kMaxTypeIndex];
std::mutex g_tables_mutex;

const TVMFFIFieldInfo* FindField(const TVMFFITypeInfo* info, const char* name) {
  size_t len = std::strlen(name);
  // The type's own fields first, then its ancestors' from the nearest: Python attribute lookup order.
  for (int32_t d = info->type_depth; d >= 0; --d) {
    const TVMFFITypeInfo* t = d == info->type_depth ? info : info->type_ancestors[d];
    for (int32_t i = 0; i < t->num_fields; ++i) {
      const TVMFFIFieldInfo& f = t->fields[i];
      if (f.name.size == len && std::memcmp(f.name.data, name, len) == 0) return &f;
    }
  }
  return nullptr;
}

bool HasAncestor(const TVMFFITypeInfo* info, int32_t target) {
  if (info->type_index == target) return true;
  for (int32_t d = 0; d < info->type_depth; ++d) {
    if (info->type_ancestors[d]->type_index == target) return true;
  }
  return false;
}

const TypeTable* BuildTable(int32_t tindex) {
  std::lock_guard<std::mutex> lock(g_tables_mutex);
  if (const TypeTable* t = g_tables[tindex].load(std::memory_order_acquire)) return t;
  const TVMFFITypeInfo* info = TVMFFIGetTypeInfo(tindex);
  if (info == nullptr) CDMPP_UNSUPPORTED("no type info for type index " << tindex);
  auto* table = new TypeTable();  // lives as long as the process, like the type itself
  for (int k = 1; k < K_NUM_KINDS; ++k) {
    if (g_config.type_index[k] == tindex) table->kind = static_cast<Kind>(k);
  }
  table->is_intimm = HasAncestor(info, g_config.type_index[K_INTIMM]);
  table->is_buffer_type = HasAncestor(info, g_config.type_index[K_BUFFERTYPE]);
  for (int s = 0; s < S_NUM_SLOTS; ++s) table->field[s] = FindField(info, kSlotNames[s]);
  g_tables[tindex].store(table, std::memory_order_release);
  return table;
}

inline const TypeTable* TableOf(const Object* o) {
  int32_t t = o->type_index();
  if (t < 0 || t >= kMaxTypeIndex) CDMPP_UNSUPPORTED("type index " << t << " out of range");
  const TypeTable* table = g_tables[t].load(std::memory_order_acquire);
  return table != nullptr ? table : BuildTable(t);
}

inline Kind KindOf(const Object* o) { return o == nullptr ? K_OTHER : TableOf(o)->kind; }

// ---------------------------------------------------------------------------------------------
// Field access.

inline const char* FieldAddr(const Object* o, const TVMFFIFieldInfo* f) {
  return reinterpret_cast<const char*>(o) + f->offset;
}

Any GetField(const Object* o, const TVMFFIFieldInfo* f) {
  Any out;
  TVM_FFI_CHECK_SAFE_CALL(
      f->getter(const_cast<char*>(FieldAddr(o, f)), reinterpret_cast<TVMFFIAny*>(&out)));
  return out;
}

inline const Object* AnyObject(const TVMFFIAny& a) {
  return a.type_index >= kTVMFFIStaticObjectBegin ? reinterpret_cast<const Object*>(a.v_obj) : nullptr;
}

// The object a field holds, borrowed from ``o`` (which owns it); nullptr when the type has no such
// field, the field is None, or it holds a plain value (int, float, ...), which has no sub-nodes.
const Object* Child(const Object* o, Slot s) {
  const TVMFFIFieldInfo* f = TableOf(o)->field[s];
  if (f == nullptr) return nullptr;
  if (f->size == static_cast<int64_t>(sizeof(void*)) && f->field_static_type_index >= kTVMFFIStaticObjectBegin) {
    return *reinterpret_cast<const Object* const*>(FieldAddr(o, f));
  }
  Any value = GetField(o, f);  // Optional<T> / Any fields; the object stays owned by ``o``
  return AnyObject(*reinterpret_cast<const TVMFFIAny*>(&value));
}

bool HasField(const Object* o, Slot s) { return TableOf(o)->field[s] != nullptr; }

struct SeqView {
  const TVMFFIAny* data = nullptr;
  int64_t size = 0;
  const Object* at(int64_t i) const { return AnyObject(data[i]); }
};

SeqView SeqOf(const Object* o, const char* what) {
  if (o == nullptr) CDMPP_UNSUPPORTED(what << " is None");
  int32_t t = o->type_index();
  if (t != ffi::TypeIndex::kTVMFFIArray && t != ffi::TypeIndex::kTVMFFIList) {
    CDMPP_UNSUPPORTED(what << " is not an array (type index " << t << ")");
  }
  const auto* seq = static_cast<const ffi::SeqBaseObj*>(o);
  return SeqView{reinterpret_cast<const TVMFFIAny*>(seq->begin()), static_cast<int64_t>(seq->size())};
}

std::string StringField(const Object* o, Slot s) {
  Any value = GetField(o, TableOf(o)->field[s]);
  if (auto str = value.try_cast<ffi::String>()) return std::string(str->data(), str->size());
  CDMPP_UNSUPPORTED("field " << kSlotNames[s] << " is not a string");
  TVM_FFI_UNREACHABLE();
}

int64_t IntImmValue(const Object* o) {
  const TVMFFIFieldInfo* f = TableOf(o)->field[S_VALUE];
  if (f == nullptr || f->size != static_cast<int64_t>(sizeof(TVMFFIAny))) CDMPP_UNSUPPORTED("unexpected IntImm layout");
  const auto* value = reinterpret_cast<const TVMFFIAny*>(FieldAddr(o, f));  // ffi::BigInt
  if (value->type_index != ffi::TypeIndex::kTVMFFIInt) CDMPP_UNSUPPORTED("IntImm beyond int64");
  return value->v_int64;
}

// _const_int: the value of an IntImm, ``dflt`` for anything else.
inline int64_t ConstInt(const Object* o, int64_t dflt) {
  return (o != nullptr && TableOf(o)->is_intimm) ? IntImmValue(o) : dflt;
}

inline double Slog(double x) { return std::copysign(std::log2(std::fabs(x) + 1.0), x); }
// Python's max(a, b) / min(a, b): the first argument unless the second is strictly larger/smaller.
inline double PyMax(double a, double b) { return b > a ? b : a; }
inline double PyMin(double a, double b) { return b < a ? b : a; }

// ---------------------------------------------------------------------------------------------
// Affine forms ({loop index: coefficient}, in insertion order) live in one pool per extraction;
// a form is a (start, length) slice of it and is never modified once made, like the Python dicts.

struct Term {
  int32_t loop;
  double coef;
};
struct Aff {
  uint32_t off = 0, len = 0;
};

struct BufInfo {
  bool is_float = false;
  int64_t elem_bytes = 1;
  std::vector<double> shape, row_major;
  double size = 1.0;
  bool scope_global = false, scope_shared = false;
};

struct Access {
  const Object* handle;
  const BufInfo* buf;
  bool is_write;
  std::vector<double> loop_stride, unique;
};

struct Loop {
  const Object* var;
  int64_t extent;
  int32_t kind;
  int thread_col;  // column of its thread tag, -1 when none
  int64_t unroll;
  int32_t node;
};

enum { NODE_ROOT, NODE_SERIAL, NODE_PARALLEL, NODE_VECTORIZED, NODE_UNROLLED, NODE_THREAD, NODE_STORE };
constexpr int kBufferFields = 18;
constexpr int kMaxBuffers = 5;
constexpr int kAISamples = 10;
constexpr double kCacheLine = 64.0;

class Walker {
 public:
  explicit Walker(bool is_gpu) : is_gpu_(is_gpu) {
    parent_.push_back(-1);
    node_kind_.push_back(NODE_ROOT);
    node_extent_.push_back(1);
    pool_.reserve(1024);
  }

  void Visit(const Object* s) {
    if (s == nullptr) return;
    switch (KindOf(s)) {
      case K_FOR: VisitFor(s); break;
      case K_SEQ: {
        SeqView seq = SeqOf(Child(s, S_SEQ), "SeqStmt.seq");
        for (int64_t i = 0; i < seq.size; ++i) Visit(seq.at(i));
        break;
      }
      case K_REALIZE: VisitRealize(s); break;
      case K_STORE: VisitStore(s); break;
      case K_IF:
        Visit(Child(s, S_THEN_CASE));
        Visit(Child(s, S_ELSE_CASE));
        break;
      case K_ALLOC: {
        const Object* buf = Child(s, S_BUFFER);
        if (buf == nullptr) CDMPP_UNSUPPORTED("AllocBuffer without a buffer");
        alloc_depth_[buf] = static_cast<int64_t>(loops_.size());
        break;
      }
      default:  // LetStmt, AttrStmt, While, ...: transparent when they have a body
        if (HasField(s, S_BODY)) Visit(Child(s, S_BODY));
    }
  }

  std::string Output() {
    int64_t n_leaves = static_cast<int64_t>(leaf_node_ids_.size());
    if (n_leaves == 0) {  // a program with no store still gets one all-zero leaf
      leaves_.assign(g_config.dim, 0.0);
      leaf_node_ids_.push_back(0);
      n_leaves = 1;
    }
    int64_t n_nodes = static_cast<int64_t>(parent_.size());
    std::string out;
    out.resize(8 + 4 * (n_leaves * g_config.dim + n_leaves + 3 * n_nodes));
    char* p = &out[0];
    int32_t header[2] = {static_cast<int32_t>(n_leaves), static_cast<int32_t>(n_nodes)};
    std::memcpy(p, header, 8);
    p += 8;
    for (double v : leaves_) {
      float x = static_cast<float>(v);
      std::memcpy(p, &x, 4);
      p += 4;
    }
    auto put_ints = [&p](const std::vector<int64_t>& values) {
      for (int64_t v : values) {
        if (v < INT32_MIN || v > INT32_MAX) CDMPP_UNSUPPORTED("value " << v << " out of int32 range");
        int32_t x = static_cast<int32_t>(v);
        std::memcpy(p, &x, 4);
        p += 4;
      }
    };
    put_ints(leaf_node_ids_);
    put_ints(parent_);
    put_ints(node_kind_);
    put_ints(node_extent_);
    return out;
  }

 private:
  // -- tree ------------------------------------------------------------------------------------
  int64_t NewNode(int64_t kind, int64_t extent) {
    parent_.push_back(loops_.empty() ? 0 : loops_.back().node);
    node_kind_.push_back(kind);
    node_extent_.push_back(extent);
    return static_cast<int64_t>(parent_.size()) - 1;
  }

  void VisitFor(const Object* loop) {
    int64_t extent = ConstInt(Child(loop, S_EXTENT), 1);
    int32_t kind = *reinterpret_cast<const int32_t*>(FieldAddr(loop, TableOf(loop)->field[S_KIND]));
    int thread_col = -1;
    if (kind == 4) {
      const Object* binding = Child(loop, S_THREAD_BINDING);
      if (binding != nullptr) {
        if (!HasField(binding, S_THREAD_TAG)) CDMPP_UNSUPPORTED("thread binding without thread_tag");
        std::string tag = StringField(binding, S_THREAD_TAG);
        if (!tag.empty()) {
          bool vthread = tag.compare(0, 7, "vthread") == 0;
          auto it = g_config.columns.find(vthread ? std::string("thread_vthread_len") : "thread_" + tag + "_len");
          if (it != g_config.columns.end()) thread_col = it->second;
        }
      }
    }
    int64_t unroll = UnrollStep(Child(loop, S_ANNOTATIONS));
    static const int64_t kForKindToNode[5] = {NODE_SERIAL, NODE_PARALLEL, NODE_VECTORIZED, NODE_UNROLLED, NODE_THREAD};
    int64_t node = NewNode(kind >= 0 && kind < 5 ? kForKindToNode[kind] : int64_t{NODE_SERIAL}, extent);
    const Object* var = Child(loop, S_LOOP_VAR);
    loop_index_of_var_[var] = static_cast<int32_t>(loops_.size());
    loops_.push_back(Loop{var, extent, kind, thread_col, unroll, static_cast<int32_t>(node)});
    Visit(Child(loop, S_BODY));
    loops_.pop_back();
    if (loop_index_of_var_.erase(var) == 0) CDMPP_UNSUPPORTED("loop variable bound twice");
  }

  static int64_t UnrollStep(const Object* ann) {
    if (ann == nullptr || ann->type_index() != ffi::TypeIndex::kTVMFFIMap) {
      CDMPP_UNSUPPORTED("loop annotations are not a Map");
    }
    const auto* map = static_cast<const ffi::MapObj*>(ann);
    if (map->size() == 0) return 0;
    static const Any* kKey = new Any(ffi::String("pragma_auto_unroll_max_step"));  // never freed
    if (map->count(*kKey) == 0) return 0;
    // _annotation_int: MetaSchedule stores the step as a plain int (an IntImm in older TVMs).
    const auto& value = *reinterpret_cast<const TVMFFIAny*>(&map->at(*kKey));
    if (value.type_index == ffi::TypeIndex::kTVMFFIInt || value.type_index == ffi::TypeIndex::kTVMFFIBool) {
      return value.v_int64;
    }
    return ConstInt(AnyObject(value), 0);
  }

  void VisitRealize(const Object* realize) {
    const Object* block = Child(realize, S_BLOCK);
    if (block == nullptr) CDMPP_UNSUPPORTED("SBlockRealize without a block");
    SeqView iter_vars = SeqOf(Child(block, S_ITER_VARS), "SBlock.iter_vars");
    SeqView values = SeqOf(Child(realize, S_ITER_VALUES), "SBlockRealize.iter_values");
    for (int64_t i = 0; i < std::min(iter_vars.size, values.size); ++i) {
      Aff aff = Affine(values.at(i));
      const Object* iv = iter_vars.at(i);
      if (iv == nullptr || !HasField(iv, S_VAR)) CDMPP_UNSUPPORTED("block iteration variable without var");
      block_var_affine_[Child(iv, S_VAR)] = aff;
    }
    SeqView allocs = SeqOf(Child(block, S_ALLOC_BUFFERS), "SBlock.alloc_buffers");
    for (int64_t i = 0; i < allocs.size; ++i) alloc_depth_[allocs.at(i)] = static_cast<int64_t>(loops_.size());
    Visit(Child(block, S_INIT));
    Visit(Child(block, S_BODY));
  }

  // -- affine index analysis -----------------------------------------------------------------
  Aff Combine(Aff a, Aff b, double sign) {
    pool_.reserve(pool_.size() + a.len + b.len);  // no reallocation while copying from the pool
    Aff out{static_cast<uint32_t>(pool_.size()), a.len};
    for (uint32_t i = 0; i < a.len; ++i) pool_.push_back(pool_[a.off + i]);
    for (uint32_t i = 0; i < b.len; ++i) {
      const Term t = pool_[b.off + i];
      bool found = false;
      for (uint32_t j = out.off; j < out.off + out.len; ++j) {
        if (pool_[j].loop == t.loop) {
          pool_[j].coef = pool_[j].coef + sign * t.coef;
          found = true;
          break;
        }
      }
      if (!found) {
        pool_.push_back(Term{t.loop, 0.0 + sign * t.coef});
        ++out.len;
      }
    }
    return out;
  }

  Aff Scale(Aff a, double c) {
    pool_.reserve(pool_.size() + a.len);
    Aff out{static_cast<uint32_t>(pool_.size()), a.len};
    for (uint32_t i = 0; i < a.len; ++i) pool_.push_back(Term{pool_[a.off + i].loop, pool_[a.off + i].coef * c});
    return out;
  }

  Aff Affine(const Object* e) {
    if (e == nullptr) return Aff{};
    switch (KindOf(e)) {
      case K_VAR: {
        auto li = loop_index_of_var_.find(e);
        if (li != loop_index_of_var_.end()) {
          Aff out{static_cast<uint32_t>(pool_.size()), 1};
          pool_.push_back(Term{li->second, 1.0});
          return out;
        }
        auto bv = block_var_affine_.find(e);
        return bv != block_var_affine_.end() ? bv->second : Aff{};
      }
      case K_INTIMM: return Aff{};
      case K_ADD: return Combine(Affine(Child(e, S_A)), Affine(Child(e, S_B)), 1.0);
      case K_SUB: return Combine(Affine(Child(e, S_A)), Affine(Child(e, S_B)), -1.0);
      case K_MUL: {
        const Object* a = Child(e, S_A);
        const Object* b = Child(e, S_B);
        if (KindOf(b) == K_INTIMM) return Scale(Affine(a), static_cast<double>(IntImmValue(b)));
        if (KindOf(a) == K_INTIMM) return Scale(Affine(b), static_cast<double>(IntImmValue(a)));
        return Combine(Affine(a), Affine(b), 1.0);  // non-affine: keep the dependence
      }
      case K_FLOORDIV:
      case K_DIV: {
        int64_t c = ConstInt(Child(e, S_B), 1);
        if (c == 0) c = 1;
        return Scale(Affine(Child(e, S_A)), 1.0 / std::fabs(static_cast<double>(c)));
      }
      case K_FLOORMOD:
      case K_MOD: return Affine(Child(e, S_A));
      case K_CAST: return Affine(Child(e, S_VALUE));
      default: {  // Min/Max/Select/calls...: keep the dependence on every loop the operands touch
        Aff out{};
        for (Slot s : {S_A, S_B, S_VALUE, S_TRUE_VALUE, S_FALSE_VALUE}) {
          const Object* sub = Child(e, s);
          if (sub != nullptr) out = Combine(out, Affine(sub), 1.0);
        }
        return out;
      }
    }
  }

  // -- buffers and op counts -----------------------------------------------------------------
  const BufInfo& BufferInfo(const Object* buf) {
    auto it = buffer_cache_.find(buf);
    if (it != buffer_cache_.end()) return it->second;
    if (KindOf(buf) != K_VAR) CDMPP_UNSUPPORTED("buffer is not a Var");
    const Object* ty = Child(buf, S_TY);
    if (ty == nullptr || !TableOf(ty)->is_buffer_type) CDMPP_UNSUPPORTED("buffer Var without BufferType");
    const Object* prim = Child(ty, S_DTYPE);
    const TVMFFIFieldInfo* dt_field = prim == nullptr ? nullptr : TableOf(prim)->field[S_DTYPE];
    if (dt_field == nullptr || dt_field->size != 4) CDMPP_UNSUPPORTED("buffer dtype is not a PrimType");
    DLDataType dt;
    std::memcpy(&dt, FieldAddr(prim, dt_field), sizeof(dt));
    BufInfo info;
    // tvm_ffi.dtype.is_float: float, bfloat and every float8/6/4 code.
    info.is_float = dt.code == kDLFloat || dt.code == kDLBfloat || (dt.code >= 7 && dt.code <= 17);
    info.elem_bytes = std::max<int64_t>(1, static_cast<int64_t>(dt.bits) * static_cast<int64_t>(dt.lanes) / 8);
    SeqView shape = SeqOf(Child(ty, S_SHAPE), "buffer shape");
    for (int64_t d = 0; d < shape.size; ++d) info.shape.push_back(static_cast<double>(ConstInt(shape.at(d), 1)));
    if (info.shape.empty()) info.shape.push_back(1.0);
    size_t dims = info.shape.size();
    for (size_t d = 0; d < dims; ++d) {
      double prod = 1.0;  // math.prod(shape[d + 1:]), left to right
      for (size_t k = d + 1; k < dims; ++k) prod *= info.shape[k];
      info.row_major.push_back(prod);
    }
    info.size = 1.0;
    for (double s : info.shape) info.size *= s;
    std::string scope = HasField(ty, S_STORAGE_SCOPE) ? StringField(ty, S_STORAGE_SCOPE) : std::string();
    if (scope.empty()) scope = "global";  // Buffer::scope()
    info.scope_global = scope == "global";
    info.scope_shared = scope.compare(0, 6, "shared") == 0;
    return buffer_cache_.emplace(buf, std::move(info)).first->second;
  }

  // 0: if_then_else, 1: math function, 2: other call.
  int CallCategory(const Object* call) {
    const Object* op = Child(call, S_OP);
    auto cached = call_category_.find(op);
    if (cached != call_category_.end()) return cached->second;
    std::string name;
    if (op != nullptr && HasField(op, S_NAME)) name = StringField(op, S_NAME);
    static const std::string kIfThenElse = "if_then_else";
    int category;
    if (name.size() >= kIfThenElse.size() &&
        name.compare(name.size() - kIfThenElse.size(), kIfThenElse.size(), kIfThenElse) == 0) {
      category = 0;
    } else {
      size_t dot = name.rfind('.');
      std::string last = dot == std::string::npos ? name : name.substr(dot + 1);
      category = g_config.math_funcs.count(last) ? 1 : 2;
    }
    call_category_[op] = category;
    return category;
  }

  void CountOps(const Object* e, bool is_float, double* ops, std::vector<const Object*>* reads, bool in_cond) {
    if (e == nullptr) return;
    Kind k = KindOf(e);
    switch (k) {
      case K_LOAD: reads->push_back(e); return;
      case K_INTIMM: case K_FLOATIMM: case K_STRINGIMM: case K_VAR: return;
      default: break;
    }
    int base = (is_float && !in_cond) ? 0 : 7;
    switch (k) {
      case K_ADD: case K_SUB: ops[base + 1] += 1; break;
      case K_MUL: ops[base + 2] += 1; break;
      case K_DIV: case K_MOD: case K_FLOORDIV: case K_FLOORMOD: ops[base + 3] += 1; break;
      case K_MIN: case K_MAX: case K_EQ: case K_NE: case K_LT: case K_LE: case K_GT: case K_GE:
        ops[base + 4] += 1;
        break;
      case K_AND: case K_OR: case K_NOT: ops[14] += 1; break;
      case K_SELECT:
        ops[15] += 1;
        CountOps(Child(e, S_CONDITION), is_float, ops, reads, true);
        CountOps(Child(e, S_TRUE_VALUE), is_float, ops, reads, in_cond);
        CountOps(Child(e, S_FALSE_VALUE), is_float, ops, reads, in_cond);
        return;
      case K_CALL: {
        int category = CallCategory(e);
        SeqView args = SeqOf(Child(e, S_ARGS), "Call.args");
        if (category == 0) {
          ops[15] += 1;
          if (args.size < 3) CDMPP_UNSUPPORTED("if_then_else with " << args.size << " arguments");
          CountOps(args.at(0), is_float, ops, reads, true);
          CountOps(args.at(1), is_float, ops, reads, in_cond);
          CountOps(args.at(2), is_float, ops, reads, in_cond);
          return;
        }
        ops[base + (category == 1 ? 5 : 6)] += 1;
        for (int64_t i = 0; i < args.size; ++i) CountOps(args.at(i), is_float, ops, reads, in_cond);
        return;
      }
      default: break;
    }
    for (Slot s : {S_A, S_B, S_VALUE}) CountOps(Child(e, s), is_float, ops, reads, in_cond);
  }

  // -- leaves ----------------------------------------------------------------------------------
  void VisitStore(const Object* store) {
    int64_t node = NewNode(NODE_STORE, 1);
    int64_t depth = 0;
    for (int64_t p = node; p > 0; p = parent_[p]) ++depth;
    leaf_node_ids_.push_back(node);
    size_t start = leaves_.size();
    leaves_.resize(start + g_config.dim, 0.0);
    LeafFeatures(store, depth, &leaves_[start]);
  }

  Access MakeAccess(const Object* handle, const BufInfo& buf, const std::vector<Aff>& aff, bool is_write,
                    const std::vector<double>& extents) {
    size_t n = extents.size();
    Access acc{handle, &buf, is_write, std::vector<double>(n, 0.0), std::vector<double>(n, 1.0)};
    size_t dims = std::min(aff.size(), buf.shape.size());
    std::vector<double> span(n);
    for (size_t d = 0; d < dims; ++d) {
      std::fill(span.begin(), span.end(), 0.0);
      for (uint32_t i = 0; i < aff[d].len; ++i) {
        const Term& t = pool_[aff[d].off + i];
        if (t.loop < 0 || static_cast<size_t>(t.loop) >= n) CDMPP_UNSUPPORTED("index uses a loop outside the store's nest");
        double c = std::fabs(t.coef);
        acc.loop_stride[t.loop] += c * buf.row_major[d];
        span[n - 1 - t.loop] = c * (extents[t.loop] - 1.0);
      }
      double size = buf.shape[d], sum = 1.0;
      for (size_t j = 0; j < n; ++j) {
        sum += span[j];
        acc.unique[j] *= sum < size ? sum : size;
      }
    }
    return acc;
  }

  void LeafFeatures(const Object* store, int64_t depth, double* f);
  void LoopKindFeatures(double* f, const std::vector<double>& extents, const std::vector<char>& spatial);
  void BufferRows(double* f, const std::vector<Access>& accesses, const std::vector<double>& extents);
  void ArithIntensity(double* f, double flops, const std::vector<Access>& accesses, const std::vector<double>& extents);

  bool is_gpu_;
  std::vector<int64_t> parent_, node_kind_, node_extent_, leaf_node_ids_;
  std::vector<double> leaves_;
  std::vector<Loop> loops_;
  std::unordered_map<const Object*, int32_t> loop_index_of_var_;
  std::unordered_map<const Object*, Aff> block_var_affine_;
  std::unordered_map<const Object*, int64_t> alloc_depth_;
  std::unordered_map<const Object*, BufInfo> buffer_cache_;
  std::unordered_map<const Object*, int> call_category_;
  std::vector<Term> pool_;
};

void Walker::LeafFeatures(const Object* store, int64_t depth, double* f) {
  const Config& C = g_config;
  size_t n = loops_.size();
  std::vector<double> extents(n);
  double outer_prod = 1.0;
  for (size_t i = 0; i < n; ++i) {
    extents[i] = static_cast<double>(loops_[i].extent);
    outer_prod *= extents[i];
  }
  // Compute.
  const Object* wbuf = Child(store, S_BUFFER);
  const BufInfo& winfo = BufferInfo(wbuf);
  double ops[16] = {};
  std::vector<const Object*> reads;
  const Object* value = Child(store, S_VALUE);
  Kind vk = KindOf(value);
  bool is_constant = value != nullptr && (vk == K_INTIMM || vk == K_FLOATIMM);
  if (!is_constant) CountOps(value, winfo.is_float, ops, &reads, false);
  for (int i = 0; i < 16; ++i) f[i] = Slog(ops[i] * outer_prod);

  // Accesses: the write, then every read.
  SeqView windices = SeqOf(Child(store, S_INDICES), "BufferStore.indices");
  std::vector<Aff> write_aff;
  for (int64_t i = 0; i < windices.size; ++i) write_aff.push_back(Affine(windices.at(i)));
  std::vector<Access> accesses;
  accesses.push_back(MakeAccess(wbuf, winfo, write_aff, true, extents));
  for (const Object* load : reads) {
    const Object* src = Child(load, S_SOURCE);
    const BufInfo& rinfo = BufferInfo(src);
    SeqView idx = SeqOf(Child(load, S_INDICES), "TensorLoad.indices");
    std::vector<Aff> aff;
    for (int64_t i = 0; i < idx.size; ++i) aff.push_back(Affine(idx.at(i)));
    accesses.push_back(MakeAccess(src, rinfo, aff, false, extents));
  }
  std::vector<char> spatial(n, 0);
  for (const Aff& a : write_aff) {
    for (uint32_t i = 0; i < a.len; ++i) {
      const Term& t = pool_[a.off + i];
      if (t.coef != 0.0 && t.loop >= 0 && static_cast<size_t>(t.loop) < n) spatial[t.loop] = 1;
    }
  }
  LoopKindFeatures(f, extents, spatial);
  f[C.col_is_gpu] = is_gpu_ ? 1.0 : 0.0;
  BufferRows(f, accesses, extents);
  if (n > 0 && !is_constant) {
    double flops = 0.0;
    for (double o : ops) flops += o;
    ArithIntensity(f, flops, accesses, extents);
  }
  auto alloc = alloc_depth_.find(wbuf);
  if (alloc != alloc_depth_.end()) {
    double alloc_outer = 1.0;
    for (int64_t i = 0; i < alloc->second && static_cast<size_t>(i) < n; ++i) alloc_outer *= extents[i];
    if (alloc_outer == 0.0) CDMPP_UNSUPPORTED("zero-extent loop around an allocation");
    double size = winfo.size * static_cast<double>(winfo.elem_bytes);
    f[C.col_alloc_size] = Slog(size);
    f[C.col_alloc_prod] = Slog(size * alloc_outer);
    f[C.col_alloc_outer_prod] = Slog(alloc_outer);
    f[C.col_outer_d_alloc] = Slog(outer_prod / alloc_outer);
  }
  f[C.col_outer_prod] = Slog(outer_prod);
  f[C.col_num_loops] = Slog(static_cast<double>(n));
  int64_t unroll = 0;
  for (size_t i = 0; i < n; ++i) {
    if (i == 0 || loops_[i].unroll > unroll) unroll = loops_[i].unroll;
  }
  f[C.col_unroll] = Slog(static_cast<double>(unroll));
  f[C.col_const] = is_constant ? 1.0 : 0.0;
  f[C.col_global] = winfo.scope_global ? 1.0 : 0.0;
  f[C.col_shared] = winfo.scope_shared ? 1.0 : 0.0;
  f[C.col_local] = (!winfo.scope_global && !winfo.scope_shared) ? 1.0 : 0.0;
  f[C.col_depth] = Slog(static_cast<double>(depth));
  f[C.col_reads] = Slog(static_cast<double>(reads.size()));
  bool update = false;
  for (size_t i = 1; i < accesses.size(); ++i) update = update || accesses[i].handle == wbuf;
  f[C.col_update] = update ? 1.0 : 0.0;
}

void Walker::LoopKindFeatures(double* f, const std::vector<double>& extents, const std::vector<char>& spatial) {
  size_t n = loops_.size();
  const int32_t kinds[3] = {2, 3, 1};  // vectorize, unroll, parallel
  for (int k_i = 0; k_i < 3; ++k_i) {
    int col = 16 + 11 * k_i;
    int64_t count = 0, inner = -1;
    double prod = 1.0;
    for (size_t i = 0; i < n; ++i) {
      if (loops_[i].kind != kinds[k_i]) continue;
      ++count;
      prod *= extents[i];
      inner = static_cast<int64_t>(i);
    }
    if (count == 0) {
      f[col + 3] = 1.0;  // position "none"
      continue;
    }
    f[col] = Slog(static_cast<double>(count));
    f[col + 1] = Slog(prod);
    f[col + 2] = Slog(extents[inner]);
    int where = inner == static_cast<int64_t>(n) - 1 ? 0 : (inner == 0 ? 2 : 1);
    f[col + 4 + where + (spatial[inner] ? 0 : 3)] = 1.0;
  }
  for (const Loop& lp : loops_) {
    if (lp.thread_col >= 0) f[lp.thread_col] = Slog(static_cast<double>(lp.extent));
  }
}

void Walker::BufferRows(double* f, const std::vector<Access>& accesses, const std::vector<double>& extents) {
  size_t n = extents.size();
  std::vector<std::pair<const Object*, std::vector<const Access*>>> groups;  // first-appearance order
  for (const Access& a : accesses) {
    auto g = std::find_if(groups.begin(), groups.end(), [&a](const auto& x) { return x.first == a.handle; });
    if (g == groups.end()) {
      groups.push_back({a.handle, {}});
      g = groups.end() - 1;
    }
    g->second.push_back(&a);
  }
  double total_iters = 1.0;
  for (double e : extents) total_iters *= e;
  std::vector<std::vector<double>> rows;
  for (const auto& group : groups) {
    const std::vector<const Access*>& accs = group.second;
    double eb = static_cast<double>(accs[0]->buf->elem_bytes);
    bool writes = false, reads = false;
    for (const Access* a : accs) (a->is_write ? writes : reads) = true;
    std::vector<double> row(kBufferFields, 0.0);
    row[!writes ? 0 : (!reads ? 1 : 2)] = 1.0;
    std::vector<double> strides(n), uniq(n);
    for (size_t i = 0; i < n; ++i) {
      strides[i] = accs[0]->loop_stride[i];
      uniq[i] = accs[0]->unique[i];
      for (size_t k = 1; k < accs.size(); ++k) {
        strides[i] = PyMax(strides[i], accs[k]->loop_stride[i]);
        uniq[i] = PyMax(uniq[i], accs[k]->unique[i]);
      }
    }
    if (uniq.empty()) uniq.push_back(1.0);
    int64_t moving = -1, still = -1;
    for (size_t i = 0; i < n; ++i) {
      if (strides[i] != 0.0) moving = static_cast<int64_t>(i);
      if (strides[i] == 0.0 && extents[i] > 1) still = static_cast<int64_t>(i);
    }
    double stride = moving >= 0 ? strides[moving] : 0.0;
    double inner_len = moving >= 0 ? extents[moving] : 1.0;
    double per_line = stride != 0.0 ? PyMax(1.0, kCacheLine / (eb * stride)) : inner_len;
    double accesses_ct = total_iters * static_cast<double>(accs.size());
    double bytes = accesses_ct * eb;
    double unique_bytes = uniq.back() * eb;
    double line_div = PyMin(per_line, inner_len);
    if (line_div == 0.0) CDMPP_UNSUPPORTED("zero-extent loop in an access");
    double lines = accesses_ct / line_div;
    double unique_lines = PyMax(1.0, unique_bytes / kCacheLine);
    double reuse_ct, reuse_dis_iter, reuse_dis_bytes;
    if (still >= 0) {
      size_t r = static_cast<size_t>(still);
      row[7] = 1.0;
      reuse_ct = extents[r];
      reuse_dis_iter = 1.0;
      for (size_t i = r + 1; i < n; ++i) reuse_dis_iter *= extents[i];
      reuse_dis_bytes = r + 1 < n ? uniq[n - r - 2] * eb : eb;
    } else if (accs.size() > 1) {
      row[8] = 1.0;
      reuse_ct = static_cast<double>(accs.size());
      reuse_dis_iter = 1.0;
      reuse_dis_bytes = eb;
    } else {
      row[9] = 1.0;
      reuse_ct = reuse_dis_iter = reuse_dis_bytes = 0.0;
    }
    double div = reuse_ct > 0 ? reuse_ct : 1.0;
    row[3] = Slog(bytes);
    row[4] = Slog(unique_bytes);
    row[5] = Slog(lines);
    row[6] = Slog(unique_lines);
    row[10] = Slog(reuse_dis_iter);
    row[11] = Slog(reuse_dis_bytes);
    row[12] = Slog(reuse_ct);
    row[13] = Slog(bytes / div);
    row[14] = Slog(unique_bytes / div);
    row[15] = Slog(lines / div);
    row[16] = Slog(unique_lines / div);
    row[17] = Slog(stride);
    rows.push_back(std::move(row));
  }
  // rows.sort(key=lambda r: (r[5], r[3]), reverse=True): stable, larger keys first.
  std::stable_sort(rows.begin(), rows.end(), [](const std::vector<double>& x, const std::vector<double>& y) {
    if (x[5] != y[5]) return x[5] > y[5];
    return x[3] > y[3];
  });
  for (size_t b = 0; b < rows.size() && b < static_cast<size_t>(kMaxBuffers); ++b) {
    std::copy(rows[b].begin(), rows[b].end(), f + g_config.buf0 + kBufferFields * b);
  }
}

void Walker::ArithIntensity(double* f, double flops, const std::vector<Access>& accesses,
                            const std::vector<double>& extents) {
  size_t n = extents.size();
  std::vector<double> ai(n);
  double inner_prod = 1.0;
  for (size_t j = 0; j < n; ++j) {
    inner_prod *= extents[n - 1 - j];
    double uniq = 0.0;
    for (const Access& a : accesses) uniq += a.unique[j] * static_cast<double>(a.buf->elem_bytes);
    ai[j] = flops * inner_prod / PyMax(uniq, 1.0);
  }
  for (int s = 0; s < kAISamples; ++s) {
    double x = static_cast<double>(s * static_cast<int64_t>(n - 1)) / static_cast<double>(kAISamples - 1);
    size_t lo = static_cast<size_t>(x);
    size_t hi = std::min(lo + 1, n - 1);
    f[g_config.ai0 + s] = Slog(ai[lo] + (ai[hi] - ai[lo]) * (x - static_cast<double>(lo)));
  }
}

int RequireColumn(const std::string& name) {
  auto it = g_config.columns.find(name);
  if (it == g_config.columns.end()) CDMPP_UNSUPPORTED("feature column " << name << " missing");
  return it->second;
}

}  // namespace

// Configure once per process, before the first extraction: ``type_keys`` maps each kind name (as
// in kKindNames) to the type key of the Python class compact_ast.py uses for it; ``columns`` is
// schema.COL; ``math_funcs`` is compact_ast._MATH_FUNCS. Raises when this TVM does not match.
void cdmpp_configure(ffi::Map<ffi::String, ffi::String> type_keys, ffi::Map<ffi::String, int64_t> columns,
                     ffi::Array<ffi::String> math_funcs, int64_t feature_dim) {
  std::lock_guard<std::mutex> lock(g_tables_mutex);
  Config config;
  for (int k = 1; k < K_NUM_KINDS; ++k) {
    auto it = type_keys.find(kKindNames[k]);
    if (it == type_keys.end()) CDMPP_UNSUPPORTED("no type key for " << kKindNames[k]);
    std::string key((*it).second);
    TVMFFIByteArray bytes{key.data(), key.size()};
    TVM_FFI_CHECK_SAFE_CALL(TVMFFITypeKeyToIndex(&bytes, &config.type_index[k]));
  }
  for (const auto& kv : columns) config.columns[std::string(kv.first)] = static_cast<int>(kv.second);
  for (const auto& name : math_funcs) config.math_funcs.insert(std::string(name));
  config.dim = static_cast<int>(feature_dim);
  g_config = std::move(config);
  Config& C = g_config;
  C.buf0 = RequireColumn("buf0_acc_read");
  C.ai0 = RequireColumn("arith_intensity_0");
  C.col_is_gpu = RequireColumn("is_gpu");
  C.col_alloc_size = RequireColumn("alloc_size");
  C.col_alloc_prod = RequireColumn("alloc_prod");
  C.col_alloc_outer_prod = RequireColumn("alloc_outer_prod");
  C.col_outer_d_alloc = RequireColumn("outer_prod_d_alloc_outer_prod");
  C.col_outer_prod = RequireColumn("outer_prod");
  C.col_num_loops = RequireColumn("num_loops");
  C.col_unroll = RequireColumn("auto_unroll_max_step");
  C.col_const = RequireColumn("is_constant_store");
  C.col_global = RequireColumn("scope_global");
  C.col_shared = RequireColumn("scope_shared");
  C.col_local = RequireColumn("scope_local");
  C.col_depth = RequireColumn("tree_depth");
  C.col_reads = RequireColumn("num_buffer_reads");
  C.col_update = RequireColumn("is_reduction_update");
  // Structural layout the code below hard-codes, as compact_ast.py does.
  if (RequireColumn("vectorize_num") != 16 || RequireColumn("is_gpu") != 49 ||
      C.ai0 != C.buf0 + kMaxBuffers * kBufferFields || C.dim != static_cast<int>(C.columns.size())) {
    CDMPP_UNSUPPORTED("feature layout differs from the one this extractor was written for");
  }
  for (auto& table : g_tables) table.store(nullptr, std::memory_order_relaxed);  // rebuilt with these kinds
  for (const auto& req : kRequired) {
    const TVMFFITypeInfo* info = TVMFFIGetTypeInfo(C.type_index[req.first]);
    for (Slot s : req.second) {
      const TVMFFIFieldInfo* f = FindField(info, kSlotNames[s]);
      if (f == nullptr) CDMPP_UNSUPPORTED(kKindNames[req.first] << " has no field " << kSlotNames[s]);
    }
  }
  const TVMFFIFieldInfo* int_value = FindField(TVMFFIGetTypeInfo(C.type_index[K_INTIMM]), "value");
  const TVMFFIFieldInfo* for_kind = FindField(TVMFFIGetTypeInfo(C.type_index[K_FOR]), "kind");
  if (int_value->size != static_cast<int64_t>(sizeof(TVMFFIAny)) || for_kind->size != 4) {
    CDMPP_UNSUPPORTED("IntImm.value or For.kind has an unexpected layout");
  }
  C.ready = true;
}

// The compact AST of one scheduled PrimFunc (or statement with a body) as bytes: int32 n_leaves,
// int32 n_nodes, float32 leaf_features[n_leaves][dim], int32 preorder_position[n_leaves],
// int32 parent[n_nodes], int32 node_kind[n_nodes], int32 node_extent[n_nodes].
ffi::Bytes cdmpp_extract(ffi::ObjectRef func, bool is_gpu) {
  if (!g_config.ready) CDMPP_UNSUPPORTED("cdmpp_configure was not called");
  const Object* f = func.get();
  if (f == nullptr || !HasField(f, S_BODY)) CDMPP_UNSUPPORTED("expected a PrimFunc");
  Walker walker(is_gpu);
  walker.Visit(Child(f, S_BODY));
  std::string out = walker.Output();
  return ffi::Bytes(out.data(), out.size());
}
