#include "core/graph_builder.h"

#include "absl/strings/str_cat.h"

namespace sequent {

void GraphBuilder::Fail(absl::Status status) {
  if (!status_.ok() || status.ok()) return;
  if (layer_.empty()) {
    status_ = std::move(status);
  } else {
    status_ = absl::Status(status.code(),
                           absl::StrCat("layer '", layer_, "': ", status.message()));
  }
}

std::vector<ValueId> GraphBuilder::OpMulti(absl::string_view op, std::vector<ValueId> inputs,
                                           Attributes attrs) {
  if (!status_.ok()) return {};
  std::vector<TensorType> input_types;
  for (ValueId in : inputs) {
    if (in < 0 || in >= graph_->num_values()) {
      Fail(absl::InvalidArgumentError(
          absl::StrCat("[", op, "] input ", input_types.size(), " is not a value")));
      return {};
    }
    input_types.push_back(graph_->type(in));
  }
  auto types = registry_->InferTypes(op, input_types, attrs);
  if (!types.ok()) {
    Fail(types.status());
    return {};
  }
  const NodeId id =
      graph_->AddNode(std::string(op), std::move(inputs), std::move(attrs), *types, layer_);
  return graph_->node(id).outputs;
}

ValueId GraphBuilder::Op(absl::string_view op, std::vector<ValueId> inputs, Attributes attrs) {
  std::vector<ValueId> outputs = OpMulti(op, std::move(inputs), std::move(attrs));
  return outputs.empty() ? kNoValue : outputs[0];
}

ValueId GraphBuilder::Input(std::string name, TensorType type) {
  if (!status_.ok()) return kNoValue;
  const NodeId id = graph_->AddNode(std::string(kInputOp), {}, {{"name", std::move(name)}},
                                    {std::move(type)}, layer_);
  return graph_->node(id).outputs[0];
}

ValueId GraphBuilder::Variable(std::string name, TensorType type, Attributes init,
                               bool trainable) {
  if (!status_.ok()) return kNoValue;
  if (!type.shape.IsStatic()) {
    Fail(absl::InvalidArgumentError(absl::StrCat("variable '", name, "' has shape ",
                                                 type.shape.ToString(),
                                                 "; variables cannot depend on the batch")));
    return kNoValue;
  }
  init["name"] = std::move(name);
  init["trainable"] = trainable;
  if (!init.contains("initializer")) init["initializer"] = std::string("zeros");
  const NodeId id =
      graph_->AddNode(std::string(kVariableOp), {}, std::move(init), {std::move(type)}, layer_);
  return graph_->node(id).outputs[0];
}

ValueId GraphBuilder::Constant(TensorType type, std::vector<double> values) {
  if (!status_.ok()) return kNoValue;
  const NodeId id = graph_->AddNode(std::string(kConstantOp), {},
                                    {{"value", std::move(values)}}, {std::move(type)}, layer_);
  return graph_->node(id).outputs[0];
}

ValueId GraphBuilder::ScalarConstant(double value, DType dtype) {
  return Constant(TensorType{dtype, Shape{}}, {value});
}

}  // namespace sequent
