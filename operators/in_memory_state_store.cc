#include "operators/in_memory_state_store.h"

#include <mutex>

namespace shortfall::operators {
namespace {

Result<std::optional<std::string>> GetFrom(const InMemoryStateStore::Tables& tables,
                                           std::string_view ns, std::string_view key) {
  auto table = tables.find(ns);
  if (table == tables.end()) return std::optional<std::string>();
  auto it = table->second.find(key);
  if (it == table->second.end()) return std::optional<std::string>();
  return std::optional<std::string>(it->second);
}

Status ScanFrom(const InMemoryStateStore::Tables& tables, std::string_view ns,
                std::string_view prefix, const ScanVisitor& visit) {
  auto table = tables.find(ns);
  if (table == tables.end()) return OkStatus();
  for (auto it = table->second.lower_bound(prefix); it != table->second.end(); ++it) {
    if (std::string_view(it->first).substr(0, prefix.size()) != prefix) break;
    if (!visit(it->first, it->second)) break;
  }
  return OkStatus();
}

// A frozen copy of the tables.
class InMemorySnapshot final : public StateView {
 public:
  explicit InMemorySnapshot(InMemoryStateStore::Tables tables) : tables_(std::move(tables)) {}
  Result<std::optional<std::string>> Get(std::string_view ns,
                                         std::string_view key) const override {
    return GetFrom(tables_, ns, key);
  }
  Status Scan(std::string_view ns, std::string_view prefix,
              const ScanVisitor& visit) const override {
    return ScanFrom(tables_, ns, prefix, visit);
  }

 private:
  const InMemoryStateStore::Tables tables_;
};

}  // namespace

InMemoryStateStore::InMemoryStateStore() = default;
InMemoryStateStore::~InMemoryStateStore() = default;

Result<std::optional<std::string>> InMemoryStateStore::Get(std::string_view ns,
                                                           std::string_view key) const {
  std::shared_lock lock(mu_);
  return GetFrom(tables_, ns, key);
}

Status InMemoryStateStore::Scan(std::string_view ns, std::string_view prefix,
                                const ScanVisitor& visit) const {
  // Copy the matching range first so `visit` may call back into the store.
  std::vector<std::pair<std::string, std::string>> rows;
  {
    std::shared_lock lock(mu_);
    SHORTFALL_RETURN_IF_ERROR(ScanFrom(tables_, ns, prefix, [&](std::string_view k, std::string_view v) {
      rows.emplace_back(k, v);
      return true;
    }));
  }
  for (const auto& [k, v] : rows) {
    if (!visit(k, v)) break;
  }
  return OkStatus();
}

Status InMemoryStateStore::Commit(const StateWriteBatch& batch, std::string_view checkpoint) {
  for (const StateMutation& m : batch.mutations()) {
    if (!IsValidNamespace(m.ns)) {
      return InvalidArgumentError("state namespace '" + m.ns + "' is not 1-64 of [a-z0-9_] starting with a letter, or is reserved");
    }
  }
  std::unique_lock lock(mu_);
  for (const StateMutation& m : batch.mutations()) {
    auto& table = tables_[m.ns];
    if (m.value) {
      table.insert_or_assign(m.key, *m.value);
    } else {
      auto it = table.find(m.key);
      if (it != table.end()) table.erase(it);
    }
  }
  checkpoint_.assign(checkpoint);
  return OkStatus();
}

Result<std::string> InMemoryStateStore::LastCheckpoint() const {
  std::shared_lock lock(mu_);
  return checkpoint_;
}

Result<std::unique_ptr<StateView>> InMemoryStateStore::Snapshot() const {
  std::shared_lock lock(mu_);
  return std::unique_ptr<StateView>(std::make_unique<InMemorySnapshot>(tables_));
}

StateStoreStats InMemoryStateStore::Stats() const {
  std::shared_lock lock(mu_);
  StateStoreStats stats;
  for (const auto& [ns, table] : tables_) {
    stats.keys += table.size();
    for (const auto& [k, v] : table) stats.bytes += k.size() + v.size();
  }
  return stats;
}

}  // namespace shortfall::operators
