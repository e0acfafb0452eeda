// Starting `reft serve` from tests and talking to it over loopback: a server process on a free
// port (--port 0, read from its "listening on" line) and a small HTTP/1.1 client (one request per
// connection, chunked bodies decoded) that can also drop a connection mid-stream.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "cli_util.h"

namespace reft::test {

class ServerProcess {
 public:
  /// Starts `reft serve <args> --port 0 --host 127.0.0.1` and waits (≤ 120 s) for its
  /// "listening on" line. ok() is false (and log() says why) when it did not come up.
  explicit ServerProcess(std::vector<std::string> args) {
    args.insert(args.begin(), "serve");
    for (const char* a : {"--port", "0", "--host", "127.0.0.1"}) args.push_back(a);
    child_ = spawn_reft(args);
    const std::regex listening("listening on http://127\\.0\\.0\\.1:([0-9]+)");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (std::chrono::steady_clock::now() < deadline) {
      std::smatch m;
      const std::string err = read_text(child_.err_file);
      if (std::regex_search(err, m, listening)) {
        port_ = std::stoi(m[1]);
        return;
      }
      int status = 0;
      if (waitpid(child_.pid, &status, WNOHANG) == child_.pid) {
        exited_ = true;
        exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  ~ServerProcess() {
    if (!exited_) stop(SIGKILL, 10);
  }
  bool ok() const { return port_ > 0; }
  int port() const { return port_; }
  pid_t pid() const { return child_.pid; }
  std::string log() const { return read_text(child_.err_file); }

  /// Sends `sig` and waits up to `timeout_s` for the exit; returns the exit status (-1: killed by
  /// a signal or timed out).
  int stop(int sig = SIGTERM, double timeout_s = 60) {
    if (exited_) return exit_status_;
    kill(child_.pid, sig);
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    int status = 0;
    while (waitpid(child_.pid, &status, WNOHANG) != child_.pid) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(child_.pid, SIGKILL);
        waitpid(child_.pid, &status, 0);
        exited_ = true;
        return exit_status_ = -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    exited_ = true;
    exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return exit_status_;
  }

 private:
  Child child_;
  int port_ = 0;
  bool exited_ = false;
  int exit_status_ = -1;
};

struct HttpResponse {
  int status = 0;  // 0: no response (connection failed or closed early)
  std::string headers, body;
  nlohmann::json json() const {
    auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    return j;
  }
  /// The `data:` payloads of a server-sent-events body, in order ("[DONE]" included as a string).
  std::vector<std::string> events() const {
    std::vector<std::string> out;
    std::istringstream in(body);
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("data: ", 0) == 0) out.push_back(line.substr(6));
    return out;
  }
};

inline int connect_loopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{120, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

inline bool send_all(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

inline std::string request_text(const std::string& method, const std::string& path,
                                const std::string& body, const std::vector<std::string>& headers) {
  std::string r = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  for (const auto& h : headers) r += h + "\r\n";
  if (!body.empty() || method == "POST")
    r +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  return r + "\r\n" + body;
}

inline std::string dechunk(const std::string& raw) {
  std::string out;
  size_t pos = 0;
  while (pos < raw.size()) {
    const size_t eol = raw.find("\r\n", pos);
    if (eol == std::string::npos) break;
    const size_t n = std::stoul(raw.substr(pos, eol - pos), nullptr, 16);
    if (n == 0) break;
    out += raw.substr(eol + 2, n);
    pos = eol + 2 + n + 2;
  }
  return out;
}

/// One request on its own connection; reads until the server closes it.
inline HttpResponse http(int port, const std::string& method, const std::string& path,
                         const std::string& body = "",
                         const std::vector<std::string>& headers = {}) {
  HttpResponse r;
  const int fd = connect_loopback(port);
  if (fd < 0) return r;
  send_all(fd, request_text(method, path, body, headers));
  std::string raw;
  char buf[65536];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) raw.append(buf, static_cast<size_t>(n));
  close(fd);
  const size_t end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || end == std::string::npos) return r;
  r.status = std::stoi(raw.substr(9, 3));
  r.headers = raw.substr(0, end);
  r.body = raw.substr(end + 4);
  std::string lower = r.headers;
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  if (lower.find("transfer-encoding: chunked") != std::string::npos) r.body = dechunk(r.body);
  return r;
}

inline HttpResponse post(int port, const std::string& path, const nlohmann::json& body,
                         const std::vector<std::string>& headers = {}) {
  return http(port, "POST", path, body.dump(), headers);
}

/// The value of a metric line "name{labels} value" (or "name value") in /metrics text; -1: absent.
inline double metric_value(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  return -1;
}

}  // namespace reft::test
