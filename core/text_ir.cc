#include "core/text_ir.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace sequent {
namespace {

bool IsIdentStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool IsIdentChar(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsIdentifier(absl::string_view s) {
  if (s.empty() || !IsIdentStart(s[0])) return false;
  for (char c : s) {
    if (!IsIdentChar(c)) return false;
  }
  return true;
}

std::string Quote(absl::string_view s) {
  return AttrValueToString(std::string(s));
}

// Op names and attribute keys print bare when they are identifiers. Words that
// start a statement or a suffix are quoted so that they cannot be misread.
std::string NameToString(absl::string_view s) {
  if (IsIdentifier(s) && s != "loc" && s != "output" && s != "update" &&
      s != "graph") {
    return std::string(s);
  }
  return Quote(s);
}

// ---------------------------------------------------------------------------------------
// Lexer

enum class Tok { kIdent, kValue, kString, kInt, kFloat, kPunct, kEnd, kError };

struct Token {
  Tok kind = Tok::kEnd;
  // Identifier, value name (without '%'), number text, decoded string, the
  // punctuation character, or the error message.
  std::string text;
  int line = 1;
  int col = 1;
};

class Lexer {
 public:
  explicit Lexer(absl::string_view text) : text_(text) {}

  // Tokenizes everything; a lexical error becomes a final kError token so that
  // the parser reports it only when it gets there (earlier syntax errors win).
  std::vector<Token> Run() {
    std::vector<Token> tokens;
    while (true) {
      Token t = Next();
      const Tok kind = t.kind;
      tokens.push_back(std::move(t));
      if (kind == Tok::kEnd || kind == Tok::kError) break;
    }
    return tokens;
  }

 private:
  char Peek(size_t ahead = 0) const {
    return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0';
  }
  bool AtEnd(size_t ahead = 0) const { return pos_ + ahead >= text_.size(); }
  void Advance() {
    if (text_[pos_] == '\n') {
      ++line_;
      col_ = 1;
    } else {
      ++col_;
    }
    ++pos_;
  }

  Token Make(Tok kind, std::string text, int line, int col) {
    Token t;
    t.kind = kind;
    t.text = std::move(text);
    t.line = line;
    t.col = col;
    return t;
  }

  static std::string DescribeChar(char c) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u >= 0x21 && u < 0x7f) return absl::StrCat("'", std::string(1, c), "'");
    return absl::StrFormat("byte 0x%02x", u);
  }

  void SkipSpaceAndComments() {
    while (!AtEnd()) {
      const char c = Peek();
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        Advance();
      } else if (c == '/' && Peek(1) == '/') {
        while (!AtEnd() && Peek() != '\n') Advance();
      } else {
        break;
      }
    }
  }

  Token Next() {
    SkipSpaceAndComments();
    const int line = line_, col = col_;
    if (AtEnd()) return Make(Tok::kEnd, "", line, col);
    const char c = Peek();
    if (IsIdentStart(c)) {
      const size_t start = pos_;
      while (!AtEnd() && IsIdentChar(Peek())) Advance();
      return Make(Tok::kIdent, std::string(text_.substr(start, pos_ - start)),
                  line, col);
    }
    if (c == '%') {
      Advance();
      const size_t start = pos_;
      while (!AtEnd() && IsIdentChar(Peek())) Advance();
      if (pos_ == start) {
        return Make(Tok::kError, "expected a value name after '%'", line, col);
      }
      return Make(Tok::kValue, std::string(text_.substr(start, pos_ - start)),
                  line, col);
    }
    if (c == '"') return LexString(line, col);
    if (IsDigit(c) || (c == '-' && IsDigit(Peek(1))))
      return LexNumber(line, col);
    if (c == '-' && Peek(1) == 'i' && Peek(2) == 'n' && Peek(3) == 'f' &&
        !IsIdentChar(Peek(4))) {
      for (int i = 0; i < 4; ++i) Advance();
      return Make(Tok::kFloat, "-inf", line, col);
    }
    switch (c) {
      case '{':
      case '}':
      case '(':
      case ')':
      case '[':
      case ']':
      case ',':
      case '=':
      case ':':
        Advance();
        return Make(Tok::kPunct, std::string(1, c), line, col);
      default:
        return Make(Tok::kError,
                    absl::StrCat("unexpected character ", DescribeChar(c)),
                    line, col);
    }
  }

  Token LexNumber(int line, int col) {
    const size_t start = pos_;
    bool is_float = false;
    if (Peek() == '-') Advance();
    while (!AtEnd() && IsDigit(Peek())) Advance();
    if (Peek() == '.') {
      is_float = true;
      Advance();
      while (!AtEnd() && IsDigit(Peek())) Advance();
    }
    if ((Peek() == 'e' || Peek() == 'E') &&
        (IsDigit(Peek(1)) ||
         ((Peek(1) == '+' || Peek(1) == '-') && IsDigit(Peek(2))))) {
      is_float = true;
      Advance();
      if (Peek() == '+' || Peek() == '-') Advance();
      while (!AtEnd() && IsDigit(Peek())) Advance();
    }
    return Make(is_float ? Tok::kFloat : Tok::kInt,
                std::string(text_.substr(start, pos_ - start)), line, col);
  }

  static int HexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  Token LexString(int line, int col) {
    Advance();  // the opening quote
    std::string out;
    while (true) {
      if (AtEnd() || Peek() == '\n') {
        return Make(Tok::kError, "unterminated string", line, col);
      }
      const char c = Peek();
      if (c == '"') {
        Advance();
        return Make(Tok::kString, std::move(out), line, col);
      }
      if (c == '\\') {
        const int esc_line = line_, esc_col = col_;
        Advance();
        if (AtEnd()) return Make(Tok::kError, "unterminated string", line, col);
        const char e = Peek();
        switch (e) {
          case '"':
          case '\\':
            out += e;
            Advance();
            continue;
          case 'n':
            out += '\n';
            Advance();
            continue;
          case 't':
            out += '\t';
            Advance();
            continue;
          case 'x': {
            const int hi = HexValue(Peek(1)), lo = HexValue(Peek(2));
            if (hi < 0 || lo < 0) {
              return Make(Tok::kError,
                          "expected two hex digits after '\\x' in a string",
                          esc_line, esc_col);
            }
            out += static_cast<char>(hi * 16 + lo);
            for (int i = 0; i < 3; ++i) Advance();
            continue;
          }
          default:
            return Make(
                Tok::kError,
                absl::StrCat("unknown escape '\\", std::string(1, e),
                             "' in a string (use \\\" \\\\ \\n \\t or \\xNN)"),
                esc_line, esc_col);
        }
      }
      if (static_cast<unsigned char>(c) < 0x20) {
        return Make(
            Tok::kError,
            absl::StrFormat(
                "control character 0x%02x in a string (write it as \\x%02x)",
                static_cast<unsigned char>(c), static_cast<unsigned char>(c)),
            line_, col_);
      }
      out += c;
      Advance();
    }
  }

  absl::string_view text_;
  size_t pos_ = 0;
  int line_ = 1;
  int col_ = 1;
};

// ---------------------------------------------------------------------------------------
// Parser

std::string Truncated(absl::string_view s) {
  constexpr size_t kMax = 40;
  if (s.size() <= kMax) return std::string(s);
  return absl::StrCat(s.substr(0, kMax), "...");
}

std::string Describe(const Token& t) {
  switch (t.kind) {
    case Tok::kEnd:
      return "end of input";
    case Tok::kIdent:
      return absl::StrCat("'", Truncated(t.text), "'");
    case Tok::kValue:
      return absl::StrCat("'%", Truncated(t.text), "'");
    case Tok::kString:
      return absl::StrCat("string ", Quote(Truncated(t.text)));
    case Tok::kInt:
    case Tok::kFloat:
      return absl::StrCat("number ", Truncated(t.text));
    case Tok::kPunct:
      return absl::StrCat("'", t.text, "'");
    case Tok::kError:
      return t.text;
  }
  return "?";
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  absl::StatusOr<Graph> Parse() {
    if (!IsIdent("graph")) return Expected("'graph' at the start of the text");
    Advance();
    if (Cur().kind != Tok::kString)
      return Expected("the graph name as a quoted string");
    Graph g(Cur().text);
    Advance();
    if (!IsPunct('{')) return Expected("'{' after the graph name");
    Advance();
    graph_ = &g;
    while (!IsPunct('}')) {
      absl::Status s;
      if (Cur().kind == Tok::kValue) {
        s = ParseNode();
      } else if ((IsIdent("output") || IsIdent("update")) &&
                 Peek(1).kind == Tok::kString) {
        s = ParseSink();
      } else if ((Cur().kind == Tok::kIdent || Cur().kind == Tok::kString) &&
                 Peek(1).kind == Tok::kPunct && Peek(1).text == "(") {
        s = ParseNode();
      } else {
        return Expected(
            "a node ('%0 = op(...) : type'), 'output', 'update' or '}'");
      }
      if (!s.ok()) return s;
    }
    Advance();
    if (Cur().kind != Tok::kEnd)
      return Expected("end of input after the graph's '}'");
    return g;
  }

 private:
  const Token& Cur() const { return tokens_[pos_]; }
  const Token& Peek(size_t ahead) const {
    return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)];
  }
  void Advance() {
    if (pos_ + 1 < tokens_.size()) ++pos_;
  }
  bool IsPunct(char c) const {
    return Cur().kind == Tok::kPunct && Cur().text[0] == c;
  }
  bool IsIdent(absl::string_view word) const {
    return Cur().kind == Tok::kIdent && Cur().text == word;
  }

  static absl::Status ErrorAt(const Token& t, absl::string_view message) {
    return absl::InvalidArgumentError(
        absl::StrCat(t.line, ":", t.col, ": ", message));
  }
  // "expected X, found Y"; a lexical error at this point is reported as itself.
  absl::Status Expected(absl::string_view what) const {
    if (Cur().kind == Tok::kError) return ErrorAt(Cur(), Cur().text);
    return ErrorAt(
        Cur(), absl::StrCat("expected ", what, ", found ", Describe(Cur())));
  }
  absl::Status ExpectPunct(char c, absl::string_view context) {
    if (!IsPunct(c))
      return Expected(absl::StrCat("'", std::string(1, c), "' ", context));
    Advance();
    return absl::OkStatus();
  }

  absl::StatusOr<ValueId> UseValue(absl::string_view what) {
    if (Cur().kind != Tok::kValue) return Expected(what);
    auto it = values_.find(Cur().text);
    if (it == values_.end()) {
      return ErrorAt(Cur(), absl::StrCat("use of undefined value '%",
                                         Truncated(Cur().text), "'"));
    }
    Advance();
    return it->second.id;
  }

  absl::StatusOr<int64_t> ParseInt(const Token& t) {
    int64_t v = 0;
    const char* begin = t.text.data();
    const char* end = begin + t.text.size();
    auto [ptr, ec] = std::from_chars(begin, end, v);
    if (ec == std::errc::result_out_of_range) {
      return ErrorAt(t, absl::StrCat("integer ", Truncated(t.text),
                                     " is out of range for a 64-bit integer"));
    }
    if (ec != std::errc() || ptr != end) {
      return ErrorAt(t, absl::StrCat("malformed integer ", Truncated(t.text)));
    }
    return v;
  }

  // A float literal, or a word that names one (nan, inf); -inf is lexed as a
  // float.
  absl::StatusOr<double> ParseFloat(const Token& t) {
    if (t.kind == Tok::kIdent) {
      if (t.text == "nan") return std::nan("");
      return HUGE_VAL;  // "inf"; callers check the word
    }
    if (t.kind == Tok::kInt) {
      // Ints may appear in float lists; parse them as integers first for range
      // checking.
      auto v = ParseInt(t);
      if (!v.ok()) return v.status();
      return static_cast<double>(*v);
    }
    if (t.text == "-inf") return -HUGE_VAL;
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(t.text.c_str(), &end);
    if (end != t.text.c_str() + t.text.size()) {
      return ErrorAt(t, absl::StrCat("malformed number ", Truncated(t.text)));
    }
    // Underflow to a subnormal or zero is fine (the printer writes subnormals);
    // overflow is not.
    if (std::isinf(v)) {
      return ErrorAt(t, absl::StrCat("number ", Truncated(t.text),
                                     " is out of range for a 64-bit float"));
    }
    return v;
  }

  bool IsFloatWord(const Token& t) const {
    return t.kind == Tok::kIdent && (t.text == "nan" || t.text == "inf");
  }

  absl::StatusOr<AttrValue> ParseAttrValue() {
    const Token& t = Cur();
    switch (t.kind) {
      case Tok::kInt: {
        auto v = ParseInt(t);
        if (!v.ok()) return v.status();
        Advance();
        return AttrValue(*v);
      }
      case Tok::kFloat: {
        auto v = ParseFloat(t);
        if (!v.ok()) return v.status();
        Advance();
        return AttrValue(*v);
      }
      case Tok::kString: {
        AttrValue v(t.text);
        Advance();
        return v;
      }
      case Tok::kIdent:
        if (t.text == "true" || t.text == "false") {
          AttrValue v(t.text == "true");
          Advance();
          return v;
        }
        if (IsFloatWord(t)) {
          auto v = ParseFloat(t);
          Advance();
          return AttrValue(*v);
        }
        return Expected(
            "an attribute value (number, true, false, quoted string or list; "
            "strings need "
            "quotes)");
      case Tok::kPunct:
        if (t.text == "[") return ParseList();
        break;
      default:
        break;
    }
    return Expected(
        "an attribute value (number, true, false, quoted string or list)");
  }

  // [] is an empty int list; one float element makes the whole list a float
  // list.
  absl::StatusOr<AttrValue> ParseList() {
    Advance();  // '['
    std::vector<int64_t> ints;
    std::vector<double> floats;
    bool is_float = false;
    if (IsPunct(']')) {
      Advance();
      return AttrValue(std::move(ints));
    }
    while (true) {
      const Token& t = Cur();
      if (t.kind == Tok::kInt) {
        auto v = ParseInt(t);
        if (!v.ok()) return v.status();
        ints.push_back(*v);
        floats.push_back(static_cast<double>(*v));
      } else if (t.kind == Tok::kFloat || IsFloatWord(t)) {
        auto v = ParseFloat(t);
        if (!v.ok()) return v.status();
        is_float = true;
        floats.push_back(*v);
      } else {
        return Expected("a number in the list");
      }
      Advance();
      if (IsPunct(']')) break;
      if (!IsPunct(',')) return Expected("',' or ']' in the list");
      Advance();
    }
    Advance();  // ']'
    if (is_float) return AttrValue(std::move(floats));
    return AttrValue(std::move(ints));
  }

  absl::StatusOr<TensorType> ParseType() {
    if (Cur().kind != Tok::kIdent) return Expected("a type such as f32[N,784]");
    auto dtype = ParseDType(Cur().text);
    if (!dtype.ok()) {
      return ErrorAt(
          Cur(),
          absl::StrCat("unknown element type '", Truncated(Cur().text),
                       "' (expected f32, f64, bf16, f16, i32, i64 or bool)"));
    }
    Advance();
    if (!IsPunct('[')) return Expected("'[' after the element type");
    Advance();
    std::vector<int64_t> dims;
    if (!IsPunct(']')) {
      while (true) {
        if (IsIdent("N")) {
          dims.push_back(Shape::kBatch);
        } else if (Cur().kind == Tok::kInt) {
          auto v = ParseInt(Cur());
          if (!v.ok()) return v.status();
          if (*v < 0) {
            return ErrorAt(
                Cur(),
                absl::StrCat("dimension ", *v,
                             " is negative (write N for the batch size)"));
          }
          dims.push_back(*v);
        } else {
          return Expected("a dimension (a non-negative integer or N)");
        }
        Advance();
        if (IsPunct(']')) break;
        if (!IsPunct(',')) return Expected("',' or ']' in the shape");
        Advance();
      }
    }
    Advance();  // ']'
    return TensorType{*dtype, Shape(std::move(dims))};
  }

  absl::Status ParseNode() {
    std::vector<Token> results;
    if (Cur().kind == Tok::kValue) {
      while (true) {
        if (Cur().kind != Tok::kValue)
          return Expected("a result value name such as %3");
        auto it = values_.find(Cur().text);
        if (it != values_.end()) {
          return ErrorAt(
              Cur(), absl::StrCat("value '%", Truncated(Cur().text),
                                  "' is defined twice (first at ",
                                  it->second.line, ":", it->second.col, ")"));
        }
        for (const Token& r : results) {
          if (r.text == Cur().text) {
            return ErrorAt(Cur(),
                           absl::StrCat("value '%", Truncated(Cur().text),
                                        "' is defined twice (first at ", r.line,
                                        ":", r.col, ")"));
          }
        }
        results.push_back(Cur());
        Advance();
        if (IsPunct('=')) break;
        if (!IsPunct(',')) return Expected("',' or '=' after the result names");
        Advance();
      }
      Advance();  // '='
    }
    if (Cur().kind != Tok::kIdent && Cur().kind != Tok::kString)
      return Expected("an op name");
    const Token op_token = Cur();
    Advance();
    if (auto s = ExpectPunct('(', "after the op name"); !s.ok()) return s;
    std::vector<ValueId> inputs;
    if (!IsPunct(')')) {
      while (true) {
        auto v = UseValue("an operand such as %0");
        if (!v.ok()) return v.status();
        inputs.push_back(*v);
        if (IsPunct(')')) break;
        if (!IsPunct(',')) return Expected("',' or ')' in the operand list");
        Advance();
      }
    }
    Advance();  // ')'

    Attributes attrs;
    if (IsPunct('{')) {
      Advance();
      if (!IsPunct('}')) {
        while (true) {
          if (Cur().kind != Tok::kIdent && Cur().kind != Tok::kString) {
            return Expected("an attribute name");
          }
          const Token key = Cur();
          if (attrs.count(key.text) > 0) {
            return ErrorAt(key, absl::StrCat("attribute '", Truncated(key.text),
                                             "' is given twice"));
          }
          Advance();
          if (auto s = ExpectPunct('=', "after the attribute name"); !s.ok())
            return s;
          auto value = ParseAttrValue();
          if (!value.ok()) return value.status();
          attrs.emplace(key.text, *std::move(value));
          if (IsPunct('}')) break;
          if (!IsPunct(',')) return Expected("',' or '}' in the attributes");
          Advance();
        }
      }
      Advance();  // '}'
    }

    std::vector<TensorType> types;
    if (!results.empty()) {
      if (auto s = ExpectPunct(':', "before the result type"); !s.ok())
        return s;
      while (true) {
        const Token type_token = Cur();
        auto type = ParseType();
        if (!type.ok()) return type.status();
        types.push_back(*type);
        if (types.size() > results.size()) {
          return ErrorAt(type_token,
                         absl::StrCat("op '", Truncated(op_token.text),
                                      "' defines ", results.size(),
                                      " value(s) but has more result types"));
        }
        if (!IsPunct(',')) break;
        Advance();
      }
      if (types.size() != results.size()) {
        return Expected(absl::StrCat("',' and another result type (op '",
                                     Truncated(op_token.text), "' defines ",
                                     results.size(), " values)"));
      }
    }

    std::string layer;
    if (IsIdent("loc") && Peek(1).kind == Tok::kPunct && Peek(1).text == "(") {
      Advance();
      Advance();
      if (Cur().kind != Tok::kString)
        return Expected("the layer name as a quoted string");
      layer = Cur().text;
      Advance();
      if (auto s = ExpectPunct(')', "after the layer name"); !s.ok()) return s;
    }

    const NodeId id =
        graph_->AddNode(op_token.text, std::move(inputs), std::move(attrs),
                        types, std::move(layer));
    for (size_t i = 0; i < results.size(); ++i) {
      values_[results[i].text] =
          Def{graph_->node(id).outputs[i], results[i].line, results[i].col};
    }
    return absl::OkStatus();
  }

  // output "name" = %v   |   update "variable" = %v
  absl::Status ParseSink() {
    const bool is_output = Cur().text == "output";
    Advance();
    const std::string name = Cur().text;
    Advance();
    if (auto s = ExpectPunct('=', is_output ? "after the output name"
                                            : "after the variable name");
        !s.ok()) {
      return s;
    }
    if (Cur().kind != Tok::kValue) return Expected("a value such as %3");
    auto it = values_.find(Cur().text);
    if (it == values_.end()) {
      return ErrorAt(
          Cur(), absl::StrCat(is_output ? "output '" : "update of '",
                              Truncated(name), "' refers to undefined value '%",
                              Truncated(Cur().text), "'"));
    }
    Advance();
    if (is_output) {
      graph_->AddOutput(name, it->second.id);
    } else {
      graph_->AddUpdate(name, it->second.id);
    }
    return absl::OkStatus();
  }

  struct Def {
    ValueId id;
    int line;
    int col;
  };

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  Graph* graph_ = nullptr;
  absl::flat_hash_map<std::string, Def> values_;
};

}  // namespace

std::string PrintGraph(const Graph& g) {
  std::string out = absl::StrCat("graph ", Quote(g.name()), " {\n");
  std::vector<NodeId> order;
  auto topo = g.TopologicalOrder();
  if (topo.ok()) {
    order = *std::move(topo);
  } else {
    // A broken graph still prints (for debugging), in id order and marked as
    // such.
    absl::StrAppend(&out, "  // not a valid graph: ", topo.status().message(),
                    "\n");
    order = g.LiveNodes();
  }
  absl::flat_hash_map<ValueId, int> numbers;
  auto name_of = [&](ValueId v) {
    auto it = numbers.find(v);
    if (it == numbers.end()) return absl::StrCat("%invalid_", v);
    return absl::StrCat("%", it->second);
  };
  for (NodeId id : order) {
    const Node& n = g.node(id);
    out += "  ";
    if (!n.outputs.empty()) {
      std::vector<std::string> defs;
      for (ValueId v : n.outputs) {
        const int number = static_cast<int>(numbers.size());
        numbers.emplace(v, number);
        defs.push_back(name_of(v));
      }
      absl::StrAppend(&out, absl::StrJoin(defs, ", "), " = ");
    }
    absl::StrAppend(&out, NameToString(n.op), "(");
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      absl::StrAppend(&out, i > 0 ? ", " : "", name_of(n.inputs[i]));
    }
    out += ")";
    if (!n.attrs.empty()) {
      out += " {";
      bool first = true;
      for (const auto& [key, value] : n.attrs) {
        absl::StrAppend(&out, first ? "" : ", ", NameToString(key), " = ",
                        AttrValueToString(value));
        first = false;
      }
      out += "}";
    }
    if (!n.outputs.empty()) {
      out += " : ";
      for (size_t i = 0; i < n.outputs.size(); ++i) {
        const ValueId v = n.outputs[i];
        absl::StrAppend(
            &out, i > 0 ? ", " : "",
            v >= 0 && v < g.num_values() ? g.type(v).ToString() : "?");
      }
    }
    if (!n.layer.empty()) absl::StrAppend(&out, " loc(", Quote(n.layer), ")");
    out += "\n";
  }
  for (const GraphOutput& o : g.outputs()) {
    absl::StrAppend(&out, "  output ", Quote(o.name), " = ", name_of(o.value),
                    "\n");
  }
  for (const VariableUpdate& u : g.updates()) {
    absl::StrAppend(&out, "  update ", Quote(u.variable), " = ",
                    name_of(u.value), "\n");
  }
  out += "}\n";
  return out;
}

absl::StatusOr<Graph> ParseGraph(absl::string_view text) {
  Parser parser(Lexer(text).Run());
  return parser.Parse();
}

}  // namespace sequent
