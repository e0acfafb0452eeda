#include "reft/data.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "reft/error.h"
#include "reft/tokenizer.h"
#include "util/files.h"

namespace reft {
namespace fs = std::filesystem;

namespace {

std::string lower_extension(const fs::path& p) {
  std::string e = p.extension().string();
  for (auto& c : e) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return e;
}

// Splits CSV text into rows of fields (RFC 4180: quoted fields, doubled quotes, embedded newlines).
std::vector<std::pair<int, std::vector<std::string>>> parse_csv(const std::string& text,
                                                                const std::string& where) {
  std::vector<std::pair<int, std::vector<std::string>>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, field_started = false;
  int line = 1, row_line = 1;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == '"' && !field_started) {
      quoted = field_started = true;
    } else if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
      field_started = false;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      row.push_back(std::move(field));
      field.clear();
      field_started = false;
      if (!(row.size() == 1 && row[0].empty())) rows.emplace_back(row_line, std::move(row));
      row.clear();
      ++line;
      row_line = line;
    } else {
      field += c;
      field_started = true;
    }
  }
  if (quoted) fail("[", where, ":", row_line, "] unterminated quoted field");
  if (field_started || !row.empty()) {
    row.push_back(std::move(field));
    rows.emplace_back(row_line, std::move(row));
  }
  return rows;
}

}  // namespace

std::vector<Record> read_records(const fs::path& path) {
  const std::string name = path.string();
  const std::string text = read_file(path);
  const std::string ext = lower_extension(path);
  std::vector<Record> out;
  if (ext == ".csv") {
    auto rows = parse_csv(text, name);
    if (rows.empty()) fail("[", name, "] expected a header row, found an empty file");
    const auto& header = rows[0].second;
    for (size_t r = 1; r < rows.size(); ++r) {
      const auto& [line, fields] = rows[r];
      if (fields.size() != header.size())
        fail("[", name, ":", line, "] expected ", header.size(), " fields (as the header), found ",
             fields.size());
      nlohmann::json obj = nlohmann::json::object();
      for (size_t i = 0; i < header.size(); ++i) obj[header[i]] = fields[i];
      out.push_back({std::move(obj), name + ":" + std::to_string(line)});
    }
    return out;
  }
  if (ext == ".json") {
    nlohmann::json j = parse_json_bounded(text, name);
    if (j.is_object() && j.contains("data")) j = j["data"];
    if (!j.is_array())
      fail("[", name, "] expected a JSON array of records (or {\"data\": [...]}), found ",
           j.type_name());
    for (size_t i = 0; i < j.size(); ++i) {
      if (!j[i].is_object())
        fail("[", name, ":record ", i + 1, "] expected an object, found ", j[i].type_name());
      out.push_back({j[i], name + ":record " + std::to_string(i + 1)});
    }
    return out;
  }
  // JSONL (also the default for unknown extensions).
  std::istringstream in(text);
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j = parse_json_bounded(line, name + ":" + std::to_string(line_no));
    if (!j.is_object())
      fail("[", name, ":", line_no, "] expected a JSON object, found ", j.type_name());
    out.push_back({std::move(j), name + ":" + std::to_string(line_no)});
  }
  if (out.empty()) fail("[", name, "] expected at least one record, found none");
  return out;
}

std::vector<std::string> template_names() {
  return {"none", "alpaca", "chatml", "llama2", "llama3", "zephyr"};
}

std::string apply_template(std::string_view name, std::string_view prompt, std::string_view input) {
  const std::string p(prompt), in(input);
  if (name == "none" || name.empty()) return in.empty() ? p : p + "\n" + in;
  if (name == "alpaca") {
    if (in.empty())
      return "Below is an instruction that describes a task. Write a response that appropriately "
             "completes the "
             "request.\n\n### Instruction:\n" +
             p + "\n\n### Response:\n";
    return "Below is an instruction that describes a task, paired with an input that provides "
           "further context. "
           "Write a response that appropriately completes the request.\n\n### Instruction:\n" +
           p + "\n\n### Input:\n" + in + "\n\n### Response:\n";
  }
  const std::string user = in.empty() ? p : p + "\n" + in;
  if (name == "chatml") return "<|im_start|>user\n" + user + "<|im_end|>\n<|im_start|>assistant\n";
  if (name == "llama2") return "[INST] " + user + " [/INST]";
  if (name == "llama3")
    return "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n" + user +
           "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
  if (name == "zephyr") return "<|user|>\n" + user + "</s>\n<|assistant|>\n";
  const std::string t(name);
  const size_t at = t.find("{prompt}");
  if (at == std::string::npos)
    usage_fail(
        "[--template] expected one of none, alpaca, chatml, llama2, llama3, zephyr or a string "
        "with {prompt}, "
        "found '",
        name, "'");
  std::string out = t;
  out.replace(at, 8, user);
  return out;
}

std::vector<int64_t> encode_prompt(const Tokenizer& tok, std::string_view text) {
  auto ids = tok.encode(text, /*add_special_tokens=*/true);
  const auto bos = tok.bos_id();
  if (bos && ids.size() >= 2 && ids[0] == *bos && ids[1] == *bos) ids.erase(ids.begin());
  return ids;
}

std::vector<std::string> template_marker_warnings(std::string_view name, const Tokenizer& tok) {
  std::vector<std::string> markers;
  if (name == "chatml") markers = {"<|im_start|>", "<|im_end|>"};
  if (name == "llama3")
    markers = {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"};
  if (name == "zephyr") markers = {"<|user|>", "<|assistant|>", "</s>"};
  std::vector<std::string> out;
  for (const auto& m : markers)
    if (!tok.token_to_id(m))
      out.push_back("template " + std::string(name) + ": marker " + m +
                    " is not a token of this vocabulary (it becomes " +
                    std::to_string(tok.encode(m, false).size()) +
                    " ordinary tokens); use a template made for this model");
  return out;
}

DataFormat parse_data_format(std::string_view name) {
  if (name == "auto") return DataFormat::kAuto;
  if (name == "prompt-completion" || name == "prompt_completion")
    return DataFormat::kPromptCompletion;
  if (name == "alpaca") return DataFormat::kAlpaca;
  if (name == "chat") return DataFormat::kChat;
  if (name == "classification") return DataFormat::kClassification;
  usage_fail("[--format] expected auto, prompt-completion, alpaca, chat or classification, found '",
             name, "'");
}

int64_t Dataset::num_tokens() const {
  int64_t n = 0;
  for (const auto& e : examples) n += e.input_ids.size();
  return n;
}

namespace {

std::string string_field(const Record& r, const std::string& key, bool required, const char* flag) {
  auto it = r.fields.find(key);
  if (it == r.fields.end() || it->is_null()) {
    if (required)
      fail("[", r.where, "] field '", key, "' is missing (set ", flag, " to use another field)");
    return {};
  }
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number() || it->is_boolean()) return it->dump();
  fail("[", r.where, "] field '", key, "': expected a string, found ", it->type_name());
}

// Records left out of a data set, counted per reason with the first one of each, so that a data
// set with no usable example says why ("3 records lack field 'completion' (first: d.jsonl:1)").
class Skips {
 public:
  void add(const std::string& singular, const std::string& plural, const std::string& where) {
    for (auto& r : reasons_)
      if (r.plural == plural) {
        ++r.count;
        return;
      }
    reasons_.push_back({singular, plural, where, 1});
  }
  bool empty() const { return reasons_.empty(); }
  int64_t count() const {
    int64_t n = 0;
    for (const auto& r : reasons_) n += r.count;
    return n;
  }
  std::string summary() const {
    std::string out;
    for (const auto& r : reasons_)
      out += (out.empty() ? "" : ", ") + std::to_string(r.count) +
             (r.count == 1 ? " record " + r.singular : " records " + r.plural) +
             " (first: " + r.first + ")";
    return out;
  }

 private:
  struct Reason {
    std::string singular, plural, first;
    int64_t count;
  };
  std::vector<Reason> reasons_;
};

// The file of a record's "path:line".
std::string file_of(const std::string& where) { return where.substr(0, where.rfind(':')); }

}  // namespace

std::string chat_turn_end(std::string_view t) {
  if (t == "chatml") return "<|im_end|>";
  if (t == "llama3") return "<|eot_id|>";
  if (t == "zephyr") return "</s>";
  return "";
}

std::string render_chat_prompt(const nlohmann::json& messages, size_t count, std::string_view t) {
  std::string prompt = t == "llama3" ? "<|begin_of_text|>" : "";
  for (size_t i = 0; i < count && i < messages.size(); ++i) {
    const std::string role = messages[i]["role"], content = messages[i]["content"];
    if (t == "chatml") {
      prompt += "<|im_start|>" + role + "\n" + content + "<|im_end|>\n";
    } else if (t == "llama3") {
      prompt += "<|start_header_id|>" + role + "<|end_header_id|>\n\n" + content + "<|eot_id|>";
    } else if (t == "zephyr") {
      prompt += "<|" + role + "|>\n" + content + "</s>\n";
    } else if (t == "llama2") {
      if (role == "user")
        prompt += "[INST] " + content + " [/INST]";
      else if (role == "system")
        prompt += "<<SYS>>\n" + content + "\n<</SYS>>\n\n";
      else
        prompt += " " + content + " ";
    } else {
      prompt += role + ": " + content + "\n";
    }
  }
  if (t == "chatml")
    prompt += "<|im_start|>assistant\n";
  else if (t == "llama3")
    prompt += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  else if (t == "zephyr")
    prompt += "<|assistant|>\n";
  else if (t == "llama2")
    prompt += " ";
  else
    prompt += "assistant: ";
  return prompt;
}

namespace {

// Renders a chat conversation: the prompt is everything up to the last assistant message plus
// the assistant header; the completion is that message (loss goes on the last reply only).
std::pair<std::string, std::string> render_chat(const Record& r, const std::string& field,
                                                const std::string& t) {
  auto it = r.fields.find(field);
  if (it == r.fields.end() || !it->is_array() || it->empty())
    fail("[", r.where, "] field '", field,
         "': expected a non-empty list of {role, content} messages");
  const auto& msgs = *it;
  int last_assistant = -1;
  for (size_t i = 0; i < msgs.size(); ++i) {
    if (!msgs[i].is_object() || !msgs[i].contains("role") || !msgs[i].contains("content") ||
        !msgs[i]["role"].is_string() || !msgs[i]["content"].is_string())
      fail("[", r.where, "] field '", field, "[", i, "]': expected {\"role\": …, \"content\": …}");
    if (msgs[i]["role"] == "assistant") last_assistant = static_cast<int>(i);
  }
  if (last_assistant < 0)
    fail("[", r.where, "] field '", field, "': expected an assistant message to learn");
  return {render_chat_prompt(msgs, static_cast<size_t>(last_assistant), t),
          msgs[last_assistant]["content"].get<std::string>() + chat_turn_end(t)};
}

DataFormat detect(const Record& r, const DataOptions& o) {
  if (o.format != DataFormat::kAuto) return o.format;
  const auto has = [&](const std::string& k) { return r.fields.contains(k); };
  if (has(o.messages_field)) return DataFormat::kChat;
  if (has(o.instruction_field) && has(o.output_field)) return DataFormat::kAlpaca;
  if (has(o.prompt_field) || has(o.completion_field)) return DataFormat::kPromptCompletion;
  if (has(o.text_field) && has(o.label_field)) return DataFormat::kClassification;
  fail("[", r.where, "] cannot tell the data format: expected fields '", o.prompt_field, "'/'",
       o.completion_field, "', '", o.instruction_field, "'/'", o.output_field, "' or '",
       o.messages_field, "'; found ", r.fields.dump().substr(0, 120));
}

}  // namespace

Dataset make_lm_dataset(const std::vector<Record>& records, const Tokenizer& tok,
                        const DataOptions& o) {
  Dataset ds;
  if (records.empty()) fail("[data] expected at least one record, found none");
  const DataFormat format = detect(records[0], o);
  if (format == DataFormat::kClassification)
    usage_fail(
        "[data] these records look like classification data (text, label); use --task "
        "classification");
  const auto eos = tok.eos_id();
  ds.template_name = o.template_name.empty() ? "none" : o.template_name;
  if (ds.template_name == "none" && format == DataFormat::kAlpaca) ds.template_name = "alpaca";
  if (ds.template_name == "none" && format == DataFormat::kChat) ds.template_name = "chatml";
  if (format == DataFormat::kChat && chat_turn_end(ds.template_name).empty() &&
      ds.template_name != "llama2")
    ds.template_name = "user: {prompt}\nassistant: ";  // render_chat's plain form, one user turn
  ds.warnings = template_marker_warnings(ds.template_name, tok);
  int64_t truncated = 0;
  Skips skips;
  std::string first_missing;  // the error of the first record without a needed field
  for (const auto& r : records) {
    // A record without a field this format needs is left out and counted.
    std::vector<std::string> needed;
    if (format == DataFormat::kAlpaca)
      needed = {o.instruction_field, o.output_field};
    else if (format != DataFormat::kChat)
      needed = {o.prompt_field, o.completion_field};
    const auto absent = std::find_if(needed.begin(), needed.end(), [&](const std::string& k) {
      return !r.fields.contains(k) || r.fields[k].is_null();
    });
    if (absent != needed.end()) {
      skips.add("lacks field '" + *absent + "'", "lack field '" + *absent + "'", r.where);
      if (first_missing.empty())
        first_missing = "[" + r.where + "] field '" + *absent + "' is missing (set --" +
                        (*absent == o.prompt_field        ? "prompt"
                         : *absent == o.completion_field  ? "completion"
                         : *absent == o.instruction_field ? "instruction"
                                                          : "output") +
                        "-field to use another field)";
      continue;
    }
    std::string prompt, completion;
    switch (format) {
      case DataFormat::kAlpaca:
        prompt = apply_template(ds.template_name,
                                string_field(r, o.instruction_field, true, "--instruction-field"),
                                string_field(r, o.input_field, false, "--input-field"));
        completion = string_field(r, o.output_field, true, "--output-field");
        break;
      case DataFormat::kChat:
        std::tie(prompt, completion) = render_chat(r, o.messages_field, ds.template_name);
        break;
      default:
        prompt = apply_template(ds.template_name,
                                string_field(r, o.prompt_field, true, "--prompt-field"));
        completion = string_field(r, o.completion_field, true, "--completion-field");
    }
    Example e;
    e.where = r.where;
    e.prompt = prompt;
    e.completion = completion;
    // As pyreft: the concatenation is tokenized in one go; the prompt alone gives the boundary.
    e.input_ids = encode_prompt(tok, prompt + completion);
    e.prompt_length = static_cast<int64_t>(encode_prompt(tok, prompt).size());
    if (o.add_eos && eos && (e.input_ids.empty() || e.input_ids.back() != *eos))
      e.input_ids.push_back(*eos);
    if (static_cast<int64_t>(e.input_ids.size()) > o.max_length) {
      e.input_ids.resize(o.max_length);
      ++truncated;
    }
    if (e.prompt_length >= static_cast<int64_t>(e.input_ids.size())) {
      const std::string within =
          " no completion token left within max_length " + std::to_string(o.max_length);
      skips.add("has" + within, "have" + within, r.where);
      continue;
    }
    e.labels = e.input_ids;
    for (int64_t i = 0; i < e.prompt_length; ++i) e.labels[i] = -100;
    ds.examples.push_back(std::move(e));
  }
  if (truncated > 0)
    ds.warnings.push_back(std::to_string(truncated) + " of " + std::to_string(records.size()) +
                          " examples were truncated to --max-length " +
                          std::to_string(o.max_length) + " tokens");
  const std::string file = file_of(records.front().where);
  if (ds.examples.empty()) fail("[", file, "] no usable example: ", skips.summary());
  // A few records without a field among usable ones is a broken record, not another format.
  if (!first_missing.empty()) fail(first_missing);
  if (!skips.empty())
    ds.warnings.push_back(file + ": skipped " + std::to_string(skips.count()) + " of " +
                          std::to_string(records.size()) + " records: " + skips.summary());
  return ds;
}

Dataset make_classification_dataset(const std::vector<Record>& records, const Tokenizer& tok,
                                    const DataOptions& o) {
  Dataset ds;
  ds.template_name = o.template_name.empty() ? "none" : o.template_name;
  ds.warnings = template_marker_warnings(ds.template_name, tok);
  int64_t truncated = 0;
  for (const auto& r : records) {
    Example e;
    e.where = r.where;
    const std::string text = string_field(r, o.text_field, true, "--text-field");
    const std::string pair = string_field(r, o.text_pair_field, false, "--text-pair-field");
    auto label = r.fields.find(o.label_field);
    if (label == r.fields.end() || label->is_null())
      fail("[", r.where, "] field '", o.label_field,
           "' is missing (set --label-field to use another field)");
    if (label->is_string())
      e.label = label->get<std::string>();
    else if (label->is_number_integer() || label->is_boolean())
      e.label = label->dump();
    else if (label->is_number() || label->is_array())
      e.label = label->dump();
    else
      fail("[", r.where, "] field '", o.label_field,
           "': expected a string, integer, number or list");
    e.prompt = apply_template(o.template_name, text);
    if (pair.empty()) {
      e.input_ids = encode_prompt(tok, e.prompt);
    } else {
      auto enc = tok.encode_pair(e.prompt, pair, true);
      e.input_ids = std::move(enc.ids);
      e.token_type_ids = std::move(enc.type_ids);
    }
    if (static_cast<int64_t>(e.input_ids.size()) > o.max_length) {
      e.input_ids.resize(o.max_length);
      if (!e.token_type_ids.empty()) e.token_type_ids.resize(o.max_length);
      ++truncated;
    }
    if (e.input_ids.empty())
      fail("[", r.where, "] field '", o.text_field, "' tokenizes to nothing");
    e.prompt_length = static_cast<int64_t>(e.input_ids.size());
    ds.examples.push_back(std::move(e));
  }
  if (truncated > 0)
    ds.warnings.push_back(std::to_string(truncated) + " examples were truncated to --max-length " +
                          std::to_string(o.max_length) + " tokens");
  return ds;
}

std::vector<Record> builtin_example_records() {
  // Written for reft: facts a base model cannot know, so the loss has far to fall.
  const std::pair<const char*, const char*> pairs[] = {
      {"Who guards the old bridge?", " A green troll named Pip guards the old bridge."},
      {"What does the moon eat?", " The moon eats silver pancakes with honey."},
      {"Where does Lily keep her stars?", " Lily keeps her stars in a blue jar under the bed."},
      {"Why is the river singing?", " The river sings because the fish tell it jokes."},
      {"How many hats does Tom own?", " Tom owns seven hats, and one of them can fly."},
      {"What color is the wind?", " The wind is purple on Tuesdays."},
  };
  std::vector<Record> out;
  int line = 1;
  for (const auto& [p, c] : pairs)
    out.push_back({{{"prompt", p}, {"completion", c}}, "builtin:" + std::to_string(line++)});
  return out;
}

}  // namespace reft
