// MetricsServer over real sockets on loopback, port 0. Each request is made
// with a plain blocking client (5 s receive timeout), so a server that
// blocked would show as a slow test, not a hung one.
#include "pipeline/metrics_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>

namespace shortfall::pipeline {
namespace {

using SteadyClock = std::chrono::steady_clock;

double SecondsSince(SteadyClock::time_point start) {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

// A connected client socket, closed on destruction.
class Client {
 public:
  explicit Client(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
      ADD_FAILURE() << "socket: " << std::strerror(errno);
      return;
    }
    timeval timeout{.tv_sec = 5, .tv_usec = 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      ADD_FAILURE() << "connect to port " << port << ": " << std::strerror(errno);
    }
  }
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void Send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        ADD_FAILURE() << "send: " << std::strerror(errno);
        return;
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
  }
  void CloseWrite() { ::shutdown(fd_, SHUT_WR); }
  // Each Send() leaves as its own segment.
  void NoDelay() {
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }

  // Everything until the server closes (or the 5 s timeout, which fails).
  std::string ReadAll() {
    std::string out;
    char buffer[4096];
    while (true) {
      const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n == 0) return out;
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == ECONNRESET) return out;
        ADD_FAILURE() << "recv: " << std::strerror(errno) << " after " << out.size() << " bytes";
        return out;
      }
      out.append(buffer, static_cast<size_t>(n));
    }
  }

 private:
  int fd_ = -1;
};

struct HttpResponse {
  int status = 0;
  std::string headers;  // the status line and headers, CRLF-separated
  std::string body;
};

HttpResponse Parse(const std::string& raw) {
  HttpResponse r;
  const size_t end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || end == std::string::npos || raw.size() < 12) {
    ADD_FAILURE() << "not an HTTP/1.1 response: " << raw;
    return r;
  }
  r.status = std::stoi(raw.substr(9, 3));
  r.headers = raw.substr(0, end + 2);
  r.body = raw.substr(end + 4);
  return r;
}

HttpResponse Exchange(uint16_t port, std::string_view request) {
  Client client(port);
  client.Send(request);
  return Parse(client.ReadAll());
}

HttpResponse Get(uint16_t port, std::string_view path) {
  return Exchange(port, "GET " + std::string(path) + " HTTP/1.1\r\nHost: localhost\r\n"
                        "User-Agent: Prometheus/2.42.0\r\nAccept: text/plain\r\n\r\n");
}

bool HasHeader(const HttpResponse& r, std::string_view line) {
  return r.headers.find("\r\n" + std::string(line) + "\r\n") != std::string::npos;
}

std::unique_ptr<MetricsServer> StartOnEphemeralPort(std::shared_ptr<prometheus::Registry> registry,
                                                    MetricsServer::ReadinessCheck ready = {},
                                                    MetricsServer::Limits limits = {}) {
  Result<std::unique_ptr<MetricsServer>> server =
      MetricsServer::Start("127.0.0.1", 0, std::move(registry), std::move(ready), limits);
  if (!server.ok()) {
    ADD_FAILURE() << server.status().ToString();
    return nullptr;
  }
  return std::move(server).value();
}

TEST(MetricsServer, ServesTheRegistryAsPrometheusTextOnMetrics) {
  // Given a registry holding a counter
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildCounter()
      .Name("shortfall_test_events_total")
      .Help("Events, in events.")
      .Register(*registry)
      .Add({{"topic", "shipments.events.v1"}})
      .Increment(3);
  auto server = StartOnEphemeralPort(registry);
  ASSERT_NE(server, nullptr);

  // When Prometheus scrapes
  const HttpResponse r = Get(server->port(), "/metrics");

  // Then it gets the counter in text format 0.0.4
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(HasHeader(r, "Content-Type: text/plain; version=0.0.4; charset=utf-8")) << r.headers;
  EXPECT_TRUE(HasHeader(r, "Connection: close")) << r.headers;
  EXPECT_TRUE(HasHeader(r, "Content-Length: " + std::to_string(r.body.size()))) << r.headers;
  EXPECT_NE(r.body.find("# TYPE shortfall_test_events_total counter\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("shortfall_test_events_total{topic=\"shipments.events.v1\"} 3\n"),
            std::string::npos)
      << r.body;
}

TEST(MetricsServer, ServesAScrapeLargerThanTheSocketBuffersInFull) {
  auto registry = std::make_shared<prometheus::Registry>();
  auto& family = prometheus::BuildCounter().Name("shortfall_test_total").Help("Test.").Register(*registry);
  for (int i = 0; i < 20000; ++i) family.Add({{"series", std::to_string(i)}}).Increment();
  auto server = StartOnEphemeralPort(registry);
  ASSERT_NE(server, nullptr);

  const HttpResponse r = Get(server->port(), "/metrics");

  EXPECT_EQ(r.status, 200);
  EXPECT_GT(r.body.size(), 500'000u);
  EXPECT_TRUE(HasHeader(r, "Content-Length: " + std::to_string(r.body.size())));
  EXPECT_NE(r.body.find("shortfall_test_total{series=\"19999\"} 1\n"), std::string::npos);
}

TEST(MetricsServer, IgnoresTheQueryStringWhenRouting) {
  auto server = StartOnEphemeralPort(std::make_shared<prometheus::Registry>());
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(Get(server->port(), "/metrics?name[]=up").status, 200);
}

TEST(MetricsServer, HealthzAnswersOkWhileRunning) {
  auto server = StartOnEphemeralPort(std::make_shared<prometheus::Registry>());
  ASSERT_NE(server, nullptr);

  const HttpResponse r = Get(server->port(), "/healthz");

  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok\n");
  EXPECT_TRUE(HasHeader(r, "Content-Type: text/plain; charset=utf-8")) << r.headers;
}

TEST(MetricsServer, ReadyzFollowsTheReadinessCheckAndGivesItsReason) {
  // Given a readiness check the test can flip (from this thread, read on the server's)
  std::mutex mu;
  std::pair<bool, std::string> state{true, ""};
  auto server = StartOnEphemeralPort(std::make_shared<prometheus::Registry>(), [&] {
    std::lock_guard<std::mutex> lock(mu);
    return state;
  });
  ASSERT_NE(server, nullptr);

  const HttpResponse ready = Get(server->port(), "/readyz");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.body, "ready\n");

  // When the check turns to not ready
  {
    std::lock_guard<std::mutex> lock(mu);
    state = {false, "restoring 3 of 8 stores from the changelog"};
  }

  // Then /readyz answers 503 with the reason
  const HttpResponse not_ready = Get(server->port(), "/readyz");
  EXPECT_EQ(not_ready.status, 503);
  EXPECT_EQ(not_ready.body, "restoring 3 of 8 stores from the changelog\n");
  // and liveness is unaffected
  EXPECT_EQ(Get(server->port(), "/healthz").status, 200);
}

TEST(MetricsServer, ReadyzIsReadyWithoutACheck) {
  auto server = StartOnEphemeralPort(std::make_shared<prometheus::Registry>(), nullptr);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(Get(server->port(), "/readyz").status, 200);
}

TEST(MetricsServer, ReadyzIsNotReadyWhenTheCheckThrows) {
  auto server = StartOnEphemeralPort(std::make_shared<prometheus::Registry>(),
                                     []() -> std::pair<bool, std::string> {
                                       throw std::runtime_error("store closed");
                                     });
  ASSERT_NE(server, nullptr);

  const HttpResponse r = Get(server->port(), "/readyz");

  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "readiness check failed: store closed\n");
  EXPECT_EQ(Get(server->port(), "/healthz").status, 200);  // the server lives on
}

TEST(MetricsServer, AnUnknownPathIsNotFound) {
  auto server = StartOnEphemeralPort(std::make_shared<prometheus::Registry>());
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(Get(server->port(), "/").status, 404);
  EXPECT_EQ(Get(server->port(), "/metrics/extra").status, 404);
}

TEST(MetricsServer, AnotherMethodIsNotAllowed) {
  auto server = StartOnEphemeralPort(std::make_shared<prometheus::Registry>());
  ASSERT_NE(server, nullptr);

  const HttpResponse post = Exchange(
      server->port(), "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_EQ(post.status, 405);
  EXPECT_TRUE(HasHeader(post, "Allow: GET")) << post.headers;

  EXPECT_EQ(Exchange(server->port(), "DELETE /readyz HTTP/1.1\r\n\r\n").status, 405);
}

TEST(MetricsServer, AMalformedRequestIsBadRequest) {
  auto server = StartOnEphemeralPort(std::make_shared<prometheus::Registry>());
  ASSERT_NE(server, nullptr);
  const uint16_t port = server->port();

  EXPECT_EQ(Exchange(port, "garbage\r\n\r\n").status, 400);
  EXPECT_EQ(Exchange(port, "GET /metrics\r\n\r\n").status, 400);             // no version
  EXPECT_EQ(Exchange(port, "GET /metrics HTTP/2.0\r\n\r\n").status, 400);    // not HTTP/1.x
  EXPECT_EQ(Exchange(port, "GET  /metrics HTTP/1.1\r\n\r\n").status, 400);   // two spaces
  EXPECT_EQ(Exchange(port, "GET metrics HTTP/1.1\r\n\r\n").status, 400);     // not origin-form
  EXPECT_EQ(Exchange(port, "GET /metrics HTTP/1.1\r\nno colon\r\n\r\n").status, 400);
  EXPECT_EQ(Exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n").status, 400);
  EXPECT_EQ(Exchange(port, std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 15)).status,
            400);  // a TLS ClientHello
}

TEST(MetricsServer, AnIncompleteRequestFollowedByEndOfInputIsBadRequest) {
  auto server = StartOnEphemeralPort(std::make_shared<prometheus::Registry>());
  ASSERT_NE(server, nullptr);

  Client client(server->port());
  client.Send("GET /metrics HTTP/1.1\r\nHost: x\r\n");
  client.CloseWrite();

  EXPECT_EQ(Parse(client.ReadAll()).status, 400);
}

TEST(MetricsServer, AcceptsBareLineFeedsAndHttp10) {
  auto server = StartOnEphemeralPort(std::make_shared<prometheus::Registry>());
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(Exchange(server->port(), "GET /healthz HTTP/1.0\n\n").status, 200);
}

TEST(MetricsServer, AnswersARequestThatArrivesAByteAtATime) {
  auto server = StartOnEphemeralPort(std::make_shared<prometheus::Registry>());
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  client.NoDelay();

  for (char c : std::string_view("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")) {
    client.Send(std::string_view(&c, 1));
  }

  EXPECT_EQ(Parse(client.ReadAll()).status, 200);
}

TEST(MetricsServer, ASilentClientDoesNotDelayAnotherClientsRequest) {
  // Given a client that connects and sends nothing (it holds its slot for
  // the full 5 s timeout)
  auto server = StartOnEphemeralPort(std::make_shared<prometheus::Registry>());
  ASSERT_NE(server, nullptr);
  Client silent(server->port());
  Client half(server->port());
  half.Send("GET /metr");

  // When another client asks
  const SteadyClock::time_point start = SteadyClock::now();
  const HttpResponse r = Get(server->port(), "/healthz");

  // Then it is answered at once
  EXPECT_EQ(r.status, 200);
  EXPECT_LT(SecondsSince(start), 1.0);
}

TEST(MetricsServer, DropsARequestLargerThanTheLimit) {
  MetricsServer::Limits limits;
  limits.max_request_bytes = 1024;
  auto server = StartOnEphemeralPort(std::make_shared<prometheus::Registry>(), {}, limits);
  ASSERT_NE(server, nullptr);

  Client client(server->port());
  client.Send("GET /metrics HTTP/1.1\r\nX-Padding: " + std::string(2000, 'a'));

  EXPECT_EQ(client.ReadAll(), "");  // closed without an answer
  EXPECT_EQ(Get(server->port(), "/healthz").status, 200);
}

TEST(MetricsServer, TheDefaultRequestLimitIsEightKibibytes) {
  auto server = StartOnEphemeralPort(std::make_shared<prometheus::Registry>());
  ASSERT_NE(server, nullptr);
  const std::string head = "GET /healthz HTTP/1.1\r\nX-Padding: ";
  const auto request_of = [&](size_t total) {
    return head + std::string(total - head.size() - 4, 'a') + "\r\n\r\n";
  };

  EXPECT_EQ(Exchange(server->port(), request_of(8 * 1024)).status, 200);
  Client client(server->port());
  client.Send(request_of(8 * 1024 + 1));
  EXPECT_EQ(client.ReadAll(), "");
}

TEST(MetricsServer, DropsAClientSlowerThanTheTimeout) {
  MetricsServer::Limits limits;
  limits.client_timeout = std::chrono::milliseconds(200);
  auto server = StartOnEphemeralPort(std::make_shared<prometheus::Registry>(), {}, limits);
  ASSERT_NE(server, nullptr);

  Client client(server->port());
  client.Send("GET /metrics HTTP/1.1\r\n");
  const SteadyClock::time_point start = SteadyClock::now();

  EXPECT_EQ(client.ReadAll(), "");  // the server hung up
  EXPECT_LT(SecondsSince(start), 3.0);
}

TEST(MetricsServer, PushesOutTheOldestConnectionWhenFull) {
  MetricsServer::Limits limits;
  limits.max_connections = 2;
  auto server = StartOnEphemeralPort(std::make_shared<prometheus::Registry>(), {}, limits);
  ASSERT_NE(server, nullptr);
  Client first(server->port());
  first.Send("G");
  Client second(server->port());
  second.Send("G");

  const HttpResponse r = Get(server->port(), "/healthz");

  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(first.ReadAll(), "");  // closed to make room
}

TEST(MetricsServer, StopReturnsPromptlyWhileAClientHoldsAConnectionOpen) {
  // Given a client in the middle of a request
  auto server = StartOnEphemeralPort(std::make_shared<prometheus::Registry>());
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  client.Send("GET /metrics HTTP/1.1\r\n");
  EXPECT_EQ(Get(server->port(), "/healthz").status, 200);  // the server has accepted both

  // When the server stops
  const SteadyClock::time_point start = SteadyClock::now();
  server->Stop();

  // Then Stop() does not wait for the client, which sees the connection close
  EXPECT_LT(SecondsSince(start), 1.0);
  EXPECT_EQ(client.ReadAll(), "");
  server->Stop();  // idempotent; the destructor stops once more
}

TEST(MetricsServer, StopReleasesThePort) {
  auto server = StartOnEphemeralPort(std::make_shared<prometheus::Registry>());
  ASSERT_NE(server, nullptr);
  const uint16_t port = server->port();
  server->Stop();

  Result<std::unique_ptr<MetricsServer>> again =
      MetricsServer::Start("127.0.0.1", port, std::make_shared<prometheus::Registry>(), {});

  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(Get(port, "/healthz").status, 200);
}

TEST(MetricsServer, BindingAPortInUseFailsNamingMetricsBind) {
  auto server = StartOnEphemeralPort(std::make_shared<prometheus::Registry>());
  ASSERT_NE(server, nullptr);

  Result<std::unique_ptr<MetricsServer>> second = MetricsServer::Start(
      "127.0.0.1", server->port(), std::make_shared<prometheus::Registry>(), {});

  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("metrics.bind"), std::string::npos)
      << second.status().message();
  EXPECT_NE(second.status().message().find("127.0.0.1:" + std::to_string(server->port())),
            std::string::npos)
      << second.status().message();
}

TEST(MetricsServer, AnAddressNotOnThisHostFailsNamingMetricsBind) {
  // 192.0.2.1 is TEST-NET-1 (RFC 5737): never a local address.
  Result<std::unique_ptr<MetricsServer>> server =
      MetricsServer::Start("192.0.2.1", 0, std::make_shared<prometheus::Registry>(), {});

  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.status().message().find("metrics.bind"), std::string::npos)
      << server.status().message();
}

TEST(MetricsServer, AnEmptyAddressFailsNamingMetricsBind) {
  Result<std::unique_ptr<MetricsServer>> server =
      MetricsServer::Start("", 0, std::make_shared<prometheus::Registry>(), {});

  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(server.status().message().find("metrics.bind"), std::string::npos)
      << server.status().message();
}

TEST(MetricsServer, UrlNamesLoopbackAndTheBoundPort) {
  auto server = StartOnEphemeralPort(std::make_shared<prometheus::Registry>());
  ASSERT_NE(server, nullptr);
  EXPECT_NE(server->port(), 0);
  EXPECT_EQ(server->url(), "http://127.0.0.1:" + std::to_string(server->port()));

  Result<std::unique_ptr<MetricsServer>> wildcard =
      MetricsServer::Start("0.0.0.0", 0, std::make_shared<prometheus::Registry>(), {});
  ASSERT_TRUE(wildcard.ok()) << wildcard.status().ToString();
  EXPECT_EQ((*wildcard)->url(), "http://127.0.0.1:" + std::to_string((*wildcard)->port()));
  EXPECT_EQ(Get((*wildcard)->port(), "/healthz").status, 200);
}

TEST(MetricsServer, RefusesToStartWithoutARegistry) {
  Result<std::unique_ptr<MetricsServer>> server = MetricsServer::Start("127.0.0.1", 0, nullptr, {});
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace shortfall::pipeline
