// MetricsServer: the HTTP endpoint Prometheus and orchestrators talk to.
//
//   GET /metrics  200, the registry in Prometheus text format 0.0.4
//   GET /healthz  200 "ok\n" while the process runs (liveness)
//   GET /readyz   200 "ready\n", or 503 and the reason the readiness check
//                 gives (for `shortfall run`: Runtime::Readiness, ready while
//                 it processes with partitions assigned)
//
// Anything else: 404 for another path, 405 (with `Allow: GET`) for another
// method on a known path, 400 for a request that is not HTTP/1.x.
//
//   SHORTFALL_ASSIGN_OR_RETURN(
//       auto server, MetricsServer::Start("127.0.0.1", 9464, registry,
//                                         [&] { return runtime->Readiness(); }));
//   log << "metrics on " << server->url() << "/metrics\n";
//
// It is a deliberately small HTTP/1.1 server on POSIX sockets: one thread
// runs a poll() loop over the listening socket and every open connection, so
// a slow or silent client never delays another one. Each connection carries
// one request and gets one response with `Connection: close`. A client that
// sends more than Limits::max_request_bytes before the end of its headers,
// or that has not finished its exchange within Limits::client_timeout, is
// disconnected without a response. Request bodies are never read. When
// Limits::max_connections are open, a new connection pushes out the oldest.
//
// Thread-safety: url(), port() and Stop() may be called from any thread.
// The readiness check and the registry's Collect() run on the server's
// thread, concurrently with the rest of the program: the check must be
// thread-safe (read atomics or take a lock) and quick — it delays every
// other request while it runs.
// Ownership: the server shares ownership of the registry; it owns its
// sockets and its thread. Destroying it stops it.
// Failure: Start() fails with kInvalidArgument naming "metrics.bind" when the
// address does not resolve, and kUnavailable naming "metrics.bind" when it
// cannot be bound (port in use, address not on this host, no permission).
// Once started, nothing a client sends makes it crash, throw or block the
// process: errors close that one connection. An exception from the
// readiness check reads as not ready; one from collecting or serializing
// the registry gives a 500. SIGPIPE is never raised (writes use
// MSG_NOSIGNAL).
#ifndef SHORTFALL_PIPELINE_METRICS_SERVER_H_
#define SHORTFALL_PIPELINE_METRICS_SERVER_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "base/status.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace shortfall::pipeline {

class MetricsServer {
 public:
  // {ready, reason}: the reason is shown with a 503 when not ready (and
  // ignored when ready). Must be thread-safe; see the header comment.
  using ReadinessCheck = std::function<std::pair<bool, std::string>()>;

  // What one client may cost. The defaults suit a scrape endpoint on an
  // internal network; tests lower them.
  struct Limits {
    // Request line plus headers; more is dropped. Real scrapers send < 1 KiB.
    // 1 byte to 1 MiB.
    size_t max_request_bytes = 8 * 1024;
    // From accept to the last byte of the response. A scrape of a few
    // hundred KiB takes milliseconds; slower clients hold a slot for this long.
    std::chrono::milliseconds client_timeout{5000};
    // Open connections at once; past it the oldest is closed. Bounds memory
    // and file descriptors spent on clients.
    size_t max_connections = 64;
  };

  // Binds `bind_address` (an IPv4/IPv6 address or a host name such as
  // "localhost"; "0.0.0.0" listens everywhere) on `port` (0: the OS picks
  // one, see port()), and starts serving `registry`. `ready` may be empty:
  // then /readyz always answers ready.
  // REQUIRES: registry != nullptr and `limits` in range (kInvalidArgument
  // otherwise).
  static Result<std::unique_ptr<MetricsServer>> Start(std::string bind_address, uint16_t port,
                                                      std::shared_ptr<prometheus::Registry> registry,
                                                      ReadinessCheck ready);
  static Result<std::unique_ptr<MetricsServer>> Start(std::string bind_address, uint16_t port,
                                                      std::shared_ptr<prometheus::Registry> registry,
                                                      ReadinessCheck ready, Limits limits);

  // Stops: see Stop().
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Closes the listening socket and every open connection and joins the
  // thread. Returns within the time one request in progress takes to answer
  // (it never waits for a client). Idempotent; safe from any thread except
  // the server's own (i.e. not from inside the readiness check).
  void Stop();

  // The port actually bound (the ephemeral one when started with port 0).
  uint16_t port() const { return port_; }
  // "http://HOST:PORT" reaching this server from the same machine: the bound
  // address, with a wildcard address (0.0.0.0, ::) replaced by loopback and
  // IPv6 in brackets. E.g. "http://127.0.0.1:9464".
  std::string url() const;

 private:
  class Loop;

  MetricsServer(std::unique_ptr<Loop> loop, uint16_t port, std::string url_host);

  std::unique_ptr<Loop> loop_;
  uint16_t port_;
  std::string url_host_;
  std::mutex stop_mu_;  // serializes Stop(): the thread is joined once
  std::thread thread_;
};

}  // namespace shortfall::pipeline

#endif  // SHORTFALL_PIPELINE_METRICS_SERVER_H_
