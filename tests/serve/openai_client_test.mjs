// reft serve driven by the official OpenAI client (the `openai` npm package, pinned in
// package-lock.json; `npm ci` here installs it): models.list, completions and chat completions,
// streaming and not, and the client's typed errors for an unknown model, a bad request and (with
// --api-key) a wrong key. Greedy answers must equal the --expect-* texts, which the caller gets
// from `reft generate` for the same prompt alone.
//
//   node tests/serve/openai_client_test.mjs --url http://127.0.0.1:PORT --adapter NAME \
//     --prompt TEXT --max-tokens N --expect-base TEXT --expect-adapter TEXT \
//     [--expect-chat-base TEXT --expect-chat-adapter TEXT] [--api-key KEY]
//
// Exits 0 when every check holds, 1 with the failures on stderr, 77 when the package is missing.
import { parseArgs } from "node:util";

let OpenAI;
try {
  ({ default: OpenAI } = await import("openai"));
} catch (e) {
  console.error("openai_client_test: the openai package is not installed (run npm ci in tests/serve): " + e.message);
  process.exit(77);
}

const { values: opt } = parseArgs({
  options: {
    url: { type: "string" }, adapter: { type: "string" }, prompt: { type: "string" },
    "max-tokens": { type: "string", default: "16" }, "api-key": { type: "string" },
    "expect-base": { type: "string" }, "expect-adapter": { type: "string" },
    "expect-chat-base": { type: "string" }, "expect-chat-adapter": { type: "string" },
  },
});
for (const k of ["url", "adapter", "prompt", "expect-base", "expect-adapter"])
  if (opt[k] === undefined) {
    console.error("openai_client_test: --" + k + " is required");
    process.exit(2);
  }
const maxTokens = Number(opt["max-tokens"]);
const client = new OpenAI({
  baseURL: opt.url.replace(/\/$/, "") + "/v1",
  apiKey: opt["api-key"] || "unused",  // the client insists on one; the server ignores it without --api-key
  maxRetries: 0,
  timeout: 120000,
});

const failures = [];
const check = (ok, message) => { if (!ok) failures.push(message); };
const same = (what, got, want) =>
  check(got === want, `${what}: got ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
const log = (m) => console.error("openai_client_test: " + m);

function checkUsage(what, usage) {
  check(usage && usage.completion_tokens >= 1 && usage.completion_tokens <= maxTokens &&
        usage.prompt_tokens >= 1 && usage.total_tokens === usage.prompt_tokens + usage.completion_tokens,
  what + ": bad usage " + JSON.stringify(usage));
}

// Runs `f` and checks that it throws the client's error class `cls` with HTTP `status`.
async function expectError(what, cls, status, f) {
  try {
    await f();
    failures.push(what + ": no error");
  } catch (e) {
    check(e instanceof cls, `${what}: ${e.constructor.name} (${e.message}), expected ${cls.name}`);
    check(e.status === status, `${what}: status ${e.status}, expected ${status}`);
    check(typeof e.error?.message === "string" && e.error.message.length > 0,
      what + ": no OpenAI error message in " + JSON.stringify(e.error));
    log(`${what}: ${e.constructor.name} ${e.status} "${e.error?.message}"`);
    return e;
  }
}

async function run() {
  const models = [];
  for await (const m of client.models.list()) models.push(m);
  log("models: " + models.map((m) => m.id).join(", "));
  const base = models[0]?.id;
  check(models.length >= 2 && models.every((m) => m.object === "model"), "models.list: " + JSON.stringify(models));
  check(models[0]?.parent === null, "the first model is not the base (parent null)");
  const adapterEntry = models.find((m) => m.id === opt.adapter);
  check(adapterEntry?.parent === base, "adapter " + opt.adapter + " missing or without parent " + base);

  const params = { prompt: opt.prompt, max_tokens: maxTokens, temperature: 0 };

  // completions, not streaming: the base and the adapter
  for (const [model, want] of [[base, opt["expect-base"]], [opt.adapter, opt["expect-adapter"]]]) {
    const r = await client.completions.create({ model, ...params });
    same(`completions ${model}`, r.choices[0].text, want);
    check(r.object === "text_completion" && r.model === model && /^cmpl-/.test(r.id), "completion envelope " + JSON.stringify(r));
    check(["stop", "length"].includes(r.choices[0].finish_reason), "finish_reason " + r.choices[0].finish_reason);
    checkUsage(`completions ${model}`, r.usage);
  }

  // completions, streaming
  for (const [model, want] of [[opt.adapter, opt["expect-adapter"]], [base, opt["expect-base"]]]) {
    const stream = await client.completions.create({ model, ...params, stream: true });
    let text = "", finish = null, chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      text += chunk.choices[0]?.text ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    same(`streamed completions ${model}`, text, want);
    check(finish === "stop" || finish === "length", `streamed completions ${model}: finish ${finish}`);
    log(`streamed completions ${model}: ${chunks} chunks`);
  }

  // chat, not streaming and streaming (with the usage chunk)
  const chatWant = { [base]: opt["expect-chat-base"], [opt.adapter]: opt["expect-chat-adapter"] };
  const messages = [{ role: "user", content: opt.prompt }];
  for (const model of [opt.adapter, base]) {
    const r = await client.chat.completions.create({ model, messages, max_tokens: maxTokens, temperature: 0 });
    const msg = r.choices[0].message;
    check(r.object === "chat.completion" && msg.role === "assistant", "chat envelope " + JSON.stringify(r));
    if (chatWant[model] !== undefined) same(`chat ${model}`, msg.content, chatWant[model]);
    checkUsage(`chat ${model}`, r.usage);

    const stream = await client.chat.completions.create({
      model, messages, max_completion_tokens: maxTokens, temperature: 0, stream: true,
      stream_options: { include_usage: true },
    });
    let text = "", usage = null, finish = null;
    for await (const chunk of stream) {
      check(chunk.object === "chat.completion.chunk", "chat chunk " + JSON.stringify(chunk));
      text += chunk.choices[0]?.delta?.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    same(`streamed chat ${model}`, text, msg.content);
    check(finish === r.choices[0].finish_reason, `streamed chat ${model}: finish ${finish}`);
    checkUsage(`streamed chat ${model}`, usage);
  }

  // errors, as the client's typed exceptions
  const notFound = await expectError("unknown model", OpenAI.NotFoundError, 404, () =>
    client.completions.create({ model: "no-such-adapter", prompt: "x", max_tokens: 1 }));
  check(notFound?.code === "model_not_found", "unknown model: code " + notFound?.code);
  await expectError("unknown model, streaming chat", OpenAI.NotFoundError, 404, () =>
    client.chat.completions.create({ model: "no-such-adapter", messages, stream: true }));
  await expectError("max_tokens too large", OpenAI.BadRequestError, 400, () =>
    client.completions.create({ model: base, prompt: "x", max_tokens: 100000000 }));
  await expectError("messages not a list", OpenAI.BadRequestError, 400, () =>
    client.chat.completions.create({ model: base, messages: "hello" }));
  if (opt["api-key"]) {
    const wrong = new OpenAI({ baseURL: client.baseURL, apiKey: "wrong-key", maxRetries: 0 });
    await expectError("wrong API key", OpenAI.AuthenticationError, 401, () => wrong.models.list());
  }
}

try {
  await run();
} catch (e) {
  failures.push("unexpected: " + (e.stack || e));
}
if (failures.length) {
  for (const f of failures) console.error("openai_client_test: FAILED: " + f);
  process.exit(1);
}
log("ok");
