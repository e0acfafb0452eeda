// reft/openai_api.h: request bodies of reft serve parsed into plain structs; every bad field an
// ApiError with a 4xx status, the field named and a one-line message (torch-free).

#include "reft/openai_api.h"

#include <gtest/gtest.h>

namespace reft::openai {
namespace {

// The error a body gets, or status 0 when it parses.
ApiError error_of(const std::function<void()>& parse) {
  try {
    parse();
  } catch (const ApiError& e) {
    return e;
  }
  return ApiError(0, "");
}

TEST(OpenaiApi, CompletionFields) {
  const auto r = parse_completion_request(
      R"({"model": "a", "prompt": "hi", "max_tokens": 5, "temperature": 0, "top_p": 0.5,
          "top_k": -1, "seed": 9, "stop": ["x", "y"], "stream": true,
          "stream_options": {"include_usage": true}, "ignore_eos": true, "user": "u",
          "presence_penalty": 0, "n": 1, "logprobs": null})");
  EXPECT_EQ(r.model, "a");
  EXPECT_EQ(r.prompt_text, "hi");
  EXPECT_EQ(r.sampling.max_tokens, 5);
  EXPECT_EQ(r.sampling.temperature, 0);
  EXPECT_EQ(r.sampling.top_p, 0.5);
  EXPECT_EQ(r.sampling.top_k, 0);  // -1: off, as vLLM
  EXPECT_EQ(r.sampling.seed, 9u);
  EXPECT_EQ(r.sampling.stop, (std::vector<std::string>{"x", "y"}));
  EXPECT_TRUE(r.sampling.stream && r.sampling.include_usage && r.sampling.ignore_eos);
  const auto ids = parse_completion_request(R"({"prompt": [1, 2, 3]})");
  EXPECT_EQ(ids.prompt_ids, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_FALSE(ids.prompt_text);
  EXPECT_EQ(ids.sampling.temperature, 1.0);  // OpenAI's default
  EXPECT_FALSE(ids.sampling.max_tokens);
  EXPECT_EQ(parse_completion_request(R"({"prompt": ["one"]})").prompt_text, "one");
}

TEST(OpenaiApi, ChatFields) {
  const auto r = parse_chat_request(
      R"({"messages": [{"role": "system", "content": "s"},
                       {"role": "user", "content": [{"type": "text", "text": "a"},
                                                    {"type": "text", "text": "b"}]},
                       {"role": "assistant", "content": null, "name": "x"}],
          "max_completion_tokens": 7, "chat_template_kwargs": {"enable_thinking": false}})");
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[1]["content"], "ab");
  EXPECT_EQ(r.messages[2]["content"], "");
  EXPECT_EQ(r.messages[2]["name"], "x");  // other keys are kept for templates
  EXPECT_EQ(r.sampling.max_tokens, 7);
  EXPECT_EQ(r.template_kwargs["enable_thinking"], false);
}

TEST(OpenaiApi, BadBodiesNameTheField) {
  struct Case {
    const char* body;
    int status;
    const char* param;
    const char* needle;
  };
  const std::vector<Case> cases = {
      {"", 400, "", "empty body"},
      {"{", 400, "", "JSON"},
      {"[]", 400, "", "JSON object"},
      {R"({"max_tokens": 3})", 400, "prompt", "'prompt' is required"},
      {R"({"prompt": {}})", 400, "prompt", "'prompt' expected"},
      {R"({"prompt": [1, -2]})", 400, "prompt", "token ids"},
      {R"({"prompt": [1, 2.5]})", 400, "prompt", "token ids"},
      {R"({"prompt": ["a", "b"]})", 400, "prompt", "one request per prompt"},
      {R"({"prompt": "x", "max_tokens": -1})", 400, "max_tokens", "'max_tokens'"},
      {R"({"prompt": "x", "max_tokens": 1e300})", 400, "max_tokens", "'max_tokens'"},
      {R"({"prompt": "x", "max_tokens": 18446744073709551615})", 400, "max_tokens", "'max_tokens'"},
      {R"({"prompt": "x", "temperature": "hot"})", 400, "temperature", "a number"},
      {R"({"prompt": "x", "top_p": 0})", 400, "top_p", "(0, 1]"},
      {R"({"prompt": "x", "repetition_penalty": 0})", 400, "repetition_penalty", "> 0"},
      {R"({"prompt": "x", "seed": 1.5})", 400, "seed", "integer"},
      {R"({"prompt": "x", "stop": [1]})", 400, "stop", "strings"},
      {R"({"prompt": "x", "stop": ""})", 400, "stop", "non-empty"},
      {R"({"prompt": "x", "stream": 1})", 400, "stream", "true or false"},
      {R"({"prompt": "x", "stream_options": {"include_usage": true}})", 400, "stream_options",
       "only allowed"},
      {R"({"prompt": "x", "n": 2})", 400, "n", "'n'"},
      {R"({"prompt": "x", "logprobs": 3})", 400, "logprobs", "not supported"},
      {R"({"prompt": "x", "frequency_penalty": 1})", 400, "frequency_penalty",
       "repetition_penalty"},
      {R"({"prompt": "x", "tools": [{}]})", 400, "tools", "tool calling"},
      {R"({"prompt": "x", "model": 3})", 400, "model", "a string"},
      {R"({"prompt": "x", "model": "../etc"})", 404, "model", "does not exist"},
  };
  for (const auto& c : cases) {
    const auto e = error_of([&] { parse_completion_request(c.body); });
    EXPECT_EQ(e.status(), c.status) << c.body;
    EXPECT_EQ(e.param(), c.param) << c.body;
    EXPECT_NE(std::string(e.what()).find(c.needle), std::string::npos)
        << c.body << ": " << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
  const std::vector<std::pair<const char*, const char*>> chat = {
      {R"({"messages": []})", "messages"},
      {R"({"messages": "hi"})", "messages"},
      {R"({"messages": [3]})", "messages[0]"},
      {R"({"messages": [{"content": "x"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})",
       "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 1,
           "max_completion_tokens": 1})",
       "max_tokens"},
      {R"({"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": 1})",
       "chat_template_kwargs"},
      {R"({"messages": [{"role": "user", "content": "x"}],
           "chat_template_kwargs": {"messages": []}})",
       "chat_template_kwargs"},
  };
  for (const auto& [body, param] : chat) {
    const auto e = error_of([&] { parse_chat_request(body); });
    EXPECT_EQ(e.status(), 400) << body;
    EXPECT_EQ(e.param(), param) << body << ": " << e.what();
  }
}

TEST(OpenaiApi, AdapterRequestsAndNames) {
  const auto r = parse_adapter_request(R"({"name": "x-1.b", "path": "sub/dir"})");
  EXPECT_EQ(r.name, "x-1.b");
  EXPECT_EQ(r.path, "sub/dir");
  EXPECT_EQ(parse_adapter_request(R"({"lora_name": "y", "lora_path": "p"})").name, "y");
  EXPECT_EQ(error_of([] { parse_adapter_request(R"({"name": "a b", "path": "p"})"); }).param(),
            "name");
  EXPECT_EQ(error_of([] { parse_adapter_request(R"({"name": "a"})"); }).param(), "path");
  EXPECT_TRUE(valid_model_name("Qwen2.5-0.5B:ft_1"));
  EXPECT_FALSE(valid_model_name(""));
  EXPECT_FALSE(valid_model_name(".hidden"));
  EXPECT_FALSE(valid_model_name("a/b"));
  EXPECT_FALSE(valid_model_name(std::string(129, 'a')));
}

TEST(OpenaiApi, ErrorJson) {
  const auto j = error_json(404, "no", "model", "model_not_found");
  EXPECT_EQ(j["error"]["type"], "not_found_error");
  EXPECT_EQ(j["error"]["param"], "model");
  EXPECT_TRUE(error_json(400, "x")["error"]["code"].is_null());
}

}  // namespace
}  // namespace reft::openai
