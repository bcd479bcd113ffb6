// The shared event fixture and the fields the panel reads agree with the protocol's checked-in JSON Schema
// (ltx_train_lib/events.schema.json, generated from the pydantic models in ltx_train_lib/events.py).
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { test } from "node:test";

import { TERMINAL } from "../web/lib/monitor_state.js";
import { validate } from "./schema_subset.mjs";

const SCHEMA = JSON.parse(readFileSync(new URL("../ltx_train_lib/events.schema.json", import.meta.url), "utf8"));
const FIXTURE = readFileSync(new URL("../tests/fixtures/monitor_events_resume.jsonl", import.meta.url), "utf8")
  .split("\n")
  .filter(Boolean)
  .map((l) => JSON.parse(l));
const KINDS = Object.keys(SCHEMA.discriminator.mapping);
const branch = (kind) => SCHEMA.$defs[SCHEMA.discriminator.mapping[kind].split("/").pop()];
const valid = (ev) => validate(ev, SCHEMA);

test("every event of the shared fixture conforms to the schema", () => {
  assert.equal(FIXTURE.length, 18);
  for (const [i, ev] of FIXTURE.entries()) assert.deepEqual(valid(ev), [], `line ${i + 1}: ${JSON.stringify(ev)}`);
  // every kind but error (which ends a run, as done does here); kinds added later need not be in it
  const kinds = new Set(FIXTURE.map((e) => e.event));
  for (const kind of ["started", "step", "sample", "checkpoint", "cancelled", "done"]) assert.ok(kinds.has(kind), kind);
});

test("the validator rejects what the protocol forbids", () => {
  const step = FIXTURE.find((e) => e.event === "step");
  const done = FIXTURE.find((e) => e.event === "done");
  assert.deepEqual(valid(step), []);
  assert.match(valid({ ...step, loss: "0.5" }).join(), /\$\.loss: expected number, got string/);
  assert.match(valid({ ...step, step: 1.5 }).join(), /\$\.step: expected integer/);
  assert.match(valid({ ...step, step: 0 }).join(), /below the minimum 1/);
  assert.match(valid({ ...step, extra: 1 }).join(), /field extra is not in the schema/);
  const { lr, ...noLr } = step;
  assert.equal(typeof lr, "number");
  assert.match(valid(noLr).join(), /missing required field lr/);
  assert.match(valid({ ...step, event: "stepp" }).join(), /"stepp" is none of/);
  assert.match(valid({ ...done, outputs: { lora: 3 } }).join(), /\$\.outputs\.lora: expected string/);
  assert.match(valid({ ...done, rank_digests: [null] }).join(), /\$\.rank_digests\[0\]: expected string/);
  assert.deepEqual(valid({ ...done, final_loss: null }), []); // nullable
  assert.match(valid({ ...done, seconds: null }).join(), /\$\.seconds: expected number, got null/);
  const started = FIXTURE.find((e) => e.event === "started");
  assert.match(valid({ ...started, training_mode: "dora" }).join(), /"dora" is none of lora,full/);
  assert.throws(() => validate(1, { type: "integer", maximum: 3 }), /keyword maximum .* not supported/);
});

test("the panel knows every kind, and reads only fields the protocol defines", () => {
  for (const kind of [...Object.keys(TERMINAL), "started", "step", "sample", "checkpoint"]) assert.ok(KINDS.includes(kind), kind);
  const defined = new Set(KINDS.flatMap((k) => Object.keys(branch(k).properties)));
  const libDir = new URL("../web/lib/", import.meta.url);
  const read = new Set();
  for (const name of readdirSync(libDir).filter((n) => n.endsWith(".js"))) {
    // `ev` is the panel's name for an event record throughout web/lib
    for (const m of readFileSync(new URL(name, libDir), "utf8").matchAll(/\bev\??\.([A-Za-z_]\w*)/g)) read.add(m[1]);
  }
  assert.ok(read.size >= 15 && read.has("seconds") && read.has("reason"), [...read].join());
  const unknown = [...read].filter((f) => !defined.has(f));
  assert.deepEqual(unknown, [], "web/lib reads event fields the protocol does not define (ltx_train_lib/events.py)");
});
