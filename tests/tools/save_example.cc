// Writes an example's compiled model with Sequential::save, for the
// sequent-graph --model tests.
//   save_example <example> <path>
#include <cstdio>

#include "examples/models.h"
#include "frontend/sequent.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: save_example <example> <path>\n");
    return 2;
  }
  try {
    sequent::examples::CompiledExample(argv[1]).save(argv[2]);
  } catch (const sequent::Error& e) {
    std::fprintf(stderr, "save_example: %s\n", e.what());
    return 1;
  }
  return 0;
}
