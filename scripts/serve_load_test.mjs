#!/usr/bin/env node
// Load test for a running `reft serve` (starts nothing; loopback only by intent): --clients
// concurrent clients send --requests requests in all, spread over the base model and --adapters,
// completions and chat, streaming and not, plus a --malformed-share of bad requests (broken JSON,
// wrong types, unknown model, prompts longer than the context, max_tokens too large, bodies over
// --max-body with a Content-Length or chunked, unknown routes) and a few streams dropped mid-way.
// Bounded in count and in time.
//
//   node scripts/serve_load_test.mjs --url http://127.0.0.1:8080 --adapters a,b,c \
//     [--clients 64] [--requests 3000] [--malformed-share 0.1] [--disconnect-share 0.02] \
//     [--max-tokens 8] [--ctx 2048] [--max-body 1048576] [--timeout-s 600] [--pid PID] [--api-key KEY]
//
// Prints one JSON report on stdout and exits 1 when any of these fails:
//   - every well-formed request answered 200 with a complete, well-shaped body (streams end with
//     data: [DONE], no error event) and usage within max_tokens;
//   - greedy answers agree: the same (endpoint, model, prompt, max_tokens) gives the same text
//     every time, whatever else was in the batch, streaming or not;
//   - every malformed request answered 4xx with OpenAI's error JSON;
//   - the server is healthy at the end, and (with --pid) its memory is flat: resident size at the
//     end ≤ 1.2 × after warm-up + 16 MiB;
//   - everything done within --timeout-s.
// Exit 2: bad arguments or a server that is not up.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

const { values: a } = parseArgs({
  options: {
    url: { type: "string" }, adapters: { type: "string", default: "" },
    clients: { type: "string", default: "64" }, requests: { type: "string", default: "3000" },
    "malformed-share": { type: "string", default: "0.1" }, "disconnect-share": { type: "string", default: "0.02" },
    "max-tokens": { type: "string", default: "8" }, ctx: { type: "string", default: "2048" },
    "max-body": { type: "string", default: "1048576" }, "timeout-s": { type: "string", default: "600" },
    "request-timeout-s": { type: "string", default: "120" }, pid: { type: "string" },
    "api-key": { type: "string" }, seed: { type: "string", default: "1" },
  },
});
const usage = (msg) => { console.error("serve_load_test: " + msg); process.exit(2); };
if (!a.url) usage("--url is required (the server's base URL, e.g. http://127.0.0.1:8080)");
const url = a.url.replace(/\/$/, "");
const num = (k, lo, hi) => {
  const v = Number(a[k]);
  if (!Number.isFinite(v) || v < lo || v > hi) usage(`--${k} must be a number in [${lo}, ${hi}], found ${a[k]}`);
  return v;
};
const clients = num("clients", 1, 1024), total = num("requests", 1, 1e6);
const malformedShare = num("malformed-share", 0, 1), disconnectShare = num("disconnect-share", 0, 1);
const maxTokens = num("max-tokens", 1, 4096), ctx = num("ctx", 2, 1 << 20), maxBody = num("max-body", 16, 1 << 30);
const timeoutMs = num("timeout-s", 1, 86400) * 1000, requestTimeoutMs = num("request-timeout-s", 1, 3600) * 1000;
const pid = a.pid ? num("pid", 1, 1 << 30) : null;
const started = Date.now();

// A small seeded generator (mulberry32), so a run's mix can be repeated.
let rngState = num("seed", 0, 2 ** 32) >>> 0;
function random() {
  rngState = (rngState + 0x6d2b79f5) >>> 0;
  let t = rngState;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (list) => list[Math.floor(random() * list.length)];

const headers = { "Content-Type": "application/json" };
if (a["api-key"]) headers.Authorization = "Bearer " + a["api-key"];

function rssKiB() {
  if (!pid) return null;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : null;
}

// ---- the requests ----
const prompts = ["Once upon a time", "The little dog", "Lily and Ben went to the park.",
  "One day, a girl named Sue", "The sun was hot and", "Tom had a red ball"];

function wellFormed(models) {
  const chat = random() < 0.5, stream = random() < 0.5, greedy = random() < 0.7;
  const model = pick(models), prompt = pick(prompts);
  const body = { model, max_tokens: 1 + Math.floor(random() * maxTokens), stream };
  if (greedy) body.temperature = 0;
  else Object.assign(body, { temperature: 0.8, top_p: 0.9, seed: Math.floor(random() * 1000) });
  if (chat) body.messages = [{ role: "user", content: prompt }];
  else body.prompt = prompt;
  if (stream && chat && random() < 0.5) body.stream_options = { include_usage: true };
  const drop = stream && random() < disconnectShare;
  return { kind: drop ? "dropped_stream" : "ok", path: chat ? "/v1/chat/completions" : "/v1/completions",
           body: JSON.stringify(body), parsed: body, chat, stream, greedy, drop };
}

// Each returns {kind, path, body[, method]}; every one must be answered 4xx.
function malformed(models) {
  const model = pick(models);
  const longText = "once upon a time ".repeat(ctx);  // ≥ 4 tokens a repeat whatever the tokenizer
  const cases = [
    () => ({ kind: "bad_json", path: "/v1/completions", body: `{"model": "${model}", "prompt": "Once` }),
    () => ({ kind: "bad_json", path: "/v1/chat/completions", body: "{messages: []}" }),
    () => ({ kind: "not_object", path: "/v1/completions", body: "[1, 2, 3]" }),
    () => ({ kind: "wrong_type", path: "/v1/completions", body: JSON.stringify({ model, prompt: "Hi", max_tokens: "ten" }) }),
    () => ({ kind: "wrong_type", path: "/v1/completions", body: JSON.stringify({ model, prompt: { text: "Hi" } }) }),
    () => ({ kind: "wrong_type", path: "/v1/completions", body: JSON.stringify({ model, prompt: "Hi", temperature: "hot" }) }),
    () => ({ kind: "wrong_type", path: "/v1/chat/completions", body: JSON.stringify({ model, messages: "Hi" }) }),
    () => ({ kind: "wrong_type", path: "/v1/chat/completions", body: JSON.stringify({ model, messages: [{ role: "user", content: 7 }] }) }),
    () => ({ kind: "wrong_type", path: "/v1/chat/completions", body: JSON.stringify({ model, messages: [{ role: "user", content: "Hi" }], stream: "yes" }) }),
    () => ({ kind: "missing_field", path: "/v1/chat/completions", body: JSON.stringify({ model }) }),
    () => ({ kind: "negative_max_tokens", path: "/v1/completions", body: JSON.stringify({ model, prompt: "Hi", max_tokens: -3 }) }),
    () => ({ kind: "unknown_model", path: "/v1/completions", body: JSON.stringify({ model: "no-such-adapter-" + Math.floor(random() * 1e6), prompt: "Hi" }) }),
    () => ({ kind: "unknown_model", path: "/v1/chat/completions", body: JSON.stringify({ model: "../etc/passwd", messages: [{ role: "user", content: "Hi" }], stream: true }) }),
    () => ({ kind: "prompt_too_long", path: "/v1/completions", body: JSON.stringify({ model, prompt: longText, stream: random() < 0.5 }) }),
    () => ({ kind: "prompt_too_long", path: "/v1/completions", body: JSON.stringify({ model, prompt: new Array(ctx + 8).fill(5) }) }),
    () => ({ kind: "prompt_too_long", path: "/v1/chat/completions", body: JSON.stringify({ model, messages: [{ role: "user", content: longText }] }) }),
    () => ({ kind: "max_tokens_too_large", path: "/v1/completions", body: JSON.stringify({ model, prompt: "Hi", max_tokens: ctx * 4 }) }),
    () => ({ kind: "body_too_large", path: "/v1/completions", body: JSON.stringify({ model, prompt: "x".repeat(maxBody + 1024) }) }),
    // The same limit for a body sent in chunks (no Content-Length): valid JSON padded with spaces.
    () => ({ kind: "chunked_body_too_large", path: "/v1/completions", chunked: true,
             body: JSON.stringify({ model, prompt: "Hi", max_tokens: 1 }) + " ".repeat(maxBody + 1024) }),
    () => ({ kind: "invalid_utf8", path: "/v1/completions", body: Buffer.concat([Buffer.from(`{"model":"${model}","prompt":"`), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}')]) }),
    () => ({ kind: "unknown_route", path: "/v1/no-such-route", body: "{}" }),
  ];
  return pick(cases)();
}

// ---- one request, checked ----
const report = {
  config: { url, clients, requests: total, malformed_share: malformedShare, disconnect_share: disconnectShare, max_tokens: maxTokens },
  counts: { sent: 0, well_formed: 0, well_formed_ok: 0, streaming: 0, chat: 0, dropped_streams: 0, malformed: 0, malformed_4xx: 0 },
  by_model: {}, malformed_kinds: {}, statuses: {},
  failures: { well_formed: 0, malformed_not_4xx: 0, greedy_mismatches: 0 },
  examples: [],
};
const latencies = [], firstTokens = [];
const greedyAnswers = new Map();
const bump = (obj, key) => { obj[key] = (obj[key] || 0) + 1; };
function fail(counter, req, detail) {
  report.failures[counter]++;
  if (report.examples.length < 20)
    report.examples.push({ failure: counter, kind: req.kind, path: req.path,
      body: String(req.body).slice(0, 300), detail: String(detail).slice(0, 600) });
}

// The text and problems of a server-sent-events body.
function parseEvents(text, chat) {
  const problems = [];
  let out = "", finish = null, done = false, usage = null;
  for (const line of text.split("\n")) {
    if (!line.startsWith("data:")) continue;
    const data = line.slice(5).trim();
    if (done) problems.push("an event after [DONE]");
    if (data === "[DONE]") { done = true; continue; }
    let chunk;
    try { chunk = JSON.parse(data); } catch (_) { problems.push("event is not JSON: " + data.slice(0, 80)); continue; }
    if (chunk.error) { problems.push("error event: " + JSON.stringify(chunk.error)); continue; }
    if (chunk.usage) usage = chunk.usage;
    const c = chunk.choices?.[0];
    if (!c) continue;
    out += (chat ? c.delta?.content : c.text) ?? "";
    if (c.finish_reason) finish = c.finish_reason;
  }
  if (!done) problems.push("no data: [DONE]");
  return { text: out, finish, usage, problems };
}

async function send(req, controller) {
  const t0 = performance.now();
  let body = req.body, duplex;
  if (req.chunked) {  // a stream body: fetch sends it with Transfer-Encoding: chunked
    const bytes = Buffer.from(req.body);
    body = new ReadableStream({
      start(c) {
        for (let i = 0; i < bytes.length; i += 16384) c.enqueue(bytes.subarray(i, i + 16384));
        c.close();
      },
    });
    duplex = "half";
  }
  const res = await fetch(url + req.path, { method: req.method || "POST", headers, body, duplex, signal: controller.signal });
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = "", firstByte = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    if (firstByte === null) firstByte = performance.now() - t0;
    text += decoder.decode(value, { stream: true });
    if (req.drop && text.includes("data:")) {  // a client that goes away mid-stream
      controller.abort();
      return { status: res.status, dropped: true };
    }
  }
  return { status: res.status, body: text + decoder.decode(), ms: performance.now() - t0, firstByte,
           contentType: res.headers.get("content-type") || "" };
}

async function one(req) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error("request timeout")), requestTimeoutMs);
  report.counts.sent++;
  let r;
  try {
    r = await send(req, controller);
  } catch (e) {
    r = { status: 0, error: (e.cause?.message || e.message || String(e)) };
  } finally {
    clearTimeout(timer);
  }
  bump(report.statuses, String(r.status));
  if (req.kind === "dropped_stream") {
    report.counts.dropped_streams++;
    if (r.status !== 200) fail("well_formed", req, `dropped stream answered ${r.status} ${r.error || ""}`);
    return;
  }
  if (req.kind !== "ok") {
    report.counts.malformed++;
    bump(report.malformed_kinds, req.kind);
    let shaped = false;
    try { shaped = typeof JSON.parse(r.body).error.message === "string"; } catch (_) { /* not JSON */ }
    if (r.status >= 400 && r.status < 500 && shaped) report.counts.malformed_4xx++;
    else fail("malformed_not_4xx", req, `status ${r.status} ${r.error || ""} body ${r.body}`);
    return;
  }
  report.counts.well_formed++;
  const p = req.parsed;
  bump(report.by_model, p.model);
  if (req.stream) report.counts.streaming++;
  if (req.chat) report.counts.chat++;
  if (r.status !== 200) return fail("well_formed", req, `status ${r.status} ${r.error || ""} body ${r.body}`);
  let text, finish, usage;
  if (req.stream) {
    if (!r.contentType.startsWith("text/event-stream")) return fail("well_formed", req, "content-type " + r.contentType);
    const ev = parseEvents(r.body, req.chat);
    if (ev.problems.length) return fail("well_formed", req, ev.problems.join("; "));
    ({ text, finish, usage } = ev);
    firstTokens.push(r.firstByte);
  } else {
    let j;
    try { j = JSON.parse(r.body); } catch (e) { return fail("well_formed", req, "body is not JSON: " + r.body); }
    const c = j.choices?.[0];
    text = req.chat ? c?.message?.content : c?.text;
    finish = c?.finish_reason;
    usage = j.usage;
    if (j.object !== (req.chat ? "chat.completion" : "text_completion") || j.model !== p.model)
      return fail("well_formed", req, "envelope " + r.body);
  }
  if (typeof text !== "string" || !["stop", "length"].includes(finish))
    return fail("well_formed", req, `text ${JSON.stringify(text)} finish ${finish}`);
  if (usage && !(usage.completion_tokens <= p.max_tokens && usage.total_tokens === usage.prompt_tokens + usage.completion_tokens))
    return fail("well_formed", req, "usage " + JSON.stringify(usage));
  if (!req.stream && !usage) return fail("well_formed", req, "no usage");
  latencies.push(r.ms);
  report.counts.well_formed_ok++;
  if (req.greedy) {
    const key = JSON.stringify([req.path, p.model, req.chat ? p.messages : p.prompt, p.max_tokens]);
    const seen = greedyAnswers.get(key);
    if (seen === undefined) greedyAnswers.set(key, text);
    else if (seen !== text) fail("greedy_mismatches", req, `got ${JSON.stringify(text)}, earlier ${JSON.stringify(seen)}`);
  }
}

// ---- the run ----
async function main() {
  let models;
  try {
    const health = await fetch(url + "/health");
    const res = await fetch(url + "/v1/models", { headers });
    if (health.status !== 200 || res.status !== 200) throw new Error(`/health ${health.status}, /v1/models ${res.status}`);
    const data = (await res.json()).data;
    const base = data.find((m) => m.parent === null)?.id;
    const adapters = a.adapters ? a.adapters.split(",").filter(Boolean) : [];
    const missing = adapters.filter((n) => !data.some((m) => m.id === n));
    if (!base || missing.length) throw new Error("not served: " + (base ? missing : "the base model"));
    models = [base, ...adapters];
  } catch (e) {
    usage("the server at " + url + " is not ready: " + (e.cause?.message || e.message));
  }

  const memory = { start_kib: rssKiB(), warm_kib: null, middle_kib: null, end_kib: null, max_kib: null };
  const sampler = pid ? setInterval(() => { memory.max_kib = Math.max(memory.max_kib || 0, rssKiB() || 0); }, 500) : null;
  const warmAt = Math.ceil(total * 0.1), middleAt = Math.ceil(total * 0.5);
  let next = 0, finished = 0, timedOut = false;
  const deadline = started + timeoutMs;
  async function client() {
    while (next < total) {
      if (Date.now() > deadline) { timedOut = true; return; }
      next++;
      await one(random() < malformedShare ? malformed(models) : wellFormed(models));
      finished++;
      if (finished === warmAt) memory.warm_kib = rssKiB();
      if (finished === middleAt) memory.middle_kib = rssKiB();
    }
  }
  await Promise.all(Array.from({ length: clients }, client));
  if (sampler) clearInterval(sampler);

  // Let dropped streams' rows be freed, then check the server is still well.
  await new Promise((r) => setTimeout(r, 500));
  let healthy = false;
  try { healthy = (await fetch(url + "/health")).status === 200; } catch (_) { /* not healthy */ }
  memory.end_kib = rssKiB();
  if (memory.warm_kib === null) memory.warm_kib = memory.start_kib;

  const pct = (xs, q) => {
    if (!xs.length) return null;
    const s = [...xs].sort((x, y) => x - y);
    return Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))] * 10) / 10;
  };
  report.latency_ms = { p50: pct(latencies, 0.5), p99: pct(latencies, 0.99), max: pct(latencies, 1) };
  report.stream_first_byte_ms = { p50: pct(firstTokens, 0.5), p99: pct(firstTokens, 0.99) };
  report.greedy_prompts_compared = greedyAnswers.size;
  report.seconds = Math.round((Date.now() - started) / 100) / 10;
  report.memory = memory;
  const violations = [];
  if (report.failures.well_formed) violations.push(report.failures.well_formed + " well-formed requests failed");
  if (report.failures.greedy_mismatches) violations.push(report.failures.greedy_mismatches + " greedy answers differ from an earlier identical request");
  if (report.failures.malformed_not_4xx) violations.push(report.failures.malformed_not_4xx + " malformed requests not answered 4xx with an error JSON");
  if (timedOut) violations.push(`--timeout-s reached after ${report.counts.sent} of ${total} requests`);
  if (!healthy) violations.push("GET /health is not 200 after the run");
  if (pid) {
    const limit = 1.2 * memory.warm_kib + 16 * 1024;
    memory.flat = memory.end_kib !== null && memory.end_kib <= limit;
    memory.limit_kib = Math.round(limit);
    if (!memory.flat) violations.push(`memory not flat: ${memory.end_kib} KiB at the end, > 1.2 × ${memory.warm_kib} KiB after warm-up + 16 MiB`);
  }
  report.violations = violations;
  report.ok = violations.length === 0;
  console.log(JSON.stringify(report, null, 2));
  process.exit(report.ok ? 0 : 1);
}

main().catch((e) => {
  console.error("serve_load_test: " + (e.stack || e));
  process.exit(1);
});
