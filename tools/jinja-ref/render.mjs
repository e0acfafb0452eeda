// Renders chat templates with @huggingface/jinja, the reference implementation of HF chat
// templates (Template() applies trim_blocks and lstrip_blocks, as transformers does).
//   node render.mjs < case.json        case.json: {"template": "...", "context": {...}}: prints the
//                                      rendering exactly (an error: its message on stderr, exit 1)
//   node render.mjs < batch.json > results.json
// batch.json: {"now": <seconds since the epoch>, "cases": [{"template": "...", "context": {...}}]}
// results.json: [{"output": "..."} | {"error": "..."}], one per case, in order.
// The clock of strftime_now is fixed to `now` (UTC) so that renderings are reproducible.
process.env.TZ = "UTC";
import { readFileSync } from "node:fs";
import { Template } from "@huggingface/jinja";

export function withFixedClock(seconds, fn) {
  const RealDate = globalThis.Date;
  class FixedDate extends RealDate {
    constructor(...args) {
      if (args.length === 0) super(seconds * 1000);
      else super(...args);
    }
    static now() {
      return seconds * 1000;
    }
  }
  globalThis.Date = FixedDate;
  try {
    return fn();
  } finally {
    globalThis.Date = RealDate;
  }
}

export function renderCase(template, context) {
  try {
    return { output: new Template(template).render(context) };
  } catch (e) {
    return { error: String(e && e.message !== undefined ? e.message : e) };
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const input = JSON.parse(readFileSync(0, "utf8"));
  if (input.cases === undefined) {
    // One {"template", "context"[, "now"]}: the rendering itself, as `reft render-chat` prints it.
    const run = () => renderCase(input.template, input.context ?? {});
    const result = input.now === undefined ? run() : withFixedClock(input.now, run);
    if ("error" in result) {
      process.stderr.write(`error: ${result.error}\n`);
      process.exit(1);
    }
    process.stdout.write(result.output);
  } else {
    const results = withFixedClock(input.now ?? 0, () =>
      input.cases.map((c) => renderCase(c.template, c.context)),
    );
    process.stdout.write(JSON.stringify(results));
  }
}
