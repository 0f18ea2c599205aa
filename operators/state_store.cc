#include "operators/state_store.h"

namespace shortfall::operators {

bool IsValidNamespace(std::string_view ns) {
  if (ns.empty() || ns.size() > 64 || ns == "default") return false;
  if (!(ns[0] >= 'a' && ns[0] <= 'z')) return false;
  for (char c : ns) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

void StateWriteBatch::Put(std::string_view ns, std::string_view key, std::string_view value) {
  mutations_.push_back({std::string(ns), std::string(key), std::string(value)});
}

void StateWriteBatch::Delete(std::string_view ns, std::string_view key) {
  mutations_.push_back({std::string(ns), std::string(key), std::nullopt});
}

}  // namespace shortfall::operators
