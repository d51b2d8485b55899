// A user's binary, built in its own workspace against @sequent//:sequent.
#include <cstdio>

#include "core/tensor.h"

int main() {
  sequent::Tensor t = sequent::Tensor::FromVector<float>({1, 2, 3, 4}, sequent::Shape{2, 2});
  std::printf("downstream sees sequent: %s\n", t.ToString().c_str());
  return 0;
}
