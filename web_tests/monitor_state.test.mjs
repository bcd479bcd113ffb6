// node --test web_tests/   (Node >= 20, no npm packages)
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  Backoff,
  chartLayout,
  decimate,
  ema,
  etaSeconds,
  eventKey,
  fileRoute,
  foldEvents,
  formatDuration,
  formatEta,
  formatLoss,
  formatLr,
  formatMemory,
  formatSecPerStep,
  formatStep,
  JobMonitor,
  jobRelative,
  latestSample,
  linearScale,
  outputFiles,
  samplePrompt,
  sampleVideos,
  lossDomain,
  niceTicks,
  pollDue,
  sortJobs,
} from "../web/lib/monitor_state.js";

const fixture = (name) => new URL(`../tests/fixtures/${name}`, import.meta.url);
const EVENTS = readFileSync(fixture("monitor_events_resume.jsonl"), "utf8")
  .split("\n")
  .filter(Boolean)
  .map((l) => JSON.parse(l));
const WANT = JSON.parse(readFileSync(fixture("monitor_events_resume.expected.json"), "utf8"));
const DIRS = { jobDir: WANT.job_dir, outputDir: WANT.job_dir };

// Independent restatement of the bias-corrected EMA: a weighted mean with weights w^(n-1-i).
function emaReference(values, w = 0.9) {
  const n = values.length;
  let num = 0;
  let den = 0;
  values.forEach((v, i) => {
    const wi = (1 - w) * w ** (n - 1 - i);
    num += wi * v;
    den += wi;
  });
  return num / den;
}

function assertMatchesExpected(st) {
  assert.equal(st.status, WANT.status);
  assert.deepEqual([st.step, st.total], [WANT.step, WANT.total]);
  assert.deepEqual(st.steps.map((s) => [s.step, s.loss]), WANT.steps);
  assert.equal(st.loss, WANT.loss);
  assert.ok(Math.abs(st.lr - WANT.lr) < 1e-12);
  assert.equal(st.sec_per_step, WANT.sec_per_step);
  assert.equal(st.memory_mb, WANT.memory_mb);
  assert.equal(st.eta_s, WANT.eta_s);
  assert.deepEqual(st.runs.map((r) => [r.step, r.resumed_from]), WANT.runs);
  assert.deepEqual(st.samples.map((s) => [s.step, s.files, s.prompts]), WANT.samples);
  assert.deepEqual(st.checkpoints.map((c) => [c.step, c.file]), WANT.checkpoints);
  assert.equal(st.done.seconds, WANT.done_seconds);
  assert.equal(st.event_count, WANT.event_count);
  const smoothedWant = emaReference(WANT.steps.map(([, l]) => l));
  assert.ok(Math.abs(st.smoothed_loss - smoothedWant) < 1e-12, `${st.smoothed_loss} vs ${smoothedWant}`);
  assert.ok(Math.abs(st.steps[0].smoothed - 1.0) < 1e-12); // bias-corrected: first value is itself
}

// ------------------------------------------------------------------------------------------------ folding

test("fold of a cancelled-then-resumed run matches the shared expectations (same as the Python fold)", () => {
  assertMatchesExpected(foldEvents(EVENTS, DIRS));
});

test("resume drops the steps the resumed run will repeat, before it repeats them", () => {
  const resumed = EVENTS.findIndex((e) => e.event === "started" && e.step > 0);
  const st = foldEvents(EVENTS.slice(0, resumed + 1), DIRS);
  assert.equal(st.status, "running");
  assert.equal(st.step, 5);
  assert.deepEqual(st.steps.map((s) => s.step), [1, 2, 3, 4, 5]);
  assert.deepEqual(st.samples.map((s) => s.step), [5]);
  assert.equal(st.cancelled, null);
  assert.equal(st.runs.length, 2);
  const cancelledAt = foldEvents(EVENTS.slice(0, resumed), DIRS);
  assert.equal(cancelledAt.status, "cancelled");
  assert.deepEqual(cancelledAt.cancelled, { step: 6, checkpoint: "checkpoints/step_000006", reason: "SIGTERM" });
  assert.equal(cancelledAt.steps.at(-1).loss, 0.55);
});

test("duplicates from several sources change nothing", () => {
  const m = new JobMonitor(DIRS);
  assert.equal(m.addMany(EVENTS), true);
  assert.equal(m.addMany(EVENTS.map((e) => ({ ...e }))), false); // same events again (e.g. websocket + poll)
  assert.equal(m.events.length, EVENTS.length);
  assertMatchesExpected(m.state);
});

test("out-of-order arrival folds to the same state as file order", () => {
  // websocket events that overtook the initial fetch: the last 6 first, then the whole file
  const m = new JobMonitor(DIRS);
  m.addMany(EVENTS.slice(-6));
  m.addMany(EVENTS);
  assertMatchesExpected(m.state);
  // fully shuffled (deterministic permutation)
  const shuffled = EVENTS.map((e, i) => [((i * 7919) % 101) / 101, e]).sort((a, b) => a[0] - b[0]).map(([, e]) => e);
  const m2 = new JobMonitor(DIRS);
  for (const e of shuffled) m2.add(e);
  assertMatchesExpected(m2.state);
  assert.deepEqual(m2.events, EVENTS);
});

test("incremental smoothing equals smoothing from scratch", () => {
  const m = new JobMonitor(DIRS);
  for (const e of EVENTS) m.add(e);
  const fresh = ema(m.state.steps.map((s) => s.loss));
  m.state.steps.forEach((s, i) => assert.ok(Math.abs(s.smoothed - fresh[i]) < 1e-12));
});

test("the last health verdict is kept (same as the Python fold)", () => {
  const health = { event: "health", final: false, tensors: 4, modules: 2, nonfinite: [], zero_modules: 0, problems: [], warnings: [] };
  const events = [
    { event: "started", time: 1, step: 0, total: 4 },
    { ...health, time: 2, step: 2, ok: true, summary: "LoRA health: ok at step 2" },
    { ...health, time: 3, step: 4, ok: false, final: true, nonfinite: ["a.lora_B.weight"],
      summary: "LoRA health: FAILED at step 4: 1 tensor(s) hold NaN/Inf values" },
    { event: "error", time: 3.1, step: 4, message: "the LoRA at step 4: LoRA health check failed" },
  ];
  assert.deepEqual(foldEvents(events.slice(0, 2)).health, { step: 2, ok: true, final: false, summary: "LoRA health: ok at step 2" });
  const st = foldEvents(events);
  assert.equal(st.status, "failed");
  assert.equal(st.health.ok, false);
  assert.equal(st.health.final, true);
  assert.match(st.health.summary, /^LoRA health: FAILED at step 4/);
  assert.equal(foldEvents([]).health, null);
});

test("cancelled and error end the run; NaN/null loss leaves a gap", () => {
  const base = [
    { event: "started", time: 1, step: 0, total: 4 },
    { event: "step", time: 2, step: 1, total: 4, loss: null, lr: 1e-4, eta_s: 9 },
    { event: "step", time: 3, step: 2, total: 4, loss: 0.5, lr: 2e-4, eta_s: 6, sec_per_step: 3, memory_mb: 512 },
  ];
  const running = foldEvents(base);
  assert.equal(running.status, "running");
  assert.equal(running.eta_at, 9);
  assert.equal(running.steps[0].smoothed, null);
  assert.equal(running.smoothed_loss, 0.5);
  const cancelled = foldEvents([...base, { event: "cancelled", time: 4, step: 2, checkpoint: "ck" }]);
  assert.equal(cancelled.status, "cancelled");
  assert.equal(cancelled.eta_s, null);
  // an old trainer's `log` field is ignored: the log is the job's (job.json, via the job route), not the event's
  const failed = foldEvents([...base, { event: "error", time: 4, step: 2, message: "CUDA out of memory", log: "train.log" }]);
  assert.equal(failed.status, "failed");
  assert.deepEqual(failed.error, { message: "CUDA out of memory", log: null });
  const resumed = foldEvents([...base, { event: "error", time: 4, step: 2, message: "x" }, { event: "started", time: 5, step: 2 }]);
  assert.equal(resumed.status, "running");
  assert.equal(resumed.error, null);
});

test("server status holds until a newer lifecycle event arrives", () => {
  const m = new JobMonitor(DIRS);
  m.addMany(EVENTS.slice(0, 5)); // started + steps: the fold alone says running
  m.setServerStatus("failed", { message: "the training process ended without reporting" });
  assert.equal(m.status, "failed");
  assert.equal(m.error.message, "the training process ended without reporting");
  m.add(EVENTS[5]); // another step does not change what the server knows
  assert.equal(m.status, "failed");
  m.add({ event: "started", time: 5000, step: 4, total: 10 }); // a resume does
  assert.equal(m.status, "running");
  assert.equal(m.error, null);
});

test("a late 'running' from the server never undoes a final event", () => {
  const m = new JobMonitor(DIRS);
  m.addMany(EVENTS); // ends with done
  m.setServerStatus("running"); // a poll answered before the server saw `done`
  assert.equal(m.status, "finished");
  m.setServerStatus("failed", { message: "x" }); // the server may still add a failure the events cannot know
  assert.equal(m.status, "failed");
});

test("a poll answered before the final event was written never overrides it (websocket first, poll after)", () => {
  const m = new JobMonitor(DIRS);
  m.addMany(EVENTS.slice(0, 5)); // started + steps
  m.add({ event: "cancelled", time: 5000, step: 3 }); // by websocket, while a poll was in flight
  // the poll read 5 events, then found the process gone (its cancelled event not yet written): "failed"
  m.setServerStatus("failed", { message: "the training process ended without reporting" }, 5);
  assert.equal(m.status, "cancelled");
  m.setServerStatus("failed", { message: "x" }, 6); // an answer that saw the cancelled event is the server's word
  assert.equal(m.status, "failed");
});

test("eventKey separates type, time and step", () => {
  assert.notEqual(eventKey({ event: "step", time: 1, step: 1 }), eventKey({ event: "step", time: 1, step: 2 }));
  assert.notEqual(eventKey({ event: "sample", time: 1, step: 1 }), eventKey({ event: "step", time: 1, step: 1 }));
  assert.equal(eventKey({ event: "step", time: 1, step: 1, loss: 2 }), eventKey({ event: "step", time: 1, step: 1 }));
});

// ------------------------------------------------------------------------------------------------ paths/URLs

test("jobRelative maps event paths into the job folder and refuses the rest", () => {
  assert.equal(jobRelative("/jobs/j1/validation_samples/a.mp4", "/jobs/j1"), "validation_samples/a.mp4");
  assert.equal(jobRelative("validation_samples/a.mp4", "/jobs/j1", "/jobs/j1"), "validation_samples/a.mp4");
  assert.equal(jobRelative("a.mp4", "/jobs/j1", "/jobs/j1/out"), "out/a.mp4");
  assert.equal(jobRelative("/jobs/j1/../j2/a.mp4", "/jobs/j1"), null);
  assert.equal(jobRelative("../a.mp4", "/jobs/j1", "/jobs/j1"), null);
  assert.equal(jobRelative("/jobs/j10/a.mp4", "/jobs/j1"), null); // prefix of a sibling is not inside
  assert.equal(jobRelative("/elsewhere/a.mp4", "/jobs/j1"), null);
  assert.equal(jobRelative("C:\\out\\Jobs\\j1\\s\\a.mp4", "c:/out/jobs/j1"), "s/a.mp4");
  assert.equal(jobRelative("/jobs/j1/a.mp4", null), null);
  assert.equal(jobRelative("/jobs/j1", "/jobs/j1"), null);
});

test("fileRoute encodes each segment", () => {
  assert.equal(fileRoute("j1", "validation_samples/step 5#1.mp4"), "/ltx_trainer/jobs/j1/files/validation_samples/step%205%231.mp4");
  assert.equal(fileRoute("a+b", "x.mp4"), "/ltx_trainer/jobs/a%2Bb/files/x.mp4");
});

test("latestSample picks the newest servable file", () => {
  const st = foldEvents(EVENTS, DIRS);
  assert.deepEqual(latestSample(st), { step: 10, file: "validation_samples/step_000010_0.mp4", prompt: "a cat on a skateboard" });
  const outside = foldEvents([{ event: "sample", time: 1, step: 1, paths: ["/tmp/x.mp4"], prompts: ["p"] }], DIRS);
  assert.equal(latestSample(outside), null);
});

// ------------------------------------------------------------------------------------------------ formatting

test("durations and ETA", () => {
  assert.equal(formatDuration(null), "–");
  assert.equal(formatDuration(-1), "–");
  assert.equal(formatDuration(0), "0s");
  assert.equal(formatDuration(42.4), "42s");
  assert.equal(formatDuration(185), "3m 05s");
  assert.equal(formatDuration(3725), "1h 02m");
  assert.equal(formatDuration(2 * 86400 + 3 * 3600 + 5), "2d 03h");
  const st = { status: "running", eta_s: 100, eta_at: 1100 };
  assert.equal(etaSeconds(st, 1040), 60); // counts down between step events
  assert.equal(etaSeconds(st, 2000), 0);
  assert.equal(formatEta(st, 1040), "1m 00s");
  assert.equal(formatEta({ ...st, status: "finished" }, 1040), "–");
  assert.equal(etaSeconds({ status: "running", eta_s: 30, eta_at: null }, null), 30);
});

test("memory, lr, loss, s/step, step", () => {
  assert.equal(formatMemory(null), "–");
  assert.equal(formatMemory(512.4), "512 MB");
  assert.equal(formatMemory(1536), "1.50 GB");
  assert.equal(formatMemory(24 * 1024 + 307), "24.3 GB");
  assert.equal(formatLr(1e-4), "1.00e-4");
  assert.equal(formatLr(2.5e-5), "2.50e-5");
  assert.equal(formatLr(0), "0");
  assert.equal(formatLr(NaN), "–");
  assert.equal(formatLoss(0.3), "0.3000");
  assert.equal(formatLoss(0.0001234), "1.234e-4");
  assert.equal(formatLoss(null), "–");
  assert.equal(formatSecPerStep(2.345), "2.35 s/step");
  assert.equal(formatSecPerStep(0.25), "0.250 s/step (4.0 it/s)");
  assert.equal(formatSecPerStep(0), "–");
  assert.equal(formatStep(120, 2000), "120 / 2000 (6%)");
  assert.equal(formatStep(5, null), "5");
  assert.equal(formatStep(null, 10), "–");
});

// ------------------------------------------------------------------------------------------------ chart

test("scales and ticks", () => {
  const s = linearScale(0, 10, 100, 0);
  assert.equal(s(0), 100);
  assert.equal(s(5), 50);
  assert.equal(linearScale(3, 3, 0, 10)(3), 5); // flat domain: middle, no NaN
  assert.deepEqual(niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(0.13, 0.91, 4), [0.2, 0.4, 0.6, 0.8]);
  assert.deepEqual(niceTicks(0, 2000, 4), [0, 500, 1000, 1500, 2000]);
  assert.deepEqual(niceTicks(2, 2), [2]);
  for (const t of niceTicks(0.013, 0.0917, 5)) assert.equal(String(t).length < 8, true, `ugly tick ${t}`);
});

test("loss domain ignores early spikes", () => {
  const steps = Array.from({ length: 200 }, (_, i) => ({ step: i + 1, loss: i < 2 ? 50 : 0.5 + (i % 10) / 100 }));
  ema(steps.map((s) => s.loss)).forEach((v, i) => (steps[i].smoothed = v));
  const [lo, hi] = lossDomain(steps);
  assert.ok(lo < 0.5 && lo > 0.45, `lo ${lo}`);
  assert.ok(hi >= 0.59 && hi < 0.7, `hi ${hi}`); // the two 50s are off the chart, the rest fills it
  assert.equal(lossDomain([{ step: 1, loss: null }]), null);
  const [a, b] = lossDomain([{ step: 1, loss: 2, smoothed: 2 }]);
  assert.ok(a < 2 && b > 2); // a single point still gets a range
  const L = chartLayout(steps, { width: 300, height: 100 });
  assert.ok(L.smooth.every((p) => p[1] >= L.plot.top)); // the smoothed spike is clamped to the top edge
  assert.equal(L.raw[0][1], L.plot.top);
});

test("decimation keeps extremes and order", () => {
  const pts = Array.from({ length: 10000 }, (_, i) => [i, i === 5000 ? 99 : Math.sin(i / 50)]);
  const out = decimate(pts, 100);
  assert.ok(out.length <= 200);
  assert.ok(out.some((p) => p[1] === 99)); // the spike survives
  for (let i = 1; i < out.length; i++) assert.ok(out[i][0] >= out[i - 1][0]);
  assert.equal(decimate(pts.slice(0, 10), 100).length, 10);
});

test("chart layout maps steps into the plot and keeps gaps", () => {
  const st = foldEvents([
    { event: "started", time: 1, step: 0, total: 100 },
    { event: "step", time: 2, step: 1, loss: 1 },
    { event: "step", time: 3, step: 2, loss: null },
    { event: "step", time: 4, step: 3, loss: 0.5 },
  ]);
  const L = chartLayout(st.steps, { width: 300, height: 120, total: 100 });
  assert.equal(L.empty, false);
  assert.equal(L.raw.length, 3);
  assert.equal(L.raw[1], null);
  const [x1, y1] = L.raw[0];
  assert.equal(x1, L.plot.left);
  assert.ok(L.raw[2][0] < L.plot.right / 2); // x runs to the total, not to the last step
  assert.ok(y1 < L.raw[2][1]); // the higher loss is drawn higher (smaller y)
  for (const p of [...L.raw, ...L.smooth].filter(Boolean)) {
    assert.ok(p[1] >= L.plot.top && p[1] <= L.plot.bottom);
  }
  assert.ok(L.yTicks.length >= 2 && L.xTicks.length >= 2);
  assert.equal(chartLayout([], { width: 300, height: 120 }).empty, true);
});

// ------------------------------------------------------------------------------------------------ retries

test("backoff doubles up to the cap and resets", () => {
  const b = new Backoff({ baseMs: 1000, maxMs: 8000 });
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next()], [1000, 2000, 4000, 8000, 8000]);
  b.reset();
  assert.equal(b.next(), 1000);
  const j = new Backoff({ baseMs: 1000, jitter: 0.5, random: () => 1 });
  assert.equal(j.next(), 500);
});

test("poll only running jobs whose live events went quiet", () => {
  assert.equal(pollDue({ status: "finished", lastLiveMs: null, lastPollMs: null, nowMs: 0 }), false);
  assert.equal(pollDue({ status: "running", lastLiveMs: null, lastPollMs: null, nowMs: 0 }), true);
  assert.equal(pollDue({ status: "running", lastLiveMs: 9000, lastPollMs: 0, nowMs: 10000 }), false); // live is flowing
  assert.equal(pollDue({ status: "running", lastLiveMs: 1000, lastPollMs: 6000, nowMs: 10000 }), false); // polled recently
  assert.equal(pollDue({ status: "running", lastLiveMs: 1000, lastPollMs: 4000, nowMs: 10000 }), true);
});

test("job list: running first, then newest", () => {
  const jobs = sortJobs([
    { id: "a", status: "finished", created: 3 },
    { id: "b", status: "running", created: 1 },
    { id: "c", status: "failed", created: 5 },
    { id: "d", status: "finished", created: 4 },
  ]);
  assert.deepEqual(jobs.map((j) => j.id), ["b", "d", "a", "c"]);
});

test("trainer-style samples: several videos per prompt get their prompt from the file name", () => {
  const st = foldEvents([
    { event: "started", time: 1, step: 0, total: 10, output_dir: "/jobs/j1" },
    { event: "sample", time: 2, step: 0, prompts: ["cat", "dog"],
      paths: ["/jobs/j1/validation_samples/step_000000_p0_v0.mp4", "/jobs/j1/validation_samples/step_000000_p0_v1.mp4",
              "/jobs/j1/validation_samples/step_000000_p1_v0.mp4"] },
    { event: "sample", time: 3, step: 5, prompts: ["cat", "dog"],
      paths: ["/jobs/j1/validation_samples/step_000005_p0_v0.mp4", "/jobs/j1/validation_samples/step_000005_p1_v0.mp4"] },
  ], DIRS);
  assert.deepEqual(sampleVideos(st).map((v) => [v.step, v.prompt]), [[5, "dog"], [5, "cat"], [0, "dog"], [0, "cat"], [0, "cat"]]);
  assert.equal(samplePrompt(st.samples[0], 2), "dog");
  assert.deepEqual(latestSample(st), { step: 5, file: "validation_samples/step_000005_p0_v0.mp4", prompt: "cat" });
});

test("outputs: only files inside the job folder are offered", () => {
  const st = foldEvents([
    { event: "started", time: 1, step: 0, total: 1 },
    { event: "done", time: 2, step: 1, total: 1, outputs: {
      lora: "/jobs/j1/lora_weights.safetensors", lora_comfy: "/jobs/j1/lora_weights_comfy.safetensors",
      validation_samples: "/jobs/j1/validation_samples", elsewhere: "/tmp/x.safetensors", n: 3 } },
  ], DIRS);
  assert.deepEqual(outputFiles(st, DIRS.jobDir, DIRS.outputDir), [
    ["lora", "lora_weights.safetensors"], ["lora_comfy", "lora_weights_comfy.safetensors"]]);
});
