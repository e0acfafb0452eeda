// libFuzzer target for reft serve's request bodies: the input is one HTTP body, parsed as a
// completions, chat completions and adapter-load request (reft/openai_api.h), as the server does
// before anything reaches the model. Every failure must be an openai::ApiError with a 4xx status
// and a one-line message; anything else (another exception, a crash, a hang) is a finding.
#include <cstdlib>

#include "reft/openai_api.h"

namespace {

template <class Parse>
void check(Parse parse, std::string_view body) {
  try {
    parse(body);
  } catch (const reft::openai::ApiError& e) {
    const std::string message = e.what();
    if (e.status() < 400 || e.status() > 499 || message.empty() ||
        message.find('\n') != std::string::npos)
      std::abort();
    // The error body is always valid JSON (invalid UTF-8 in echoed values is replaced).
    (void)reft::openai::error_json(e.status(), message, e.param(), e.code())
        .dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  check(reft::openai::parse_completion_request, body);
  check(reft::openai::parse_chat_request, body);
  check(reft::openai::parse_adapter_request, body);
  return 0;
}
