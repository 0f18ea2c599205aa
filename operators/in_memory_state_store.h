// InMemoryStateStore: a StateStore kept in ordered maps, for tests and for
// `shortfall replay` without --state-dir. Nothing survives the process.
//
// Thread-safety: concurrent readers and one writer (a shared mutex).
// Snapshot() copies the committed maps, O(state size).
#ifndef SHORTFALL_OPERATORS_IN_MEMORY_STATE_STORE_H_
#define SHORTFALL_OPERATORS_IN_MEMORY_STATE_STORE_H_

#include <map>
#include <memory>
#include <shared_mutex>
#include <string>

#include "operators/state_store.h"

namespace shortfall::operators {

class InMemoryStateStore final : public StateStore {
 public:
  InMemoryStateStore();
  ~InMemoryStateStore() override;

  Result<std::optional<std::string>> Get(std::string_view ns,
                                         std::string_view key) const override;
  Status Scan(std::string_view ns, std::string_view prefix,
              const ScanVisitor& visit) const override;
  Status Commit(const StateWriteBatch& batch, std::string_view checkpoint) override;
  Result<std::string> LastCheckpoint() const override;
  Result<std::unique_ptr<StateView>> Snapshot() const override;
  StateStoreStats Stats() const override;

  // Namespace -> (key -> value), ordered bytewise like RocksDB's default comparator.
  using Tables = std::map<std::string, std::map<std::string, std::string, std::less<>>, std::less<>>;

 private:
  mutable std::shared_mutex mu_;
  Tables tables_;
  std::string checkpoint_;
};

}  // namespace shortfall::operators

#endif  // SHORTFALL_OPERATORS_IN_MEMORY_STATE_STORE_H_
