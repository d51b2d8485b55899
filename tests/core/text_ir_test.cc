#include "core/text_ir.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/graph.h"

namespace sequent {
namespace {

TensorType F32(std::vector<int64_t> dims) {
  return {DType::kF32, Shape(std::move(dims))};
}
constexpr int64_t N = Shape::kBatch;

// The MLP graph of the format description, built without an op registry.
Graph MlpGraph() {
  Graph g("mlp");
  const NodeId x =
      g.AddNode("input", {}, {{"name", std::string("x")}}, {F32({N, 784})});
  const NodeId w = g.AddNode("variable", {},
                             {{"name", std::string("dense/kernel")},
                              {"initializer", std::string("glorot_uniform")},
                              {"seed", int64_t{1}},
                              {"trainable", true}},
                             {F32({784, 512})});
  const NodeId b = g.AddNode("variable", {},
                             {{"name", std::string("dense/bias")},
                              {"initializer", std::string("zeros")},
                              {"trainable", true}},
                             {F32({512})});
  const NodeId d = g.AddNode(
      "dense",
      {g.node(x).outputs[0], g.node(w).outputs[0], g.node(b).outputs[0]},
      {{"activation", std::string("relu")}}, {F32({N, 512})}, "dense");
  const NodeId s = g.AddNode("some_op", {g.node(d).outputs[0]}, {},
                             {F32({N, 512}), F32({512})});
  g.AddOutput("y_pred", g.node(d).outputs[0]);
  g.AddUpdate("dense/bias", g.node(s).outputs[1]);
  return g;
}

constexpr char kMlpText[] =
    R"(graph "mlp" {
  %0 = input() {name = "x"} : f32[N,784]
  %1 = variable() {initializer = "glorot_uniform", name = "dense/kernel", seed = 1, trainable = true} : f32[784,512]
  %2 = variable() {initializer = "zeros", name = "dense/bias", trainable = true} : f32[512]
  %3 = dense(%0, %1, %2) {activation = "relu"} : f32[N,512] loc("dense")
  %4, %5 = some_op(%3) : f32[N,512], f32[512]
  output "y_pred" = %3
  update "dense/bias" = %5
}
)";

// Every attribute type, scalars, several dtypes, odd strings, zero-input and
// zero-output nodes, a removed node and ids out of topological order.
Graph RichGraph() {
  Graph g("rich \"graph\"\n\twith\\escapes\x01");
  const NodeId late =
      g.AddNode("placeholder_late", {}, {}, {F32({})});  // removed below
  const NodeId a = g.AddNode("input", {}, {{"name", std::string("a")}},
                             {{DType::kI64, Shape({N})}}, "");
  const NodeId c = g.AddNode(
      "constant", {},
      {{"value", std::vector<double>{0.5, 1.0, -2.25, 1e-07, 1e300,
                                     std::numeric_limits<double>::quiet_NaN(),
                                     std::numeric_limits<double>::infinity(),
                                     -std::numeric_limits<double>::infinity(),
                                     -0.0, 5e-324}}},
      {{DType::kF64, Shape({10})}});
  const NodeId k = g.AddNode(
      "kitchen_sink",
      {g.node(a).outputs[0], g.node(c).outputs[0], g.node(a).outputs[0]},
      {{"i", int64_t{-3}},
       {"i_max", std::numeric_limits<int64_t>::max()},
       {"i_min", std::numeric_limits<int64_t>::min()},
       {"f", 1.0},
       {"f_small", 1e-07},
       {"f_nan", std::numeric_limits<double>::quiet_NaN()},
       {"f_inf", std::numeric_limits<double>::infinity()},
       {"f_ninf", -std::numeric_limits<double>::infinity()},
       {"b_true", true},
       {"b_false", false},
       {"s",
        std::string("quote\" back\\ nl\n tab\t ctl\x7f\x02 utf8 \xc3\xa9")},
       {"s_empty", std::string("")},
       {"ints", std::vector<int64_t>{1, -2, 3}},
       {"ints_empty", std::vector<int64_t>{}},
       {"floats", std::vector<double>{0.5, 1.0}},
       {"weird key/with.dots", int64_t{7}},
       {"loc", std::string("a key that is a keyword")}},
      {{DType::kBool, Shape({N, 1})},
       {DType::kBF16, Shape({})},
       {DType::kF16, Shape({0})},
       {DType::kI32, Shape({2, 3, 4})}},
      "backward/dense_1 \"quoted\"");
  g.AddNode("sink_only", {g.node(k).outputs[3]}, {{"tag", int64_t{1}}}, {},
            "side");
  g.AddNode("output", {g.node(k).outputs[1]}, {},
            {});  // a zero-output op named like a keyword
  g.AddNode("loc", {g.node(k).outputs[1]}, {}, {F32({})});
  g.AddNode("weird op-name", {}, {}, {F32({1})});
  g.RemoveNode(late);
  // Defined before its producer's id would suggest: ids out of topological
  // order.
  const NodeId early_user =
      g.AddNode("relu", {g.node(k).outputs[0]}, {}, {F32({N, 1})});
  g.AddOutput("first", g.node(early_user).outputs[0]);
  g.AddOutput("", g.node(k).outputs[2]);
  g.AddUpdate("v\"1", g.node(c).outputs[0]);
  return g;
}

void ExpectEquivalent(const Graph& a, const Graph& b) {
  ASSERT_EQ(a.name(), b.name());
  auto oa = a.TopologicalOrder();
  auto ob = b.TopologicalOrder();
  ASSERT_TRUE(oa.ok() && ob.ok());
  ASSERT_EQ(oa->size(), ob->size());
  // Values correspond by position of definition in topological order.
  std::vector<std::pair<ValueId, ValueId>> map;
  auto mapped = [&](ValueId va) {
    for (auto [x, y] : map) {
      if (x == va) return y;
    }
    return kNoValue;
  };
  for (size_t i = 0; i < oa->size(); ++i) {
    const Node& na = a.node((*oa)[i]);
    const Node& nb = b.node((*ob)[i]);
    EXPECT_EQ(na.op, nb.op);
    EXPECT_EQ(na.layer, nb.layer);
    ASSERT_EQ(na.attrs.size(), nb.attrs.size());
    for (auto ia = na.attrs.begin(), ib = nb.attrs.begin();
         ia != na.attrs.end(); ++ia, ++ib) {
      EXPECT_EQ(ia->first, ib->first);
      EXPECT_EQ(ia->second.index(), ib->second.index()) << ia->first;
      EXPECT_EQ(AttrValueToString(ia->second), AttrValueToString(ib->second));
    }
    ASSERT_EQ(na.inputs.size(), nb.inputs.size());
    for (size_t j = 0; j < na.inputs.size(); ++j)
      EXPECT_EQ(mapped(na.inputs[j]), nb.inputs[j]);
    ASSERT_EQ(na.outputs.size(), nb.outputs.size());
    for (size_t j = 0; j < na.outputs.size(); ++j) {
      EXPECT_EQ(a.type(na.outputs[j]), b.type(nb.outputs[j]));
      map.emplace_back(na.outputs[j], nb.outputs[j]);
    }
  }
  ASSERT_EQ(a.outputs().size(), b.outputs().size());
  for (size_t i = 0; i < a.outputs().size(); ++i) {
    EXPECT_EQ(a.outputs()[i].name, b.outputs()[i].name);
    EXPECT_EQ(mapped(a.outputs()[i].value), b.outputs()[i].value);
  }
  ASSERT_EQ(a.updates().size(), b.updates().size());
  for (size_t i = 0; i < a.updates().size(); ++i) {
    EXPECT_EQ(a.updates()[i].variable, b.updates()[i].variable);
    EXPECT_EQ(mapped(a.updates()[i].value), b.updates()[i].value);
  }
}

TEST(TextIrTest, PrintsTheDocumentedFormatExactly) {
  EXPECT_EQ(PrintGraph(MlpGraph()), kMlpText);
}

TEST(TextIrTest, ParsesTheDocumentedFormat) {
  auto g = ParseGraph(kMlpText);
  ASSERT_TRUE(g.ok()) << g.status();
  ExpectEquivalent(MlpGraph(), *g);
  EXPECT_EQ(PrintGraph(*g), kMlpText);
}

TEST(TextIrTest, RoundTripsEveryAttributeTypeAndOddNames) {
  const Graph g = RichGraph();
  const std::string text = PrintGraph(g);
  auto parsed = ParseGraph(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << text;
  ExpectEquivalent(g, *parsed);
  EXPECT_EQ(PrintGraph(*parsed), text);
  // Spot checks of the text itself.
  EXPECT_NE(text.find("ints_empty = []"), std::string::npos) << text;
  EXPECT_NE(text.find("i_min = -9223372036854775808"), std::string::npos)
      << text;
  EXPECT_NE(
      text.find("[0.5, 1.0, -2.25, 1e-07, 1e+300, nan, inf, -inf, -0.0, "),
      std::string::npos)
      << text;
  EXPECT_NE(text.find(": bool[N,1], bf16[], f16[0], i32[2,3,4] loc("),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("\"weird key/with.dots\" = 7"), std::string::npos)
      << text;
  EXPECT_NE(text.find("\"loc\"(%"), std::string::npos) << text;
  EXPECT_NE(text.find("  \"output\"(%"), std::string::npos) << text;
  EXPECT_NE(text.find("  sink_only(%"), std::string::npos) << text;
  EXPECT_EQ(text.find("placeholder_late"), std::string::npos) << text;
  // The empty list reads back as an int list and float specials keep their
  // kind.
  const Node& sink = parsed->node((*parsed->TopologicalOrder())[2]);
  ASSERT_EQ(sink.op, "kitchen_sink");
  EXPECT_TRUE(std::holds_alternative<std::vector<int64_t>>(
      sink.attrs.at("ints_empty")));
  EXPECT_TRUE(std::isnan(std::get<double>(sink.attrs.at("f_nan"))));
  EXPECT_EQ(std::get<double>(sink.attrs.at("f_ninf")), -HUGE_VAL);
  EXPECT_EQ(std::get<std::string>(sink.attrs.at("s")),
            "quote\" back\\ nl\n tab\t ctl\x7f\x02 utf8 \xc3\xa9");
}

TEST(TextIrTest, RenumbersValuesInDefinitionOrder) {
  Graph g("g");
  const NodeId dead =
      g.AddNode("input", {}, {{"name", std::string("dead")}}, {F32({1})});
  const NodeId x =
      g.AddNode("input", {}, {{"name", std::string("x")}}, {F32({})});
  g.RemoveNode(dead);
  g.AddOutput("x", g.node(x).outputs[0]);
  EXPECT_EQ(PrintGraph(g),
            "graph \"g\" {\n  %0 = input() {name = \"x\"} : f32[]\n  output "
            "\"x\" = %0\n}\n");
}

TEST(TextIrTest, AcceptsCommentsAnyValueNamesAndLooseSpacing) {
  auto g = ParseGraph(R"(// leading comment
graph "g"{ // the graph
  %x=input(){name="x"}:f32[N, 3]   // trailing
  %y_2 , %z = split ( %x ) { axis = -1 , ratios = [1, 2.5] } : f32[N,1],f32[N,2]
  output "y" = %y_2 update "z" = %z
}  // done
)");
  ASSERT_TRUE(g.ok()) << g.status();
  // A list mixing ints and floats is a float list.
  const Node& split = g->node(1);
  EXPECT_EQ(AttrValueToString(split.attrs.at("ratios")), "[1.0, 2.5]");
  EXPECT_EQ(PrintGraph(*g), R"(graph "g" {
  %0 = input() {name = "x"} : f32[N,3]
  %1, %2 = split(%0) {axis = -1, ratios = [1.0, 2.5]} : f32[N,1], f32[N,2]
  output "y" = %1
  update "z" = %2
}
)");
}

struct BadCase {
  const char* text;
  const char*
      message;  // expected prefix "line:col: ..." or a substring after it
};

TEST(TextIrTest, MalformedInputsReportLineColumnAndWhat) {
  const BadCase cases[] = {
      {"",
       "1:1: expected 'graph' at the start of the text, found end of input"},
      {"grph \"g\" {}",
       "1:1: expected 'graph' at the start of the text, found 'grph'"},
      {"graph g {}",
       "1:7: expected the graph name as a quoted string, found 'g'"},
      {"graph \"g\" }", "1:11: expected '{' after the graph name, found '}'"},
      {"graph \"g\" {", "1:12: expected a node"},
      {"graph \"g\" {\n}\nx",
       "3:1: expected end of input after the graph's '}', found 'x'"},
      {"graph \"g\" {\n  %0 = input() {name = \"x\"} {\n}",
       "2:29: expected ':' before the result type, found '{'"},
      {"graph \"g\" {\n  %0 = input() : f32[N]\n  %1 = relu(%2) : f32[N]\n}",
       "3:13: use of undefined value '%2'"},
      {"graph \"g\" {\n  %0 = input() : f32[N]\n  %0 = relu(%0) : f32[N]\n}",
       "3:3: value '%0' is defined twice (first at 2:3)"},
      {"graph \"g\" {\n  %0, %0 = f() : f32[], f32[]\n}",
       "2:7: value '%0' is defined twice (first at 2:3)"},
      {"graph \"g\" {\n  output \"y\" = %4\n}",
       "2:16: output 'y' refers to undefined value '%4'"},
      {"graph \"g\" {\n  update \"v\" = %4\n}",
       "2:16: update of 'v' refers to undefined value"},
      {"graph \"g\" {\n  %0 = f() {a = 99999999999999999999} : f32[]\n}",
       "2:17: integer 99999999999999999999 is out of range"},
      {"graph \"g\" {\n  %0 = f() {a = 1e999} : f32[]\n}",
       "2:17: number 1e999 is out of range"},
      {"graph \"g\" {\n  %0 = f() {a = [1, 2, 1e400]} : f32[]\n}",
       "2:24: number 1e400 is out"},
      {"graph \"g\" {\n  %0 = f() : f32[99999999999999999999]\n}",
       "2:18: integer"},
      {"graph \"g\" {\n  %0 = f() : f32[-2]\n}",
       "2:18: dimension -2 is negative"},
      {"graph \"g\" {\n  %0 = f() {a = \"abc\n}", "2:17: unterminated string"},
      {"graph \"abc", "1:7: unterminated string"},
      {"graph \"a\\qb\" {}", "1:9: unknown escape '\\q'"},
      {"graph \"a\\x4\" {}", "1:9: expected two hex digits"},
      {"graph \"g\" {\n  %0 = f() {a = relu} : f32[]\n}",
       "2:17: expected an attribute value"},
      {"graph \"g\" {\n  %0 = f() {a = [[1]]} : f32[]\n}",
       "2:18: expected a number in the list, found '['"},
      {"graph \"g\" {\n  %0 = f() {a = [1 2]} : f32[]\n}",
       "2:20: expected ',' or ']' in the list, found number 2"},
      {"graph \"g\" {\n  %0 = f() {a = 1, a = 2} : f32[]\n}",
       "2:20: attribute 'a' is given twice"},
      {"graph \"g\" {\n  %0 = f() : f33[]\n}",
       "2:14: unknown element type 'f33'"},
      {"graph \"g\" {\n  %0 = f() : f32\n}",
       "3:1: expected '[' after the element type, found '}'"},
      {"graph \"g\" {\n  %0 = f() : f32[M]\n}", "2:18: expected a dimension"},
      {"graph \"g\" {\n  %0, %1 = f() : f32[]\n}",
       "3:1: expected ',' and another result type"},
      {"graph \"g\" {\n  %0 = f() : f32[], f32[]\n}",
       "2:21: op 'f' defines 1 value(s)"},
      {"graph \"g\" {\n  %0 = f(%) : f32[]\n}",
       "2:10: expected a value name after '%'"},
      {"graph \"g\" {\n  %0 = f() : f32[] loc(dense)\n}",
       "2:24: expected the layer name as a quoted string, found 'dense'"},
      {"graph \"g\" {\n  %0 = f() : f32[] loc(\"d\"\n}",
       "3:1: expected ')' after the layer name"},
      {"graph \"g\" {\n  %0 = f( : f32[]\n}",
       "2:11: expected an operand such as %0, found ':'"},
      {"graph \"g\" {\n  %0 = (%1) : f32[]\n}",
       "2:8: expected an op name, found '('"},
      {"graph \"g\" {\n  %0 f() : f32[]\n}",
       "2:6: expected ',' or '=' after the result names"},
      {"graph \"g\" {\n  %0 = f() : f32[] $\n}",
       "2:20: unexpected character '$'"},
      {"graph \"g\" {\n  %0 = f() : f32[] /\n}",
       "2:20: unexpected character '/'"},
      {"graph \"g\" {\n  %0 = f() {a = -} : f32[]\n}",
       "2:17: unexpected character '-'"},
      {"graph \"g\" {\n  %0 = f() {a = \"x\x01\"} : f32[]\n}",
       "2:19: control character 0x01"},
      {"graph \"g\" {\n  \xff\n}", "2:3: unexpected character byte 0xff"},
      {"graph \"g\" {\n  output \"y\" %0\n}",
       "2:14: expected '=' after the output name"},
  };
  for (const BadCase& c : cases) {
    auto g = ParseGraph(c.text);
    ASSERT_FALSE(g.ok()) << c.text;
    EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_EQ(std::string(g.status().message()).rfind(c.message, 0), 0u)
        << "input:\n"
        << c.text << "\nmessage: " << g.status().message()
        << "\nwanted prefix: " << c.message;
  }
}

// Errors always start with "line:col: " and point inside the text (or just past
// its end).
void ExpectWellFormedError(const absl::Status& status, absl::string_view text) {
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  const std::string msg(status.message());
  int line = 0, col = 0;
  ASSERT_EQ(std::sscanf(msg.c_str(), "%d:%d: ", &line, &col), 2) << msg;
  int lines = 1;
  for (char c : text) lines += c == '\n';
  EXPECT_GE(line, 1) << msg;
  EXPECT_LE(line, lines) << msg;
  EXPECT_GE(col, 1) << msg;
}

TEST(TextIrTest, EveryPrefixParsesOrFailsCleanly) {
  const std::string text = PrintGraph(RichGraph()) + PrintGraph(MlpGraph());
  int ok = 0;
  for (size_t n = 0; n <= text.size(); ++n) {
    const std::string prefix = text.substr(0, n);
    auto g = ParseGraph(prefix);
    if (g.ok()) {
      ++ok;
      EXPECT_EQ(PrintGraph(*g), PrintGraph(RichGraph()));
    } else {
      ExpectWellFormedError(g.status(), prefix);
    }
  }
  // Only the full first graph, with or without its final newline, parses.
  EXPECT_EQ(ok, 2);
}

TEST(TextIrTest, RandomBytesAndMutationsNeverCrash) {
  std::mt19937 rng(20261128);
  const std::string valid = PrintGraph(RichGraph());
  const std::string alphabet =
      "graph \"{}()[],=:%0123456789.eE-+Nfi_\\xntloc/\n\t";
  for (int i = 0; i < 2000; ++i) {
    const int len = std::uniform_int_distribution<int>(0, 80)(rng);
    std::string s;
    for (int j = 0; j < len; ++j) {
      // Half the strings are raw bytes, half come from the grammar's own
      // characters.
      s += (i % 2 == 0) ? static_cast<char>(rng() & 0xff)
                        : alphabet[rng() % alphabet.size()];
    }
    if (i % 4 == 1) s = "graph \"g\" {\n" + s;
    auto g = ParseGraph(s);
    if (!g.ok()) ExpectWellFormedError(g.status(), s);
  }
  int parsed = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string s = valid;
    const size_t at = rng() % s.size();
    switch (rng() % 3) {
      case 0:
        s[at] = static_cast<char>(rng() & 0xff);
        break;
      case 1:
        s.erase(at, 1);
        break;
      default:
        s.insert(at, 1, alphabet[rng() % alphabet.size()]);
    }
    auto g = ParseGraph(s);
    if (g.ok()) {
      ++parsed;
      // Whatever parses prints as a fixed point.
      EXPECT_EQ(PrintGraph(*ParseGraph(PrintGraph(*g))), PrintGraph(*g));
    } else {
      ExpectWellFormedError(g.status(), s);
    }
  }
  EXPECT_LT(parsed, 2000);
}

TEST(TextIrTest, DeepNestingAndHugeNumbersFailCleanly) {
  const std::string deep =
      "graph \"g\" {\n  %0 = f() {a = " + std::string(100000, '[') + "}";
  auto g = ParseGraph(deep);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(std::string(g.status().message())
                .rfind("2:18: expected a number in the list", 0),
            0u)
      << g.status();
  const std::string huge =
      "graph \"g\" {\n  %0 = f() {a = " + std::string(5000, '9') +
      "} : f32[]\n}";
  g = ParseGraph(huge);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("out of range"), absl::string_view::npos);
  const std::string huge_float = "graph \"g\" {\n  %0 = f() {a = 0." +
                                 std::string(5000, '9') +
                                 "e-99999999999999999999} : f32[]\n}";
  g = ParseGraph(huge_float);
  EXPECT_TRUE(g.ok()) << g.status();  // underflows to 0, which is representable
}

}  // namespace
}  // namespace sequent
