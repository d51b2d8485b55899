#include "frontend/saving.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <variant>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/text_ir.h"
#include "frontend/callbacks.h"
#include "frontend/error.h"

namespace sequent {

// Sequential's internals that restoring a model needs.
struct SavingAccess {
  static const InputLayer* input(const Sequential& m) { return m.input_.get(); }
  static void Restore(Sequential& m, uint64_t seed, DType dtype) {
    m.seed_ = seed;
    m.dtype_ = dtype;
  }
  static VariableStore* store(const Sequential& m) { return m.store_.get(); }
};

namespace {

// ---------------------------------------------------------------------------
// Byte layout (see SAVE_FORMAT.md).

constexpr size_t kMagicSize = 8;
constexpr size_t kFixedHeader = 28;  // magic, version, flags, size, count.
constexpr size_t kHeaderSize = kFixedHeader + 4;  // + header CRC.
constexpr size_t kEntrySize = 24;                 // tag, reserved, off, len.
constexpr uint32_t kMaxSections = 16;
constexpr uint32_t kMaxRank = 32;

constexpr char kConfigTag[] = "CONF";
constexpr char kGraphTag[] = "GRPH";
constexpr char kVariablesTag[] = "VARS";

uint32_t Crc32(absl::string_view bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const auto* p = reinterpret_cast<const Bytef*>(bytes.data());
  size_t left = bytes.size();
  while (left > 0) {  // zlib takes 32-bit lengths.
    const uInt chunk = static_cast<uInt>(std::min<size_t>(left, 1u << 30));
    crc = crc32(crc, p, chunk);
    p += chunk;
    left -= chunk;
  }
  return static_cast<uint32_t>(crc);
}

template <typename T>
void PutLE(std::string& out, T value) {
  using U = std::make_unsigned_t<T>;
  const U u = static_cast<U>(value);
  for (size_t i = 0; i < sizeof(T); ++i)
    out.push_back(static_cast<char>((u >> (8 * i)) & 0xFF));
}

template <typename T>
T GetLE(const char* p) {
  using U = std::make_unsigned_t<T>;
  U u = 0;
  for (size_t i = 0; i < sizeof(T); ++i)
    u |= static_cast<U>(static_cast<unsigned char>(p[i])) << (8 * i);
  return static_cast<T>(u);
}

template <typename T>
void SetLE(std::string& out, size_t at, T value) {
  std::string bytes;
  PutLE(bytes, value);
  out.replace(at, sizeof(T), bytes);
}

// Tensor bytes are stored little-endian; a big-endian host swaps each element.
void ToFromLittleEndian(char* data, size_t bytes, size_t element_size) {
  if constexpr (std::endian::native == std::endian::big) {
    for (size_t i = 0; i + element_size <= bytes; i += element_size)
      std::reverse(data + i, data + i + element_size);
  } else {
    (void)data, (void)bytes, (void)element_size;
  }
}

// Stable dtype codes of the file format (independent of the enum's order).
constexpr DType kDTypeCodes[] = {DType::kF32, DType::kF64, DType::kBF16,
                                 DType::kF16, DType::kI32, DType::kI64,
                                 DType::kBool};
uint32_t DTypeCode(DType dtype) {
  for (uint32_t i = 0; i < std::size(kDTypeCodes); ++i)
    if (kDTypeCodes[i] == dtype) return i;
  return 0;
}

std::string Truncated(absl::string_view what, uint64_t needs, uint64_t has) {
  return absl::StrCat("truncated: ", what, " needs ", needs,
                      " bytes, file has ", has);
}

std::string EncodeVariables(const std::vector<SavedVariable>& variables) {
  std::string out;
  PutLE<uint32_t>(out, static_cast<uint32_t>(variables.size()));
  for (const SavedVariable& v : variables) {
    PutLE<uint32_t>(out, static_cast<uint32_t>(v.name.size()));
    out += v.name;
    PutLE<uint32_t>(out, DTypeCode(v.value.dtype()));
    PutLE<uint32_t>(out, static_cast<uint32_t>(v.value.shape().rank()));
    for (int64_t d : v.value.shape().dims()) PutLE<int64_t>(out, d);
    PutLE<uint64_t>(out, v.value.num_bytes());
    const size_t at = out.size();
    out.append(static_cast<const char*>(v.value.raw_data()),
               v.value.num_bytes());
    ToFromLittleEndian(out.data() + at, v.value.num_bytes(),
                       DTypeSize(v.value.dtype()));
  }
  return out;
}

// Reads records from one section, every read checked against its end.
class SectionReader {
 public:
  explicit SectionReader(absl::string_view bytes) : bytes_(bytes) {}
  size_t left() const { return bytes_.size() - pos_; }
  bool Read(size_t n, absl::string_view* out) {
    if (n > left()) return false;
    *out = bytes_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  template <typename T>
  bool Get(T* out) {
    absl::string_view b;
    if (!Read(sizeof(T), &b)) return false;
    *out = GetLE<T>(b.data());
    return true;
  }

 private:
  absl::string_view bytes_;
  size_t pos_ = 0;
};

absl::StatusOr<std::vector<SavedVariable>> DecodeVariables(
    absl::string_view bytes) {
  SectionReader r(bytes);
  const auto short_section = [&](absl::string_view what, uint64_t needs) {
    return absl::DataLossError(absl::StrCat("section VARS: ", what, " needs ",
                                            needs, " bytes, ", r.left(),
                                            " are left in the section"));
  };
  uint32_t count = 0;
  if (!r.Get(&count)) return short_section("the variable count", 4);
  // Every record takes at least 20 bytes: reject a hostile count before
  // reserving anything.
  if (count > r.left() / 20) {
    return absl::DataLossError(
        absl::StrCat("section VARS claims ", count, " variables, but its ",
                     r.left(), " bytes hold at most ", r.left() / 20));
  }
  std::vector<SavedVariable> out;
  out.reserve(count);
  std::set<std::string> seen;
  for (uint32_t i = 0; i < count; ++i) {
    const std::string which = absl::StrCat("variable #", i);
    uint32_t name_len = 0, code = 0, rank = 0;
    absl::string_view name;
    if (!r.Get(&name_len)) return short_section(which, 4);
    if (!r.Read(name_len, &name))
      return short_section(absl::StrCat(which, "'s name"), name_len);
    const std::string label = absl::StrCat("variable '", name, "'");
    if (name.empty() || !seen.insert(std::string(name)).second) {
      return absl::DataLossError(
          absl::StrCat("section VARS: ", which,
                       " has an empty or repeated name '", name, "'"));
    }
    if (!r.Get(&code)) return short_section(label, 4);
    if (code >= std::size(kDTypeCodes)) {
      return absl::DataLossError(
          absl::StrCat("section VARS: ", label, " has unknown dtype code ",
                       code, " (known: 0-", std::size(kDTypeCodes) - 1, ")"));
    }
    const DType dtype = kDTypeCodes[code];
    if (!r.Get(&rank)) return short_section(label, 4);
    if (rank > kMaxRank) {
      return absl::DataLossError(absl::StrCat("section VARS: ", label,
                                              " has rank ", rank, " (at most ",
                                              kMaxRank, ")"));
    }
    if (uint64_t{rank} * 8 > r.left())
      return short_section(absl::StrCat(label, "'s shape"), uint64_t{rank} * 8);
    std::vector<int64_t> dims(rank);
    // The element count may not exceed the bytes left (every dtype takes at
    // least one byte), so the product never overflows and no allocation can
    // outgrow the file.
    uint64_t elements = 1;
    for (uint32_t d = 0; d < rank; ++d) {
      r.Get(&dims[d]);
      if (dims[d] < 0) {
        return absl::DataLossError(absl::StrCat(
            "section VARS: ", label, " has negative dimension ", dims[d]));
      }
      const uint64_t dim = static_cast<uint64_t>(dims[d]);
      if (dim != 0 && elements > r.left() / dim) {
        return absl::DataLossError(absl::StrCat(
            "section VARS: ", label, " of shape [", absl::StrJoin(dims, ","),
            "...] needs more bytes than the ", r.left(),
            " left in the section"));
      }
      elements *= dim;
    }
    uint64_t byte_len = 0;
    if (!r.Get(&byte_len)) return short_section(label, 8);
    const uint64_t want = elements * DTypeSize(dtype);
    if (byte_len != want) {
      return absl::DataLossError(
          absl::StrCat("section VARS: ", label, " ", DTypeName(dtype), "[",
                       absl::StrJoin(dims, ","), "] should have ", want,
                       " bytes of data, the record says ", byte_len));
    }
    absl::string_view data;
    if (!r.Read(byte_len, &data))
      return short_section(absl::StrCat(label, "'s data"), byte_len);
    Tensor value(dtype, Shape(std::move(dims)));
    std::memcpy(value.raw_data(), data.data(), data.size());
    ToFromLittleEndian(static_cast<char*>(value.raw_data()), data.size(),
                       DTypeSize(dtype));
    out.push_back({std::string(name), std::move(value)});
  }
  if (r.left() != 0) {
    return absl::DataLossError(absl::StrCat("section VARS has ", r.left(),
                                            " bytes after its last variable"));
  }
  return out;
}

// ---------------------------------------------------------------------------
// Config text: "key=value" lines; backslash and newline in values escaped.

using ConfigMap = std::map<std::string, std::string>;

std::string Escape(absl::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

absl::StatusOr<std::string> Unescape(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out += s[i];
      continue;
    }
    if (i + 1 == s.size() || (s[i + 1] != '\\' && s[i + 1] != 'n'))
      return absl::DataLossError("config: bad escape in a value");
    out += s[++i] == 'n' ? '\n' : '\\';
  }
  return out;
}

std::string FormatConfig(const ConfigMap& config) {
  std::string out;
  for (const auto& [key, value] : config)
    absl::StrAppend(&out, key, "=", Escape(value), "\n");
  return out;
}

absl::StatusOr<ConfigMap> ParseConfig(absl::string_view text) {
  ConfigMap out;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (line.empty()) continue;
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos || eq == 0) {
      return absl::DataLossError(absl::StrCat(
          "config line ", line_no, " is not key=value: '", line, "'"));
    }
    absl::StatusOr<std::string> value = Unescape(line.substr(eq + 1));
    if (!value.ok()) return value.status();
    if (!out.emplace(std::string(line.substr(0, eq)), *std::move(value))
             .second) {
      return absl::DataLossError(absl::StrCat("config line ", line_no,
                                              ": repeated key '",
                                              line.substr(0, eq), "'"));
    }
  }
  return out;
}

// The shortest text that parses back to exactly `v`.
std::string Num(double v) {
  char buf[32];
  const std::to_chars_result r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

// Writes or reads one struct's fields under "<prefix>.": the same Fields()
// function drives both directions, so writer and reader cannot drift apart.
class ConfigWriter {
 public:
  ConfigWriter(ConfigMap& out, std::string prefix)
      : out_(out), prefix_(std::move(prefix)) {}
  void D(const char* key, double v) { Put(key, Num(v)); }
  void B(const char* key, bool v) { Put(key, v ? "true" : "false"); }
  void S(const char* key, const std::string& v) { Put(key, v); }

 private:
  void Put(const char* key, std::string value) {
    out_[absl::StrCat(prefix_, ".", key)] = std::move(value);
  }
  ConfigMap& out_;
  std::string prefix_;
};

class ConfigReader {
 public:
  ConfigReader(const ConfigMap& in, std::set<std::string>& used,
               std::string prefix)
      : in_(in), used_(used), prefix_(std::move(prefix)) {}
  void D(const char* key, double& v) {
    if (const std::string* s = Find(key); s && !absl::SimpleAtod(*s, &v))
      Bad(key, *s, "a number");
  }
  void B(const char* key, bool& v) {
    if (const std::string* s = Find(key)) {
      if (*s != "true" && *s != "false") Bad(key, *s, "true or false");
      v = *s == "true";
    }
  }
  void S(const char* key, std::string& v) {
    if (const std::string* s = Find(key)) v = *s;
  }
  const absl::Status& status() const { return status_; }

 private:
  const std::string* Find(const char* key) {
    const std::string full =
        prefix_.empty() ? std::string(key) : absl::StrCat(prefix_, ".", key);
    used_.insert(full);
    auto it = in_.find(full);
    if (it == in_.end()) {
      if (status_.ok())
        status_ = absl::DataLossError(
            absl::StrCat("config: missing key '", full, "'"));
      return nullptr;
    }
    return &it->second;
  }
  void Bad(const char* key, const std::string& value, const char* want) {
    if (status_.ok()) {
      status_ = absl::DataLossError(absl::StrCat(
          "config: '", prefix_, ".", key, "' = '", value, "' is not ", want));
    }
  }
  const ConfigMap& in_;
  std::set<std::string>& used_;
  std::string prefix_;
  absl::Status status_;
};

// Const-agnostic: T is `const X` when writing, `X` when reading.
template <typename A, typename T>
void Fields(A& a, T& name) requires
    std::is_same_v<std::remove_const_t<T>, std::string> {
  a.S("name", name);
}
template <typename A, typename T>
void Fields(A& a, T& o) requires std::is_same_v<std::remove_const_t<T>, SGD> {
  a.D("learning_rate", o.learning_rate);
  a.D("momentum", o.momentum);
  a.B("nesterov", o.nesterov);
  a.D("clipnorm", o.clipnorm);
  a.D("clipvalue", o.clipvalue);
}
template <typename A, typename T>
void Fields(A& a, T& o) requires std::is_same_v<std::remove_const_t<T>, Adam> {
  a.D("learning_rate", o.learning_rate);
  a.D("beta_1", o.beta_1);
  a.D("beta_2", o.beta_2);
  a.D("epsilon", o.epsilon);
  a.D("clipnorm", o.clipnorm);
  a.D("clipvalue", o.clipvalue);
}
template <typename A, typename T>
void Fields(A& a, T& o) requires std::is_same_v<std::remove_const_t<T>, AdamW> {
  a.D("learning_rate", o.learning_rate);
  a.D("weight_decay", o.weight_decay);
  a.D("beta_1", o.beta_1);
  a.D("beta_2", o.beta_2);
  a.D("epsilon", o.epsilon);
  a.D("clipnorm", o.clipnorm);
  a.D("clipvalue", o.clipvalue);
}
template <typename A, typename T>
void Fields(A& a,
            T& o) requires std::is_same_v<std::remove_const_t<T>, RMSprop> {
  a.D("learning_rate", o.learning_rate);
  a.D("rho", o.rho);
  a.D("epsilon", o.epsilon);
  a.D("clipnorm", o.clipnorm);
  a.D("clipvalue", o.clipvalue);
}
template <typename A, typename T>
void Fields(A& a,
            T& o) requires std::is_same_v<std::remove_const_t<T>, Adagrad> {
  a.D("learning_rate", o.learning_rate);
  a.D("initial_accumulator_value", o.initial_accumulator_value);
  a.D("epsilon", o.epsilon);
  a.D("clipnorm", o.clipnorm);
  a.D("clipvalue", o.clipvalue);
}
template <typename A, typename T>
void Fields(A&, T&) requires(
    std::is_same_v<std::remove_const_t<T>, MeanSquaredError> ||
    std::is_same_v<std::remove_const_t<T>, MeanAbsoluteError>) {}
template <typename A, typename T>
void Fields(A& a, T& o) requires std::is_same_v<std::remove_const_t<T>, Huber> {
  a.D("delta", o.delta);
}
template <typename A, typename T>
void Fields(A& a, T& o) requires(
    std::is_same_v<std::remove_const_t<T>, BinaryCrossentropy> ||
    std::is_same_v<std::remove_const_t<T>, CategoricalCrossentropy>) {
  a.B("from_logits", o.from_logits);
  a.D("label_smoothing", o.label_smoothing);
}
template <typename A, typename T>
void Fields(A& a, T& o) requires
    std::is_same_v<std::remove_const_t<T>, SparseCategoricalCrossentropy> {
  a.B("from_logits", o.from_logits);
}

// The file's names of the variants' alternatives, in variant order.
constexpr const char* kOptimizerTypes[] = {"name",  "SGD",     "Adam",
                                           "AdamW", "RMSprop", "Adagrad"};
constexpr const char* kLossTypes[] = {"name",
                                      "MeanSquaredError",
                                      "MeanAbsoluteError",
                                      "Huber",
                                      "BinaryCrossentropy",
                                      "CategoricalCrossentropy",
                                      "SparseCategoricalCrossentropy"};
static_assert(std::size(kOptimizerTypes) == std::variant_size_v<Optimizer>);
static_assert(std::size(kLossTypes) == std::variant_size_v<Loss>);

template <typename V>
void WriteVariant(ConfigMap& out, const std::string& key, const V& value,
                  const char* const* types) {
  out[key] = types[value.index()];
  ConfigWriter w(out, key);
  std::visit([&](const auto& alt) { Fields(w, alt); }, value);
}

template <typename V, size_t I = 0>
absl::StatusOr<V> ReadVariant(const ConfigMap& in, std::set<std::string>& used,
                              const std::string& key, const std::string& type,
                              const char* const* types) {
  if constexpr (I < std::variant_size_v<V>) {
    if (type != types[I])
      return ReadVariant<V, I + 1>(in, used, key, type, types);
    std::variant_alternative_t<I, V> alt{};
    ConfigReader r(in, used, key);
    Fields(r, alt);
    if (!r.status().ok()) return r.status();
    return V(std::move(alt));
  } else {
    return absl::DataLossError(
        absl::StrCat("config: unknown ", key, " type '", type, "'"));
  }
}

std::string Ints(const std::vector<int64_t>& v) {
  return absl::StrJoin(v, ",");
}

absl::StatusOr<std::vector<int64_t>> ParseInts(const std::string& key,
                                               const std::string& text) {
  std::vector<int64_t> out;
  if (text.empty()) return out;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int64_t d = 0;
    if (!absl::SimpleAtoi(part, &d)) {
      return absl::DataLossError(absl::StrCat("config: '", key, "' = '", text,
                                              "' is not a list of integers"));
    }
    out.push_back(d);
  }
  return out;
}

absl::Status FromError(const Error& e) {
  return absl::InvalidArgumentError(e.what());
}

// The model's config; fails for layers LayerFromConfig cannot rebuild.
absl::StatusOr<std::string> ModelConfig(const Sequential& m) {
  const InputLayer* input = SavingAccess::input(m);
  if (input == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model '", m.name(), "' has no Input layer, so it cannot be saved"));
  }
  ConfigMap c;
  c["format"] = "sequent.Sequential";
  c["name"] = m.name();
  c["dtype"] = std::string(DTypeName(m.dtype()));
  c["seed"] = absl::StrCat(m.seed());
  c["input_shape"] = Ints(input->shape());
  c["layers"] = absl::StrCat(m.layers().size());
  for (size_t i = 0; i < m.layers().size(); ++i) {
    const Layer& layer = *m.layers()[i];
    const LayerConfig lc = layer.config();
    if (absl::StatusOr<LayerPtr> check = LayerFromConfig(layer.type_name(), lc);
        !check.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("layer '", layer.name(), "' (", layer.type_name(),
                       ") cannot be saved: ", check.status().message()));
    }
    const std::string prefix = absl::StrCat("layer.", i, ".");
    c[prefix + "type"] = layer.type_name();
    for (const auto& [key, value] : lc)
      c[absl::StrCat(prefix, "config.", key)] = value;
  }
  c["compiled"] = m.compiled() ? "true" : "false";
  if (m.compiled() && m.compile_args()) {
    const CompileArgs& args = *m.compile_args();
    c["device"] = m.device().ToString();
    c["learning_rate"] = Num(m.learning_rate());
    WriteVariant(c, "optimizer", args.optimizer, kOptimizerTypes);
    WriteVariant(c, "loss", args.loss, kLossTypes);
    c["metrics"] = absl::StrCat(args.metrics.size());
    for (size_t i = 0; i < args.metrics.size(); ++i)
      c[absl::StrCat("metric.", i)] = args.metrics[i];
  }
  return FormatConfig(c);
}

// The model's variables of the built (forward) graph: the layers' weights,
// moving statistics and counters, not the optimizer's.
std::set<std::string> LayerVariableNames(const Sequential& m) {
  std::set<std::string> names;
  const Graph& g = m.graph(GraphStage::kBuilt);
  for (NodeId id : g.VariableNodes())
    names.insert(StringAttrOr(g.node(id).attrs, "name", ""));
  return names;
}

// Every variable any of the model's graphs declares, with its type.
std::map<std::string, TensorType> ModelVariables(const Sequential& m) {
  std::map<std::string, TensorType> out;
  for (GraphStage stage :
       {GraphStage::kBuilt, GraphStage::kOptimized, GraphStage::kTrain,
        GraphStage::kEval, GraphStage::kPredict}) {
    const Graph& g = m.graph(stage);
    for (NodeId id : g.VariableNodes()) {
      out.emplace(StringAttrOr(g.node(id).attrs, "name", ""),
                  g.type(g.node(id).outputs[0]));
    }
  }
  return out;
}

enum class LoadKind {
  kModel,            // load_model: every variable, exact types.
  kWeights,          // load_weights of a save_weights file: every variable
                     // must be a layer variable of the model.
  kWeightsFromModel  // load_weights of a model.save file: its layer
                     // variables; the optimizer's are skipped.
};

// Checks every saved variable against the model before writing any, so a
// failed load leaves the model as it was.
absl::Status WriteVariables(Sequential& m,
                            const std::vector<SavedVariable>& variables,
                            LoadKind kind) {
  const bool weights_only = kind != LoadKind::kModel;
  const std::map<std::string, TensorType> known = ModelVariables(m);
  const std::set<std::string> layer_vars = LayerVariableNames(m);
  std::vector<std::pair<std::string, Tensor>> writes;
  std::set<std::string> present;
  for (const SavedVariable& v : variables) {
    if (kind == LoadKind::kWeightsFromModel && layer_vars.count(v.name) == 0)
      continue;
    auto it = known.find(v.name);
    if (it == known.end() ||
        (kind == LoadKind::kWeights && layer_vars.count(v.name) == 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the file has variable '", v.name, "' ", v.value.type().ToString(),
          ", which this model does not have"));
    }
    const TensorType& want = it->second;
    const bool castable =
        weights_only && IsFloating(want.dtype) && IsFloating(v.value.dtype());
    if (v.value.shape() != want.shape ||
        (v.value.dtype() != want.dtype && !castable)) {
      return absl::InvalidArgumentError(
          absl::StrCat("variable '", v.name, "' is ", v.value.type().ToString(),
                       " in the file but ", want.ToString(), " in the model"));
    }
    present.insert(v.name);
    writes.emplace_back(v.name, v.value.dtype() == want.dtype
                                    ? v.value
                                    : v.value.CastTo(want.dtype));
  }
  if (weights_only) {
    std::vector<std::string> missing;
    for (const std::string& name : m.weight_names())
      if (present.count(name) == 0) missing.push_back(name);
    if (!missing.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the file lacks the model's weights ", absl::StrJoin(missing, ", "),
          " (was it saved from a model built the same way?)"));
    }
  }
  VariableStore* store = SavingAccess::store(m);
  for (const auto& [name, value] : writes) {
    if (absl::Status s = store->Write(name, value); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status WithPath(const absl::Status& s, const std::string& path) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat("'", path, "': ", s.message()));
}

std::string ErrnoText(int err) { return std::strerror(err); }

}  // namespace

// ---------------------------------------------------------------------------
// Container.

absl::StatusOr<std::string> EncodeSaveFile(const SaveFile& file) {
  std::vector<std::pair<const char*, std::string>> sections;
  sections.emplace_back(kConfigTag, file.config);
  if (!file.graph.empty()) sections.emplace_back(kGraphTag, file.graph);
  sections.emplace_back(kVariablesTag, EncodeVariables(file.variables));

  const uint32_t count = static_cast<uint32_t>(sections.size());
  uint64_t total = kHeaderSize + uint64_t{count} * kEntrySize + 4;
  for (const auto& [tag, payload] : sections) total += payload.size();
  total += 4;  // Trailer CRC.

  std::string out;
  out.reserve(total);
  out.append(kSaveMagic, kMagicSize);
  PutLE<uint32_t>(out, file.version);
  PutLE<uint32_t>(out, file.flags);
  PutLE<uint64_t>(out, total);
  PutLE<uint32_t>(out, count);
  PutLE<uint32_t>(out, Crc32(out));
  const size_t table_begin = out.size();
  uint64_t offset = kHeaderSize + uint64_t{count} * kEntrySize + 4;
  for (const auto& [tag, payload] : sections) {
    out.append(tag, 4);
    PutLE<uint32_t>(out, 0);
    PutLE<uint64_t>(out, offset);
    PutLE<uint64_t>(out, payload.size());
    offset += payload.size();
  }
  PutLE<uint32_t>(out, Crc32(absl::string_view(out).substr(table_begin)));
  for (const auto& [tag, payload] : sections) out += payload;
  PutLE<uint32_t>(out, Crc32(out));
  if (out.size() != total) {
    return absl::InternalError(
        absl::StrCat("save file is ", out.size(), " bytes, expected ", total));
  }
  return out;
}

absl::StatusOr<SaveFile> DecodeSaveFile(absl::string_view bytes) {
  const uint64_t size = bytes.size();
  const absl::string_view magic(kSaveMagic, kMagicSize);
  if (!absl::StartsWith(magic, bytes.substr(0, kMagicSize))) {
    return absl::DataLossError(
        "not a sequent save file (its first bytes are not \"SEQUENTM\")");
  }
  if (size < kMagicSize + 4) {
    return absl::DataLossError(Truncated("the header", kHeaderSize, size));
  }
  SaveFile file;
  file.version = GetLE<uint32_t>(bytes.data() + 8);
  if (file.version > kSaveFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("the file has format version ", file.version,
                     ", newer than this build of sequent reads (version ",
                     kSaveFormatVersion, "); update sequent"));
  }
  if (file.version == 0) {
    return absl::DataLossError(
        "the file has format version 0, which is not a "
        "valid version");
  }
  if (size < kHeaderSize) {
    return absl::DataLossError(Truncated("the header", kHeaderSize, size));
  }
  if (Crc32(bytes.substr(0, kFixedHeader)) !=
      GetLE<uint32_t>(bytes.data() + kFixedHeader)) {
    return absl::DataLossError("checksum mismatch in the header");
  }
  file.flags = GetLE<uint32_t>(bytes.data() + 12);
  const uint64_t file_size = GetLE<uint64_t>(bytes.data() + 16);
  const uint32_t count = GetLE<uint32_t>(bytes.data() + 24);
  if (count > kMaxSections) {
    return absl::DataLossError(absl::StrCat(
        "corrupt header: ", count, " sections (at most ", kMaxSections, ")"));
  }
  if (file.flags & ~kSaveFlagWeightsOnly) {
    return absl::DataLossError(
        absl::StrCat("unknown header flags 0x", absl::Hex(file.flags)));
  }
  const uint64_t table_end = kHeaderSize + uint64_t{count} * kEntrySize;
  if (size < table_end + 4) {
    return absl::DataLossError(
        Truncated("the section table", table_end + 4, size));
  }
  if (Crc32(bytes.substr(kHeaderSize, table_end - kHeaderSize)) !=
      GetLE<uint32_t>(bytes.data() + table_end)) {
    return absl::DataLossError("checksum mismatch in the section table");
  }
  if (file_size < table_end + 8) {
    return absl::DataLossError(absl::StrCat(
        "corrupt header: file size ", file_size, " is smaller than its ",
        table_end + 8, "-byte header, section table and checksum"));
  }
  // Sections lie in order between the table and the trailer.
  struct Entry {
    std::string tag;
    uint64_t offset, length;
  };
  std::vector<Entry> entries;
  uint64_t expected_offset = table_end + 4;
  for (uint32_t i = 0; i < count; ++i) {
    const char* e = bytes.data() + kHeaderSize + i * kEntrySize;
    Entry entry{std::string(e, 4), GetLE<uint64_t>(e + 8),
                GetLE<uint64_t>(e + 16)};
    if (entry.offset != expected_offset || entry.offset > file_size - 4 ||
        entry.length > file_size - 4 - entry.offset) {
      return absl::DataLossError(absl::StrCat(
          "corrupt section table: section ", absl::CHexEscape(entry.tag),
          " at offset ", entry.offset, " with ", entry.length,
          " bytes does not fit the ", file_size, "-byte file layout"));
    }
    if (entry.offset + entry.length > size) {
      return absl::DataLossError(
          Truncated(absl::StrCat("section ", absl::CHexEscape(entry.tag)),
                    entry.offset + entry.length, size));
    }
    expected_offset = entry.offset + entry.length;
    entries.push_back(std::move(entry));
  }
  if (expected_offset + 4 != file_size) {
    return absl::DataLossError(
        absl::StrCat("corrupt section table: sections end at ", expected_offset,
                     " but the checksum is at ", file_size - 4));
  }
  if (size < file_size) {
    return absl::DataLossError(Truncated("the checksum", file_size, size));
  }
  if (size > file_size) {
    return absl::DataLossError(absl::StrCat(
        "the file has ", size - file_size, " bytes after its end (", size,
        " bytes, the header says ", file_size, ")"));
  }
  if (Crc32(bytes.substr(0, size - 4)) !=
      GetLE<uint32_t>(bytes.data() + size - 4)) {
    return absl::DataLossError(
        "checksum mismatch: the file is corrupt (CRC32 over its contents "
        "differs from the stored one)");
  }
  bool have_config = false, have_vars = false;
  for (const Entry& e : entries) {
    const absl::string_view payload = bytes.substr(e.offset, e.length);
    if (e.tag == kConfigTag && !have_config) {
      file.config = std::string(payload);
      have_config = true;
    } else if (e.tag == kGraphTag && file.graph.empty()) {
      file.graph = std::string(payload);
    } else if (e.tag == kVariablesTag && !have_vars) {
      absl::StatusOr<std::vector<SavedVariable>> vars =
          DecodeVariables(payload);
      if (!vars.ok()) return vars.status();
      file.variables = *std::move(vars);
      have_vars = true;
    }
    // Other tags: sections a later writer of this version may add; skipped.
  }
  if (!have_config || !have_vars) {
    return absl::DataLossError(absl::StrCat(
        "the file lacks its ", have_config ? "VARS" : "CONF", " section"));
  }
  return file;
}

absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view bytes) {
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  const int fd =
      ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::Status(
        absl::ErrnoToStatusCode(errno),
        absl::StrCat("cannot create '", tmp, "': ", ErrnoText(errno)));
  }
  const auto fail = [&](const char* what) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return absl::Status(absl::ErrnoToStatusCode(err),
                        absl::StrCat(what, " '", tmp, "': ", ErrnoText(err)));
  };
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("cannot write");
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("cannot fsync");
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return absl::Status(
        absl::ErrnoToStatusCode(err),
        absl::StrCat("cannot close '", tmp, "': ", ErrnoText(err)));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return absl::Status(absl::ErrnoToStatusCode(err),
                        absl::StrCat("cannot rename '", tmp, "' to '", path,
                                     "': ", ErrnoText(err)));
  }
  // The rename is durable only once the directory entry is.
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return absl::OkStatus();
}

absl::StatusOr<SaveFile> ReadSaveFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return absl::Status(absl::ErrnoToStatusCode(errno),
                        absl::StrCat("'", path, "': ", ErrnoText(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' is not a regular file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::Status(absl::ErrnoToStatusCode(errno),
                        absl::StrCat("'", path, "': ", ErrnoText(errno)));
  }
  // The allocation is the file's real size, not a size the file claims.
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (static_cast<size_t>(in.gcount()) != bytes.size()) {
    return absl::DataLossError(absl::StrCat("'", path, "': read ", in.gcount(),
                                            " of ", bytes.size(), " bytes"));
  }
  absl::StatusOr<SaveFile> file = DecodeSaveFile(bytes);
  if (!file.ok()) return WithPath(file.status(), path);
  return file;
}

// ---------------------------------------------------------------------------
// Models.

absl::Status SaveModel(const Sequential& model, const std::string& path,
                       bool weights_only) {
  try {
    SaveFile file;
    file.flags = weights_only ? kSaveFlagWeightsOnly : 0;
    absl::StatusOr<std::string> config = ModelConfig(model);
    if (!config.ok()) return config.status();
    file.config = *std::move(config);
    if (weights_only) {
      if (!model.compiled()) {
        return absl::FailedPreconditionError(
            "save_weights: the model must be compiled first (its weights do "
            "not exist before)");
      }
      model.get_weights();  // Creates the weights if nothing ran yet.
      VariableStore& store = model.variables();
      for (const std::string& name : LayerVariableNames(model)) {
        if (!store.Contains(name)) continue;
        absl::StatusOr<Tensor> value = store.Read(name);
        if (!value.ok()) return value.status();
        file.variables.push_back({name, *std::move(value)});
      }
    } else if (model.compiled()) {
      file.graph = PrintGraph(model.graph(GraphStage::kOptimized));
      // Every variable: weights, optimizer slots and iterations, moving
      // statistics, dropout counters. Ones no executable created yet are
      // recreated on load from the same seeds.
      VariableStore& store = model.variables();
      for (const std::string& name : store.Names()) {
        absl::StatusOr<Tensor> value = store.Read(name);
        if (!value.ok()) return value.status();
        file.variables.push_back({name, *std::move(value)});
      }
    }
    absl::StatusOr<std::string> bytes = EncodeSaveFile(file);
    if (!bytes.ok()) return bytes.status();
    return WriteFileAtomically(path, *bytes);
  } catch (const Error& e) {
    return FromError(e);
  }
}

absl::StatusOr<Sequential> LoadModel(const std::string& path,
                                     std::optional<Device> device) {
  absl::StatusOr<SaveFile> file = ReadSaveFile(path);
  if (!file.ok()) return file.status();
  if (file->flags & kSaveFlagWeightsOnly) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", path,
        "' holds only weights (written by save_weights): build the same model "
        "and call load_weights"));
  }
  const auto bad = [&](const absl::Status& s) { return WithPath(s, path); };
  // The model is rebuilt from its config; the stored graph is for tools
  // (sequent-graph --model), which must not be handed one that does not parse.
  if (!file->graph.empty()) {
    if (absl::StatusOr<Graph> g = ParseGraph(file->graph); !g.ok()) {
      return bad(absl::DataLossError(
          absl::StrCat("section GRPH: ", g.status().message())));
    }
  }
  absl::StatusOr<ConfigMap> config = ParseConfig(file->config);
  if (!config.ok()) return bad(config.status());
  std::set<std::string> used;
  ConfigReader top(*config, used, "");
  std::string format, name, dtype_name, seed_text, input_text, layers_text,
      compiled_text;
  top.S("format", format);
  top.S("name", name);
  top.S("dtype", dtype_name);
  top.S("seed", seed_text);
  top.S("input_shape", input_text);
  top.S("layers", layers_text);
  top.S("compiled", compiled_text);
  if (!top.status().ok()) return bad(top.status());
  if (format != "sequent.Sequential") {
    return bad(absl::DataLossError(
        absl::StrCat("config: unknown model format '", format, "'")));
  }
  absl::StatusOr<DType> dtype = ParseDType(dtype_name);
  uint64_t seed = 0;
  size_t num_layers = 0;
  if (!dtype.ok() || (*dtype != DType::kF32 && *dtype != DType::kF64) ||
      !absl::SimpleAtoi(seed_text, &seed) ||
      !absl::SimpleAtoi(layers_text, &num_layers) ||
      num_layers > config->size()) {
    return bad(absl::DataLossError(
        absl::StrCat("config: bad dtype '", dtype_name, "', seed '", seed_text,
                     "' or layer count '", layers_text, "'")));
  }
  absl::StatusOr<std::vector<int64_t>> input_shape =
      ParseInts("input_shape", input_text);
  if (!input_shape.ok()) return bad(input_shape.status());

  std::vector<LayerPtr> layers = {Input(*input_shape)};
  for (size_t i = 0; i < num_layers; ++i) {
    const std::string prefix = absl::StrCat("layer.", i, ".");
    const std::string config_prefix = prefix + "config.";
    std::string type;
    ConfigReader r(*config, used, absl::StrCat("layer.", i));
    r.S("type", type);
    if (!r.status().ok()) return bad(r.status());
    LayerConfig lc;
    for (auto it = config->lower_bound(config_prefix);
         it != config->end() && absl::StartsWith(it->first, config_prefix);
         ++it) {
      lc[it->first.substr(config_prefix.size())] = it->second;
      used.insert(it->first);
    }
    absl::StatusOr<LayerPtr> layer = LayerFromConfig(type, lc);
    if (!layer.ok()) {
      return bad(absl::DataLossError(
          absl::StrCat("layer ", i, ": ", layer.status().message())));
    }
    layers.push_back(*std::move(layer));
  }

  std::optional<CompileArgs> args;
  std::string device_text;
  double learning_rate = 0.0;
  if (compiled_text == "true") {
    std::string optimizer_type, loss_type, metrics_text;
    top.S("device", device_text);
    top.D("learning_rate", learning_rate);
    top.S("optimizer", optimizer_type);
    top.S("loss", loss_type);
    top.S("metrics", metrics_text);
    if (!top.status().ok()) return bad(top.status());
    absl::StatusOr<Optimizer> optimizer = ReadVariant<Optimizer>(
        *config, used, "optimizer", optimizer_type, kOptimizerTypes);
    if (!optimizer.ok()) return bad(optimizer.status());
    absl::StatusOr<Loss> loss =
        ReadVariant<Loss>(*config, used, "loss", loss_type, kLossTypes);
    if (!loss.ok()) return bad(loss.status());
    size_t num_metrics = 0;
    if (!absl::SimpleAtoi(metrics_text, &num_metrics) ||
        num_metrics > config->size()) {
      return bad(absl::DataLossError(
          absl::StrCat("config: bad metric count '", metrics_text, "'")));
    }
    args = CompileArgs{*std::move(optimizer), *std::move(loss), {}};
    for (size_t i = 0; i < num_metrics; ++i) {
      std::string metric;
      top.S(absl::StrCat("metric.", i).c_str(), metric);
      args->metrics.push_back(std::move(metric));
    }
    if (!top.status().ok()) return bad(top.status());
  } else if (compiled_text != "false") {
    return bad(absl::DataLossError(absl::StrCat(
        "config: 'compiled' = '", compiled_text, "' is not true or false")));
  }
  for (const auto& [key, value] : *config) {
    if (used.count(key) == 0) {
      return bad(
          absl::DataLossError(absl::StrCat("config: unknown key '", key, "'")));
    }
  }

  try {
    Sequential model(std::move(layers), name);
    SavingAccess::Restore(model, seed, *dtype);
    if (!args) {
      if (!file->variables.empty()) {
        return bad(absl::DataLossError(
            "the model was saved uncompiled but the file holds variables"));
      }
      return model;
    }
    model.compile(args->optimizer, args->loss, args->metrics,
                  device ? *device : Device(device_text));
    model.set_learning_rate(learning_rate);
    if (absl::Status s =
            WriteVariables(model, file->variables, LoadKind::kModel);
        !s.ok()) {
      return bad(s);
    }
    return model;
  } catch (const Error& e) {
    return bad(FromError(e));
  }
}

absl::Status LoadWeights(Sequential& model, const std::string& path) {
  if (!model.compiled()) {
    return absl::FailedPreconditionError(
        "load_weights: compile the model first, so that its weights exist");
  }
  absl::StatusOr<SaveFile> file = ReadSaveFile(path);
  if (!file.ok()) return file.status();
  try {
    return WithPath(WriteVariables(model, file->variables,
                                   (file->flags & kSaveFlagWeightsOnly)
                                       ? LoadKind::kWeights
                                       : LoadKind::kWeightsFromModel),
                    path);
  } catch (const Error& e) {
    return WithPath(FromError(e), path);
  }
}

void Sequential::save(const std::string& path) const {
  ThrowIfError(SaveModel(*this, path, /*weights_only=*/false));
}

void Sequential::save_weights(const std::string& path) const {
  ThrowIfError(SaveModel(*this, path, /*weights_only=*/true));
}

void Sequential::load_weights(const std::string& path) {
  ThrowIfError(LoadWeights(*this, path));
}

Sequential load_model(const std::string& path, std::optional<Device> device) {
  absl::StatusOr<Sequential> model = LoadModel(path, std::move(device));
  if (!model.ok())
    throw Error(absl::StrCat("load_model: ", model.status().message()));
  return *std::move(model);
}

// ---------------------------------------------------------------------------
// ModelCheckpoint (declared in callbacks.h; defined here because it saves).

ModelCheckpoint::ModelCheckpoint(std::string path, std::string monitor,
                                 bool save_best_only, std::string mode,
                                 bool save_weights_only)
    : path_(std::move(path)),
      monitor_(std::move(monitor)),
      save_best_only_(save_best_only),
      mode_(std::move(mode)),
      save_weights_only_(save_weights_only) {
  MonitorIncreases(monitor_, mode_);  // Validates the mode.
  FilePath(0);                        // Validates the placeholders.
}

std::string ModelCheckpoint::FilePath(int epoch) const {
  std::string out;
  size_t i = 0;
  while (i < path_.size()) {
    if (path_[i] != '{') {
      out += path_[i++];
      continue;
    }
    const size_t close = path_.find('}', i);
    const std::string field = path_.substr(
        i, close == std::string::npos ? std::string::npos : close - i + 1);
    // {epoch}, or {epoch:Nd} / {epoch:0Nd} as Python formats it.
    int width = 0;
    bool zero = false, ok = close != std::string::npos;
    if (ok && field != "{epoch}") {
      ok = absl::StartsWith(field, "{epoch:") && absl::EndsWith(field, "d}");
      const std::string spec = ok ? field.substr(7, field.size() - 9) : "";
      zero = !spec.empty() && spec[0] == '0';
      ok = ok && !spec.empty() && spec.size() <= 3 &&
           absl::SimpleAtoi(spec, &width);
    }
    if (!ok) {
      throw Error(absl::StrCat("ModelCheckpoint: path '", path_,
                               "' has placeholder '", field,
                               "'; supported: {epoch}, {epoch:02d}"));
    }
    out += zero ? absl::StrFormat("%0*d", width, epoch + 1)
                : absl::StrFormat("%*d", width, epoch + 1);
    i = close + 1;
  }
  return out;
}

void ModelCheckpoint::on_train_begin(const Logs&) {
  MonitorIncreases(monitor_, mode_);
}

void ModelCheckpoint::on_epoch_end(int epoch, Logs& logs) {
  if (save_best_only_) {
    auto it = logs.find(monitor_);
    if (it == logs.end()) {
      std::cerr << "WARNING: ModelCheckpoint: can save best model only with "
                << monitor_ << " available, skipping.\n";
      return;
    }
    const double current = it->second;
    const bool increases = MonitorIncreases(monitor_, mode_);
    if (have_best_ && !(increases ? current > best_ : current < best_)) return;
    best_ = current;
    have_best_ = true;
  }
  const std::string path = FilePath(epoch);
  if (save_weights_only_) {
    model_->save_weights(path);
  } else {
    model_->save(path);
  }
  last_saved_ = path;
}

}  // namespace sequent
