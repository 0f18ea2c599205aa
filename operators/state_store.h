// StateStore: the one door through which operators keep state.
//
// A store holds byte keys and values in named namespaces (a namespace is a
// column family in RocksDB, a map in memory) plus one opaque checkpoint blob.
// Writes are collected in a StateWriteBatch and applied by Commit() together
// with a new checkpoint blob, atomically: after a crash a store shows either
// the whole commit or none of it. The runtime keeps input offsets in the
// checkpoint blob, so state and offsets never disagree.
//
//   StateWriteBatch batch;
//   batch.Put("volumes", key, value);
//   SHORTFALL_RETURN_IF_ERROR(store.Commit(batch, offsets_blob));
//
// Implementations: InMemoryStateStore (operators/, for tests and replay) and
// RocksDbStateStore (pipeline/). tests/operators/state_store_contract_test.h
// holds the contract both pass.
//
// Thread-safety: implementations are safe for concurrent readers with one
// writer; operators use one store per task from one thread.
// Ownership: the caller owns the store; views from Snapshot() must not
// outlive it.
// Failure: I/O errors come back as Status (kUnavailable, kDataLoss); a failed
// Commit leaves the last committed state and checkpoint in place.
#ifndef SHORTFALL_OPERATORS_STATE_STORE_H_
#define SHORTFALL_OPERATORS_STATE_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace shortfall::operators {

// Namespace names: 1 to 64 of [a-z0-9_], starting with a letter; "default"
// is reserved (RocksDB keeps store metadata there). Other names are rejected.
bool IsValidNamespace(std::string_view ns);

// One change: a put, or a delete when `value` is empty (nullopt).
struct StateMutation {
  std::string ns;
  std::string key;
  std::optional<std::string> value;
};

// Changes waiting to be committed, applied in the order added.
class StateWriteBatch {
 public:
  void Put(std::string_view ns, std::string_view key, std::string_view value);
  void Delete(std::string_view ns, std::string_view key);
  void Clear() { mutations_.clear(); }

  const std::vector<StateMutation>& mutations() const { return mutations_; }
  bool empty() const { return mutations_.empty(); }
  size_t size() const { return mutations_.size(); }

 private:
  std::vector<StateMutation> mutations_;
};

// Called for each key of a scan; return false to stop early.
using ScanVisitor = std::function<bool(std::string_view key, std::string_view value)>;

// Read access to committed state.
class StateView {
 public:
  virtual ~StateView() = default;

  // The committed value of `key`, or nullopt when there is none.
  virtual Result<std::optional<std::string>> Get(std::string_view ns,
                                                 std::string_view key) const = 0;

  // Visits the keys of `ns` that start with `prefix` (all keys when empty),
  // in ascending bytewise order. An unknown namespace visits nothing.
  virtual Status Scan(std::string_view ns, std::string_view prefix,
                      const ScanVisitor& visit) const = 0;
};

struct StateStoreStats {
  uint64_t keys = 0;   // committed keys over all namespaces (RocksDB: estimate)
  uint64_t bytes = 0;  // bytes of keys and values (RocksDB: live data estimate)
};

class StateStore : public StateView {
 public:
  // Applies every mutation of `batch` and sets the checkpoint blob to
  // `checkpoint`, all or nothing. An empty batch still sets the checkpoint.
  // Fails with kInvalidArgument on a bad namespace (and applies nothing).
  virtual Status Commit(const StateWriteBatch& batch, std::string_view checkpoint) = 0;

  // The checkpoint blob of the last successful Commit; empty before any.
  virtual Result<std::string> LastCheckpoint() const = 0;

  // A consistent read-only view of the committed state as of this call; later
  // commits do not show in it.
  virtual Result<std::unique_ptr<StateView>> Snapshot() const = 0;

  virtual StateStoreStats Stats() const = 0;
};

}  // namespace shortfall::operators

#endif  // SHORTFALL_OPERATORS_STATE_STORE_H_
