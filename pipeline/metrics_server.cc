#include "pipeline/metrics_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <string_view>
#include <system_error>
#include <vector>

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace shortfall::pipeline {
namespace {

using SteadyClock = std::chrono::steady_clock;

// After the response is sent, how long to keep reading (and discarding)
// what the client still sends before closing. Closing a socket with unread
// input makes the kernel send a RST, which can destroy the response before
// the client reads it (a POST with a body, a pipelining client).
constexpr std::chrono::milliseconds kLingerTime{1000};
constexpr size_t kReadChunk = 4096;
constexpr size_t kMaxRequestBytesLimit = 1 << 20;

// A file descriptor closed when it goes out of scope.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

std::string ErrnoText(int err) { return std::error_code(err, std::generic_category()).message(); }

// RFC 9110 tchar: what a method or header name may contain.
bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), IsTokenChar);
}

// Visible ASCII, what a request target may contain.
bool IsTarget(std::string_view s) {
  return !s.empty() && s.front() == '/' &&
         std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

// The offset just past the blank line that ends the header block, or npos.
// Lines end in CRLF; a bare LF is accepted too (RFC 9112 section 2.2).
// `*line_start` is where the first unfinished line starts; the scan resumes
// there, so a client sending a byte at a time costs linear time, not square.
size_t HeaderEnd(std::string_view data, size_t* line_start) {
  for (size_t nl = data.find('\n', *line_start); nl != std::string_view::npos;
       nl = data.find('\n', *line_start)) {
    const size_t start = *line_start;
    const std::string_view line = data.substr(start, nl - start);
    *line_start = nl + 1;
    if (start > 0 && (line.empty() || line == "\r")) return nl + 1;  // start 0: the request line
  }
  return std::string_view::npos;
}

// Splits the header block into lines without their CR/LF.
std::vector<std::string_view> Lines(std::string_view block) {
  std::vector<std::string_view> lines;
  while (!block.empty()) {
    size_t nl = block.find('\n');
    std::string_view line = block.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    if (nl == std::string_view::npos) break;
    block.remove_prefix(nl + 1);
  }
  return lines;
}

std::string Response(int code, std::string_view reason, std::string_view content_type,
                     std::string_view body, std::string_view extra_headers = {}) {
  std::string out;
  out.reserve(body.size() + 160);
  out += "HTTP/1.1 ";
  out += std::to_string(code);
  out += ' ';
  out += reason;
  out += "\r\nContent-Type: ";
  out += content_type;
  out += "\r\nContent-Length: ";
  out += std::to_string(body.size());
  out += "\r\nCache-Control: no-store\r\nConnection: close\r\n";
  out += extra_headers;
  out += "\r\n";
  out += body;
  return out;
}

constexpr std::string_view kPlainText = "text/plain; charset=utf-8";
constexpr std::string_view kExpositionText = "text/plain; version=0.0.4; charset=utf-8";

std::string BadRequest() { return Response(400, "Bad Request", kPlainText, "bad request\n"); }

// The host part of url(): loopback for a wildcard address, IPv6 in brackets.
std::string UrlHost(const sockaddr_storage& addr) {
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET6) {
    sockaddr_in6 in6;
    std::memcpy(&in6, &addr, sizeof in6);
    if (IN6_IS_ADDR_UNSPECIFIED(&in6.sin6_addr)) return "[::1]";
    ::inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof text);
    return "[" + std::string(text) + "]";
  }
  sockaddr_in in4;
  std::memcpy(&in4, &addr, sizeof in4);
  if (in4.sin_addr.s_addr == htonl(INADDR_ANY)) return "127.0.0.1";
  ::inet_ntop(AF_INET, &in4.sin_addr, text, sizeof text);
  return text;
}

std::string HostPortText(const std::string& host, uint16_t port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

// The server's thread: a poll() loop over the wake pipe, the listening
// socket and the open connections. Everything in it runs on that thread,
// except Wake().
class MetricsServer::Loop {
 public:
  Loop(UniqueFd listener, UniqueFd wake_read, UniqueFd wake_write,
       std::shared_ptr<prometheus::Registry> registry, ReadinessCheck ready, Limits limits)
      : listener_(std::move(listener)),
        wake_read_(std::move(wake_read)),
        wake_write_(std::move(wake_write)),
        registry_(std::move(registry)),
        ready_(std::move(ready)),
        limits_(limits) {}

  // Serves until Wake(); then closes the listener and every connection.
  void Run();
  // Makes Run() return soon. Any thread; async-signal-safe.
  void Wake() {
    const char byte = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_write_.get(), &byte, 1);  // full pipe: already woken
  }

 private:
  enum class Phase { kReading, kWriting, kLingering };
  struct Connection {
    UniqueFd fd;
    Phase phase = Phase::kReading;
    std::string in;
    size_t line_start = 0;  // in `in`: where HeaderEnd() resumes
    std::string out;
    size_t sent = 0;
    SteadyClock::time_point deadline;
  };

  void AcceptAll(SteadyClock::time_point now);
  // Advances `c` on the poll events `revents`; closes it when it is done.
  void Service(Connection& c, short revents, SteadyClock::time_point now);
  void Read(Connection& c);
  void Write(Connection& c, SteadyClock::time_point now);
  void Linger(Connection& c);
  void Respond(Connection& c, std::string response);
  std::string Handle(std::string_view request);
  std::string Metrics();
  std::string Readiness();

  UniqueFd listener_;
  UniqueFd wake_read_;
  UniqueFd wake_write_;
  std::shared_ptr<prometheus::Registry> registry_;
  ReadinessCheck ready_;
  Limits limits_;
  std::vector<Connection> connections_;
  // Out of file descriptors: accept() would fail at once again, so the
  // listener rests until then instead of spinning.
  SteadyClock::time_point accept_resume_{};
};

void MetricsServer::Loop::Run() {
  std::vector<pollfd> fds;
  while (true) {
    SteadyClock::time_point now = SteadyClock::now();
    std::erase_if(connections_, [now](const Connection& c) { return now >= c.deadline; });

    SteadyClock::time_point wake_at = SteadyClock::time_point::max();
    const bool accepting = now >= accept_resume_;
    if (!accepting) wake_at = accept_resume_;
    fds.clear();
    fds.push_back({.fd = wake_read_.get(), .events = POLLIN, .revents = 0});
    fds.push_back({.fd = accepting ? listener_.get() : -1, .events = POLLIN, .revents = 0});
    for (const Connection& c : connections_) {
      const short events = c.phase == Phase::kWriting ? POLLOUT : POLLIN;
      fds.push_back({.fd = c.fd.get(), .events = events, .revents = 0});
      wake_at = std::min(wake_at, c.deadline);
    }
    int timeout_ms = -1;
    if (wake_at != SteadyClock::time_point::max()) {
      const auto wait = std::chrono::ceil<std::chrono::milliseconds>(wake_at - now).count();
      timeout_ms = static_cast<int>(std::clamp<int64_t>(wait, 0, 60'000));
    }

    const int n = ::poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0) {
      // EINTR: a signal; ENOMEM: the kernel is short, try again shortly.
      if (errno != EINTR) ::poll(nullptr, 0, 10);
      continue;
    }
    if (fds[0].revents != 0) break;  // Stop()

    now = SteadyClock::now();
    for (size_t i = 0; i < connections_.size(); ++i) {
      if (fds[i + 2].revents != 0) Service(connections_[i], fds[i + 2].revents, now);
    }
    std::erase_if(connections_, [](const Connection& c) { return !c.fd.valid(); });
    if (fds[1].revents != 0) AcceptAll(now);
  }
  connections_.clear();
  listener_.Reset();
}

void MetricsServer::Loop::AcceptAll(SteadyClock::time_point now) {
  while (true) {
    const int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        accept_resume_ = now + std::chrono::milliseconds(100);
      }
      return;  // EAGAIN: none left; ECONNABORTED and the like: that client gave up
    }
    if (connections_.size() >= limits_.max_connections && !connections_.empty()) {
      // The oldest connection is the one most likely to be stuck.
      auto oldest = std::min_element(
          connections_.begin(), connections_.end(),
          [](const Connection& a, const Connection& b) { return a.deadline < b.deadline; });
      connections_.erase(oldest);
    }
    Connection c;
    c.fd = UniqueFd(fd);
    c.deadline = now + limits_.client_timeout;
    connections_.push_back(std::move(c));
  }
}

void MetricsServer::Loop::Service(Connection& c, short revents, SteadyClock::time_point now) {
  switch (c.phase) {
    case Phase::kReading:
      Read(c);
      // A complete request gets its answer at once; a socket buffer with
      // room for it is the common case, so this usually finishes here.
      if (c.phase == Phase::kWriting) Write(c, now);
      break;
    case Phase::kWriting:
      if ((revents & (POLLERR | POLLNVAL)) != 0) {
        c.fd.Reset();
      } else {
        Write(c, now);
      }
      break;
    case Phase::kLingering:
      Linger(c);
      break;
  }
}

void MetricsServer::Loop::Read(Connection& c) {
  char buffer[kReadChunk];
  while (true) {
    // Never hold more than the limit plus one byte (which proves it exceeded).
    const size_t room = limits_.max_request_bytes + 1 - c.in.size();
    const ssize_t n = ::recv(c.fd.get(), buffer, std::min(room, sizeof buffer), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) c.fd.Reset();
      return;
    }
    if (n == 0) {
      // The client finished sending without completing its headers.
      if (c.in.empty()) {
        c.fd.Reset();
      } else {
        Respond(c, BadRequest());
      }
      return;
    }
    c.in.append(buffer, static_cast<size_t>(n));
    const size_t end = HeaderEnd(c.in, &c.line_start);
    if (end != std::string::npos && end <= limits_.max_request_bytes) {
      Respond(c, Handle(std::string_view(c.in).substr(0, end)));
      return;
    }
    if (c.in.size() > limits_.max_request_bytes) {
      c.fd.Reset();  // too large: dropped without an answer
      return;
    }
  }
}

void MetricsServer::Loop::Respond(Connection& c, std::string response) {
  c.out = std::move(response);
  c.sent = 0;
  c.in.clear();
  c.in.shrink_to_fit();
  c.phase = Phase::kWriting;
}

void MetricsServer::Loop::Write(Connection& c, SteadyClock::time_point now) {
  while (c.sent < c.out.size()) {
    const ssize_t n = ::send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) c.fd.Reset();
      return;
    }
    c.sent += static_cast<size_t>(n);
  }
  c.out.clear();
  c.out.shrink_to_fit();
  ::shutdown(c.fd.get(), SHUT_WR);
  c.phase = Phase::kLingering;
  c.deadline = std::min(c.deadline, now + kLingerTime);
}

void MetricsServer::Loop::Linger(Connection& c) {
  char buffer[kReadChunk];
  while (true) {
    const ssize_t n = ::recv(c.fd.get(), buffer, sizeof buffer, 0);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    c.fd.Reset();  // the client closed (or reset): done
    return;
  }
}

std::string MetricsServer::Loop::Handle(std::string_view request) {
  const std::vector<std::string_view> lines = Lines(request);
  if (lines.empty()) return BadRequest();
  // Request line: METHOD SP target SP HTTP/1.x
  const std::string_view line = lines[0];
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return BadRequest();
  }
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!IsToken(method) || !IsTarget(target) ||
      (version != "HTTP/1.1" && version != "HTTP/1.0")) {
    return BadRequest();
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].empty()) break;  // the blank line ending the headers
    const size_t colon = lines[i].find(':');
    if (colon == std::string_view::npos || !IsToken(lines[i].substr(0, colon))) {
      return BadRequest();  // also rejects obsolete line folding
    }
  }

  const std::string_view path = target.substr(0, target.find('?'));
  if (path != "/metrics" && path != "/healthz" && path != "/readyz") {
    return Response(404, "Not Found", kPlainText, "not found\n");
  }
  if (method != "GET") {
    return Response(405, "Method Not Allowed", kPlainText, "method not allowed\n", "Allow: GET\r\n");
  }
  if (path == "/metrics") return Metrics();
  if (path == "/healthz") return Response(200, "OK", kPlainText, "ok\n");
  return Readiness();
}

std::string MetricsServer::Loop::Metrics() {
  // prometheus-cpp reports failures as exceptions; they stop at this line.
  try {
    const std::string body = prometheus::TextSerializer().Serialize(registry_->Collect());
    return Response(200, "OK", kExpositionText, body);
  } catch (const std::exception& e) {
    return Response(500, "Internal Server Error", kPlainText,
                    std::string("collecting metrics failed: ") + e.what() + "\n");
  } catch (...) {
    return Response(500, "Internal Server Error", kPlainText, "collecting metrics failed\n");
  }
}

std::string MetricsServer::Loop::Readiness() {
  std::pair<bool, std::string> state{true, ""};
  if (ready_) {
    try {
      state = ready_();
    } catch (const std::exception& e) {
      state = {false, std::string("readiness check failed: ") + e.what()};
    } catch (...) {
      state = {false, "readiness check failed"};
    }
  }
  if (state.first) return Response(200, "OK", kPlainText, "ready\n");
  std::string reason = state.second.empty() ? "not ready" : std::move(state.second);
  if (reason.back() != '\n') reason += '\n';
  return Response(503, "Service Unavailable", kPlainText, reason);
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    std::string bind_address, uint16_t port, std::shared_ptr<prometheus::Registry> registry,
    ReadinessCheck ready) {
  return Start(std::move(bind_address), port, std::move(registry), std::move(ready), Limits());
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    std::string bind_address, uint16_t port, std::shared_ptr<prometheus::Registry> registry,
    ReadinessCheck ready, Limits limits) {
  if (registry == nullptr) return InvalidArgumentError("metrics server: no registry to serve");
  if (limits.max_request_bytes == 0 || limits.max_request_bytes > kMaxRequestBytesLimit ||
      limits.max_connections == 0 || limits.client_timeout <= std::chrono::milliseconds::zero()) {
    return InvalidArgumentError(
        "metrics server: limits must be positive, max_request_bytes at most 1 MiB");
  }
  const std::string where = HostPortText(bind_address, port);
  if (bind_address.empty()) {
    return InvalidArgumentError("metrics.bind: no host in " + where +
                                " (0.0.0.0 listens on every interface)");
  }

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (const int rc = ::getaddrinfo(bind_address.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return InvalidArgumentError("metrics.bind: cannot resolve host '" + bind_address + "': " +
                                ::gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, &::freeaddrinfo);

  UniqueFd listener;
  int last_error = 0;
  for (const addrinfo* a = addresses.get(); a != nullptr && !listener.valid(); a = a->ai_next) {
    UniqueFd fd(::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
    if (!fd.valid()) {
      last_error = errno;
      continue;
    }
    // A restart can rebind while the last run's connections sit in
    // TIME_WAIT. (On Linux this never lets two listeners share a port.)
    const int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd.get(), SOMAXCONN) != 0) {
      last_error = errno;
      continue;
    }
    listener = std::move(fd);
  }
  if (!listener.valid()) {
    return UnavailableError("metrics.bind: cannot listen on " + where + ": " + ErrnoText(last_error));
  }

  sockaddr_storage bound{};
  socklen_t bound_len = sizeof bound;
  if (::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&bound), &bound_len) != 0) {
    return UnavailableError("metrics.bind: getsockname on " + where + ": " + ErrnoText(errno));
  }
  uint16_t bound_port = 0;
  if (bound.ss_family == AF_INET6) {
    sockaddr_in6 in6;
    std::memcpy(&in6, &bound, sizeof in6);
    bound_port = ntohs(in6.sin6_port);
  } else {
    sockaddr_in in4;
    std::memcpy(&in4, &bound, sizeof in4);
    bound_port = ntohs(in4.sin_port);
  }

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    return UnavailableError("metrics server: cannot create its wake-up pipe: " + ErrnoText(errno));
  }
  auto loop = std::make_unique<Loop>(std::move(listener), UniqueFd(pipe_fds[0]), UniqueFd(pipe_fds[1]),
                                     std::move(registry), std::move(ready), limits);
  std::unique_ptr<MetricsServer> server(new MetricsServer(std::move(loop), bound_port, UrlHost(bound)));
  try {
    server->thread_ = std::thread([loop = server->loop_.get()] { loop->Run(); });
  } catch (const std::system_error& e) {
    return UnavailableError(std::string("metrics server: cannot start its thread: ") + e.what());
  }
  return server;
}

MetricsServer::MetricsServer(std::unique_ptr<Loop> loop, uint16_t port, std::string url_host)
    : loop_(std::move(loop)), port_(port), url_host_(std::move(url_host)) {}

MetricsServer::~MetricsServer() { Stop(); }

void MetricsServer::Stop() {
  std::lock_guard<std::mutex> lock(stop_mu_);
  if (!thread_.joinable()) return;
  loop_->Wake();
  thread_.join();
}

std::string MetricsServer::url() const {
  return "http://" + url_host_ + ":" + std::to_string(port_);
}

}  // namespace shortfall::pipeline
