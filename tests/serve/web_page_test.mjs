// Drives reft serve's web page (GET /) in a real headless browser (Debian's chromium) over the
// Chrome DevTools Protocol, with node's own WebSocket (no npm packages): types and clicks like a
// user, checks what the page shows, and saves a screenshot.
//
//   node tests/serve/web_page_test.mjs --url http://127.0.0.1:PORT --adapter NAME \
//     --prompt TEXT --max-tokens N [--expect-base TEXT --expect-adapter TEXT] [--api-key KEY] \
//     [--chromium PATH] [--screenshot OUT.png] [--timeout-s 120]
//
// Checks, in order: with --api-key the page first asks for the key and works once it is typed;
// the model picker lists the base and the adapter; a chat answer streams in; side by side streams
// the base's and the adapter's answers into two columns (equal to --expect-* when given, so the
// greedy answers are the ones `reft generate` prints); an unknown model shows the server's error
// message; a link with the form in its fragment runs it after a reload (the key kept); every
// request the page made went to the server itself; every field has a label.
// Exits 0 when all hold, 1 with the first failure on stderr.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { checkPng } from "./png_check.mjs";

// node 20 has WebSocket behind a flag (22 has it by default): run again with the flag.
if (typeof WebSocket === "undefined") {
  if (process.execArgv.includes("--experimental-websocket")) {
    console.error("web_page_test: this node has no WebSocket (node >= 20.10 needed)");
    process.exit(77);
  }
  const again = spawnSync(process.execPath, ["--experimental-websocket", "--no-warnings",
    ...process.argv.slice(1)], { stdio: "inherit" });
  process.exit(again.status ?? 1);
}

const { values: opt } = parseArgs({
  options: {
    url: { type: "string" }, adapter: { type: "string" }, prompt: { type: "string", default: "Once upon a time" },
    "max-tokens": { type: "string", default: "24" }, "expect-base": { type: "string" },
    "expect-adapter": { type: "string" }, "api-key": { type: "string" },
    chromium: { type: "string", default: "chromium" }, screenshot: { type: "string" },
    "timeout-s": { type: "string", default: "120" },
  },
});
if (!opt.url || !opt.adapter) {
  console.error("usage: web_page_test.mjs --url URL --adapter NAME [--prompt TEXT] ...");
  process.exit(2);
}
const deadline = Date.now() + Number(opt["timeout-s"]) * 1000;
const step = (what) => console.error("web_page_test: " + what);
class Failure extends Error {}
const check = (ok, message) => { if (!ok) throw new Failure(message); };

// ---- chromium and a minimal DevTools Protocol client ----
// The profile and chromium's own temporary files (TMPDIR) in one folder, removed at the end.
const profile = mkdtempSync(join(tmpdir(), "reft-web-test-"));
mkdirSync(join(profile, "tmp"));
const browser = spawn(opt.chromium, [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
  "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
  "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
  "--user-data-dir=" + profile, "--window-size=1280,900", "about:blank",
], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, TMPDIR: join(profile, "tmp") } });
const browserExited = new Promise((resolve) => browser.on("exit", resolve));
let browserLog = "";

function devtoolsEndpoint() {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Failure("chromium did not start its DevTools endpoint in 60 s:\n" + browserLog)), 60000);
    browser.on("error", (e) => { clearTimeout(timer); reject(new Failure("cannot start " + opt.chromium + ": " + e.message)); });
    browser.on("exit", (code) => { clearTimeout(timer); reject(new Failure("chromium exited with " + code + ":\n" + browserLog)); });
    browser.stderr.on("data", (d) => {
      browserLog += d;
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(browserLog);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
  });
}

class Cdp {
  constructor(url) {
    this.ws = new WebSocket(url);
    this.next = 1;
    this.pending = new Map();
    this.listeners = [];
    this.ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.id && this.pending.has(msg.id)) {
        const { resolve, reject } = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        msg.error ? reject(new Failure("CDP " + JSON.stringify(msg.error))) : resolve(msg.result);
      } else if (msg.method) {
        for (const l of this.listeners) l(msg);
      }
    };
  }
  open() {
    return new Promise((resolve, reject) => {
      this.ws.onopen = resolve;
      this.ws.onerror = () => reject(new Failure("cannot connect to chromium's DevTools endpoint"));
    });
  }
  send(method, params = {}, sessionId) {
    const id = this.next++;
    this.ws.send(JSON.stringify({ id, method, params, sessionId }));
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let cdp, session;
const page = (method, params) => cdp.send(method, params, session);

// Evaluates `expression` in the page and returns its (JSON-serialisable) value.
async function evaluate(expression) {
  const r = await page("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true });
  if (r.exceptionDetails) throw new Failure("in the page: " + expression + ": " + JSON.stringify(r.exceptionDetails));
  return r.result.value;
}

// Polls `expression` until it is truthy; fails with `what` (and the page's state) at the deadline.
async function waitFor(expression, what, seconds = 60) {
  const until = Math.min(deadline, Date.now() + seconds * 1000);
  while (Date.now() < until) {
    const v = await evaluate(expression);
    if (v) return v;
    await sleep(50);
  }
  const state = await evaluate(`(() => { const t = (id) => document.getElementById(id)?.innerText;
    return JSON.stringify({url: location.href, title: document.title, status: t("status"), error: t("error"),
      chat: t("chat-log"), base: t("col-base"), adapter: t("col-adapter")}); })()`);
  throw new Failure("timed out waiting for " + what + "; page state: " + state);
}

// A real mouse click in the middle of the element with this id.
async function click(id) {
  const box = await evaluate(`(() => { const e = document.getElementById(${JSON.stringify(id)});
    e.scrollIntoView({block: "center"}); const r = e.getBoundingClientRect();
    return {x: r.x + r.width / 2, y: r.y + r.height / 2, disabled: !!e.disabled}; })()`);
  check(!box.disabled, "#" + id + " is disabled when it should be clickable");
  for (const type of ["mousePressed", "mouseReleased"])
    await page("Input.dispatchMouseEvent", { type, x: box.x, y: box.y, button: "left", clickCount: 1 });
}

// Focuses the field, clears it and types `text` as keyboard input.
async function type(id, text) {
  await evaluate(`(() => { const e = document.getElementById(${JSON.stringify(id)}); e.focus(); e.select && e.select(); })()`);
  await page("Input.dispatchKeyEvent", { type: "keyDown", key: "Backspace", code: "Backspace", windowsVirtualKeyCode: 8 });
  await page("Input.dispatchKeyEvent", { type: "keyUp", key: "Backspace", code: "Backspace", windowsVirtualKeyCode: 8 });
  await page("Input.insertText", { text });
}

async function choose(id, value) {
  await evaluate(`(() => { const e = document.getElementById(${JSON.stringify(id)});
    e.value = ${JSON.stringify(value)}; e.dispatchEvent(new Event("change", {bubbles: true})); })()`);
}

async function run() {
  const endpoint = await devtoolsEndpoint();
  cdp = new Cdp(endpoint);
  await cdp.open();
  const { targetId } = await cdp.send("Target.createTarget", { url: "about:blank" });
  ({ sessionId: session } = await cdp.send("Target.attachToTarget", { targetId, flatten: true }));
  const pageErrors = [], requests = [];
  cdp.listeners.push((msg) => {
    if (msg.sessionId !== session) return;
    if (msg.method === "Runtime.exceptionThrown") pageErrors.push(JSON.stringify(msg.params.exceptionDetails));
    if (msg.method === "Network.requestWillBeSent") requests.push(msg.params.request.url);
  });
  await page("Runtime.enable");
  await page("Network.enable");
  await page("Page.enable");
  await page("Emulation.setDeviceMetricsOverride", { width: 1280, height: 900, deviceScaleFactor: 1, mobile: false });
  const origin = new URL(opt.url).origin;

  step("load " + opt.url);
  await page("Page.navigate", { url: opt.url });
  await waitFor(`document.readyState === "complete" && typeof $ === "function"`, "the page to load", 30);

  if (opt["api-key"]) {
    step("API key: asked for, then typed");
    await waitFor(`$("status").textContent === "API key needed"`, "the page to ask for the API key");
    check(await evaluate(`!$("error").hidden && /API key/.test($("error").textContent)`),
      "the 401 from /v1/models is not shown as an error mentioning the API key");
    await type("api-key", opt["api-key"]);
    await evaluate(`$("api-key").dispatchEvent(new Event("change"))`);
  }
  await waitFor(`$("status").textContent.startsWith("Connected")`, "the model list");
  if (opt["api-key"])
    check(await evaluate(`localStorage.getItem("reft-serve-api-key")`) === opt["api-key"],
      "the API key is not kept in localStorage");
  const ids = await evaluate(`[...$("model").options].map((o) => o.value)`);
  step("models: " + ids.join(", "));
  check(ids.includes(opt.adapter), "the model picker lacks the adapter " + opt.adapter + ": " + ids);
  const base = ids[0];

  step("labels: every field has one");
  const unlabelled = await evaluate(`[...document.querySelectorAll("input, select, textarea")]
    .filter((e) => !e.labels.length && !e.getAttribute("aria-label")).map((e) => e.id)`);
  check(unlabelled.length === 0, "fields without a label: " + unlabelled);

  step("settings: max tokens " + opt["max-tokens"] + ", temperature 0 (the default)");
  check(await evaluate(`$("temperature").value`) === "0", "temperature does not default to 0");
  await type("max-tokens", opt["max-tokens"]);
  await choose("format", "completion");  // the same prompt as `reft generate --prompt`

  step("chat with the base model");
  await choose("model", base);
  await type("chat-input", opt.prompt);
  await click("chat-send");
  await waitFor(`(() => { const m = document.querySelector(".msg.assistant"); return m && m.dataset.state === "done"; })()`,
    "the base model's chat answer");
  const chatAnswer = await evaluate(`document.querySelector(".msg.assistant .text").textContent`);
  check(chatAnswer.length > 0, "the chat answer is empty");
  if (opt["expect-base"] !== undefined)
    check(chatAnswer === opt["expect-base"], "chat answer " + JSON.stringify(chatAnswer) + " != expected " + JSON.stringify(opt["expect-base"]));

  step("side by side: base vs " + opt.adapter);
  await click("tab-compare");
  await waitFor(`!$("panel-compare").hidden && $("panel-chat").hidden`, "the side-by-side panel");
  await choose("adapter", opt.adapter);
  await type("compare-input", opt.prompt);
  await click("compare-send");
  await waitFor(`$("col-base").dataset.state === "streaming" || $("col-base").dataset.state === "done"`, "the base column to start");
  await waitFor(`["done", "error"].includes($("col-base").dataset.state) && ["done", "error"].includes($("col-adapter").dataset.state)`,
    "both columns to finish");
  const cols = await evaluate(`["col-base", "col-adapter"].map((id) => ({state: $(id).dataset.state,
    chunks: Number($(id).dataset.chunks), text: $(id).querySelector(".text").textContent,
    title: $(id).querySelector("h2").textContent}))`);
  step("columns: " + JSON.stringify(cols));
  for (const c of cols) {
    check(c.state === "done", c.title + " ended with " + c.state + ": " + c.text);
    check(c.chunks >= 1 && c.text.length > 0, c.title + " received no streamed text");
  }
  check(cols[0].title.includes(base) && cols[1].title.includes(opt.adapter), "the column titles do not name the models");
  check(cols[0].text === chatAnswer, "the base column differs from the base model's chat answer (greedy)");
  if (opt["expect-base"] !== undefined) check(cols[0].text === opt["expect-base"], "base column != expected");
  if (opt["expect-adapter"] !== undefined)
    check(cols[1].text === opt["expect-adapter"], "adapter column " + JSON.stringify(cols[1].text) + " != expected " + JSON.stringify(opt["expect-adapter"]));
  check(await evaluate(`$("error").hidden`), "an error is shown after a good comparison");

  step("screenshot");
  if (opt.screenshot) {
    const shot = await page("Page.captureScreenshot", { format: "png" });
    const png = Buffer.from(shot.data, "base64");
    writeFileSync(opt.screenshot, png);
    const info = checkPng(png);
    step("screenshot " + opt.screenshot + ": " + JSON.stringify(info));
    check(info.width === 1280 && info.height === 900, "screenshot size " + info.width + "x" + info.height);
    check(info.colors >= 16, "the screenshot has only " + info.colors + " colours: nothing rendered?");
  }

  step("an unknown model shows the server's error message");
  await click("tab-chat");
  await evaluate(`$("model").append(new Option("no-such-model", "no-such-model"))`);
  await choose("model", "no-such-model");
  await type("chat-input", "hello");
  await click("chat-send");
  await waitFor(`!$("error").hidden`, "the error display");
  const error = await evaluate(`$("error").textContent`);
  step("error shown: " + error);
  check(/no-such-model/.test(error) && /404/.test(error), "the error display lacks the server's message: " + error);

  step("a link (#mode=compare&...&run) reloads with the kept API key and runs the comparison");
  const link = new URLSearchParams({ mode: "compare", adapter: opt.adapter, prompt: opt.prompt,
    format: "completion", max_tokens: opt["max-tokens"], run: "" });
  await page("Page.navigate", { url: "about:blank" });
  await waitFor(`location.href === "about:blank"`, "about:blank", 30);
  await page("Page.navigate", { url: new URL("/#" + link, opt.url).href });
  await waitFor(`document.readyState === "complete" && typeof $ === "function"`, "the page to reload", 30);
  await waitFor(`["done", "error"].includes($("col-base").dataset.state) && ["done", "error"].includes($("col-adapter").dataset.state)`,
    "the linked comparison");
  const linked = await evaluate(`["col-base", "col-adapter"].map((id) => $(id).querySelector(".text").textContent)`);
  check(linked[0] === cols[0].text && linked[1] === cols[1].text,
    "the linked comparison differs: " + JSON.stringify(linked));

  const foreign = requests.filter((u) => !u.startsWith(origin + "/"));
  check(foreign.length === 0, "the page loaded resources from elsewhere: " + foreign);
  check(pageErrors.length === 0, "JavaScript errors in the page: " + pageErrors);
  step("ok (" + requests.length + " requests, all to " + origin + ")");
}

// Closes chromium (politely, then SIGKILL after 10 s) and removes its profile.
async function cleanup() {
  if (browser.exitCode === null && browser.signalCode === null) {
    try { if (cdp) await Promise.race([cdp.send("Browser.close"), sleep(2000)]); } catch (_) { /* killed below */ }
    const killer = setTimeout(() => browser.kill("SIGKILL"), 10000);
    await browserExited;
    clearTimeout(killer);
  }
  try { rmSync(profile, { recursive: true, force: true }); } catch (_) { /* best effort */ }
}

let code = 0;
const timer = setTimeout(async () => {
  console.error("web_page_test: FAILED: overall timeout");
  browser.kill("SIGKILL");
  await cleanup();
  process.exit(1);
}, Math.max(1, deadline - Date.now()) + 5000);
try {
  await run();
} catch (e) {
  console.error("web_page_test: FAILED: " + (e instanceof Failure ? e.message : e.stack));
  code = 1;
}
clearTimeout(timer);
await cleanup();
process.exit(code);
