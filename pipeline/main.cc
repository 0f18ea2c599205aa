// The shortfall binary: hands the command line to Application.
#include <iostream>
#include <string>
#include <vector>

#include "pipeline/application.h"

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  shortfall::pipeline::Application app(std::cout, std::cerr);
  return app.Run(std::vector<std::string>(argv + 1, argv + argc));
}
