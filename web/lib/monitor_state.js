// Pure logic of the LTX training monitor: fold trainer events into a job state, smooth the loss, format numbers,
// lay out the loss chart, back off between retries, build file URLs. No DOM, no ComfyUI imports: Node tests it
// (web_tests/), and the browser imports it from web/ltx_trainer_monitor.js.
//
// The fold mirrors ltx_train_lib/jobs/monitor.py fold_events(); tests/fixtures/monitor_events_resume.* holds the
// expectations both implementations are checked against.

export const ROUTE_PREFIX = "/ltx_trainer";
export const EMA_WEIGHT = 0.9;
export const TERMINAL = Object.freeze({ done: "finished", cancelled: "cancelled", error: "failed" });
export const STATUS_ORDER = Object.freeze(["running", "queued", "finished", "cancelled", "failed", "unknown"]);

export function finite(v) {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

function intOrNull(v) {
  return Number.isInteger(v) ? v : null;
}

export function emptyState() {
  return {
    status: "queued",
    step: null,
    total: null,
    loss: null,
    smoothed_loss: null,
    lr: null,
    sec_per_step: null,
    eta_s: null,
    eta_at: null,
    memory_mb: null,
    steps: [],
    samples: [],
    checkpoints: [],
    health: null,
    runs: [],
    error: null,
    cancelled: null,
    done: null,
    started_at: null,
    updated: null,
    event_count: 0,
  };
}

// Identity of an event for de-duplication: the same event may come from the initial fetch, the websocket and a
// poll. Type + time (ms resolution) + step is unique within one trainer's stream.
export function eventKey(ev) {
  return `${ev?.event}|${finite(ev?.time) ?? ""}|${Number.isInteger(ev?.step) ? ev.step : ""}`;
}

// ------------------------------------------------------------------------------------------------------ paths

function normalisePath(p) {
  const s = String(p).replace(/\\/g, "/");
  const drive = /^[A-Za-z]:/.test(s) ? s.slice(0, 2).toUpperCase() : "";
  const rest = drive ? s.slice(2) : s;
  const out = [];
  for (const part of rest.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return { absolute: Boolean(drive) || rest.startsWith("/"), path: `${drive}/${out.join("/")}` };
}

// An event path as a '/'-separated path relative to the job folder (what the files route serves), or null when it
// lies outside. Relative paths in events are relative to the run's output_dir.
export function jobRelative(path, jobDir, outputDir) {
  if (!path || !jobDir) return null;
  let p = normalisePath(path);
  if (!p.absolute) p = normalisePath(`${outputDir || jobDir}/${path}`);
  const base = normalisePath(jobDir).path.replace(/\/$/, "");
  const caseless = /^[A-Z]:/.test(base); // Windows paths compare without case
  const a = caseless ? p.path.toLowerCase() : p.path;
  const b = caseless ? base.toLowerCase() : base;
  if (!a.startsWith(`${b}/`)) return null;
  return p.path.slice(base.length + 1) || null;
}

// Route of a file in a job folder, each segment percent-encoded (a name with '#', '?' or '%' stays a name).
export function fileRoute(jobId, relpath, prefix = ROUTE_PREFIX) {
  const segments = String(relpath).split("/").filter((s) => s !== "");
  return `${prefix}/jobs/${encodeURIComponent(jobId)}/files/${segments.map(encodeURIComponent).join("/")}`;
}

export function jobRoute(jobId, suffix = "", prefix = ROUTE_PREFIX) {
  return `${prefix}/jobs/${encodeURIComponent(jobId)}${suffix}`;
}

// ------------------------------------------------------------------------------------------------------ folding

// Bias-corrected exponential moving average (TensorBoard's smoothing): the first value is itself, not pulled to 0.
// null (a non-finite loss) stays null and does not poison the average.
export function ema(values, weight = EMA_WEIGHT) {
  const out = [];
  let acc = 0;
  let n = 0;
  for (const v of values) {
    if (finite(v) === null) {
      out.push(null);
      continue;
    }
    n += 1;
    acc = acc * weight + (1 - weight) * v;
    out.push(acc / (1 - weight ** n));
  }
  return out;
}

function resmooth(state) {
  const smoothed = ema(state.steps.map((s) => s.loss));
  state.steps.forEach((s, i) => (s.smoothed = smoothed[i]));
  let lastLoss = null;
  let lastLr = null;
  for (const s of state.steps) {
    if (s.loss !== null) lastLoss = s;
    if (s.lr !== null) lastLr = s.lr;
  }
  state.loss = lastLoss ? lastLoss.loss : null;
  state.smoothed_loss = lastLoss ? lastLoss.smoothed : null;
  state.lr = lastLr;
}

// Fold one event into `state` (mutated). Returns true when the steps list changed in a way that needs the
// smoothing recomputed from the start (a replaced or dropped step), false when appending was enough.
function foldOne(state, ev, ctx) {
  const kind = ev.event;
  const t = finite(ev.time);
  const step = intOrNull(ev.step);
  state.event_count += 1;
  if (t !== null) state.updated = state.updated === null ? t : Math.max(state.updated, t);
  if (kind === "started") {
    const start = step ?? 0;
    const before = state.steps.length;
    state.steps = state.steps.filter((s) => s.step <= start); // the resumed run repeats these
    state.samples = state.samples.filter((s) => (s.step ?? 0) <= start);
    state.runs.push({ step: start, time: t, resumed_from: ev.resumed_from ?? null });
    Object.assign(state, { status: "running", error: null, cancelled: null, done: null, step: start });
    if (state.started_at === null) state.started_at = t;
    if (Number.isInteger(ev.total)) state.total = ev.total;
    if (ev.output_dir && !ctx.outputDir) ctx.runOutputDir = String(ev.output_dir);
    return state.steps.length !== before;
  }
  if (kind === "step" && step !== null) {
    const entry = { step, loss: finite(ev.loss), lr: finite(ev.lr), time: t, smoothed: null };
    const last = state.steps[state.steps.length - 1];
    let rebuilt = false;
    if (!last || last.step < step) {
      state.steps.push(entry);
    } else {
      const i = state.steps.findIndex((s) => s.step >= step);
      if (state.steps[i].step === step) state.steps[i] = entry;
      else state.steps.splice(i, 0, entry);
      rebuilt = true;
    }
    state.step = Math.max(state.step ?? 0, step);
    if (Number.isInteger(ev.total)) state.total = ev.total;
    if (finite(ev.sec_per_step) !== null) state.sec_per_step = ev.sec_per_step;
    if (finite(ev.memory_mb) !== null) state.memory_mb = ev.memory_mb;
    const eta = finite(ev.eta_s);
    state.eta_s = eta;
    state.eta_at = eta !== null && t !== null ? t + eta : null;
    if (state.status === "queued") state.status = "running";
    if (!rebuilt) {
      // append: continue the running average instead of recomputing it
      if (entry.loss !== null) {
        ctx.emaN += 1;
        ctx.emaAcc = ctx.emaAcc * EMA_WEIGHT + (1 - EMA_WEIGHT) * entry.loss;
        entry.smoothed = ctx.emaAcc / (1 - EMA_WEIGHT ** ctx.emaN);
        state.loss = entry.loss;
        state.smoothed_loss = entry.smoothed;
      }
      if (entry.lr !== null) state.lr = entry.lr;
    }
    return rebuilt;
  }
  const outDir = ctx.outputDir || ctx.runOutputDir;
  if (kind === "sample") {
    const paths = (ev.paths || []).map(String);
    const files = paths.map((p) => jobRelative(p, ctx.jobDir, outDir));
    const sample = { step, time: t, paths, files, prompts: [...(ev.prompts || [])] };
    state.samples = state.samples.filter((s) => s.step !== step).concat([sample]);
    return false;
  }
  if (kind === "health") {
    // the LoRA health gate's last verdict (ltx_train_lib/lora_health.py): one line for the panel
    state.health = { step, ok: ev.ok === true, final: ev.final === true, summary: String(ev.summary || "") };
    return false;
  }
  if (kind === "checkpoint") {
    const file = jobRelative(ev.path, ctx.jobDir, outDir);
    state.checkpoints = state.checkpoints.filter((c) => c.step !== step);
    state.checkpoints.push({ step, path: ev.path ?? null, file, time: t });
    return false;
  }
  if (kind in TERMINAL) {
    state.status = TERMINAL[kind];
    state.eta_s = state.eta_at = null;
    if (step !== null) state.step = Math.max(state.step ?? 0, step);
    if (kind === "done") {
      state.done = { seconds: finite(ev.seconds), outputs: ev.outputs || {} };
      if (Number.isInteger(ev.total)) state.total = ev.total;
    } else if (kind === "cancelled") {
      state.cancelled = { step, checkpoint: ev.checkpoint ?? null, reason: ev.reason ?? null };
    } else {
      // error events name no log (ltx_train_lib/events.py ErrorEvent): the job's log comes from the job route
      state.error = { message: String(ev.message || "training failed"), log: null };
    }
  }
  return false;
}

// Fold a whole history (in order) into a fresh state. Duplicates (same eventKey) are skipped.
export function foldEvents(events, { jobDir = null, outputDir = null } = {}) {
  const job = new JobMonitor({ jobDir, outputDir });
  job.addMany(events);
  return job.state;
}

// The events of one job and their folded state, fed from any mix of sources (initial fetch, websocket, polls) in
// any order: duplicates are dropped, an event older than the newest one is put in its place and the state is
// refolded, so the result equals folding the trainer's own file.
export class JobMonitor {
  constructor({ jobId = null, jobDir = null, outputDir = null } = {}) {
    this.jobId = jobId;
    this.jobDir = jobDir;
    this.outputDir = outputDir;
    this.events = [];
    this.seen = new Set();
    this.serverStatus = null; // {status, error, atEvent}: what the server derived (it can see the process)
    this.files = { log: null, config: null }; // job-relative log and config files (from the job route's state)
    this.#reset();
  }

  #reset() {
    this.state = emptyState();
    this.ctx = { jobDir: this.jobDir, outputDir: this.outputDir, runOutputDir: null, emaN: 0, emaAcc: 0 };
  }

  #refold() {
    this.#reset();
    for (const ev of this.events) foldOne(this.state, ev, this.ctx);
    resmooth(this.#syncEma());
  }

  #syncEma() {
    // after a full recompute, continue the incremental EMA from where the full one ended
    let n = 0;
    let acc = 0;
    for (const s of this.state.steps) {
      if (s.loss === null) continue;
      n += 1;
      acc = acc * EMA_WEIGHT + (1 - EMA_WEIGHT) * s.loss;
    }
    this.ctx.emaN = n;
    this.ctx.emaAcc = acc;
    return this.state;
  }

  // Where the job's files live (known once the job was fetched); paths in events already folded are remapped.
  setDirs(jobDir, outputDir) {
    if (jobDir === this.jobDir && outputDir === this.outputDir) return;
    this.jobDir = jobDir;
    this.outputDir = outputDir;
    this.#refold();
  }

  // Add one event; returns true when it was new.
  add(ev) {
    if (!ev || typeof ev !== "object" || typeof ev.event !== "string") return false;
    const key = eventKey(ev);
    if (this.seen.has(key)) return false;
    this.seen.add(key);
    const t = finite(ev.time);
    const lastT = this.events.length ? finite(this.events[this.events.length - 1].time) : null;
    if (t === null || lastT === null || t >= lastT) {
      this.events.push(ev);
      if (foldOne(this.state, ev, this.ctx)) resmooth(this.#syncEma());
    } else {
      // late arrival: insert after every event not newer than it, then refold everything
      let i = this.events.length;
      while (i > 0 && (finite(this.events[i - 1].time) ?? -Infinity) > t) i -= 1;
      this.events.splice(i, 0, ev);
      this.#refold();
    }
    return true;
  }

  addMany(events) {
    let changed = false;
    for (const ev of events || []) changed = this.add(ev) || changed;
    return changed;
  }

  // Record the status the server derived (from events + whether the process group lives). It holds until a newer
  // lifecycle event (started/done/cancelled/error) arrives. ``seen``: how many of the job's events the server had
  // read (the poll's ``next``): an event that reached us by websocket while the poll was in flight is newer than the
  // answer (a poll that found the process gone just before its ``cancelled`` event was written says "failed").
  setServerStatus(status, error = null, seen = null) {
    const atEvent = typeof seen === "number" ? Math.max(0, Math.min(seen, this.events.length)) : this.events.length;
    this.serverStatus = { status, error, atEvent };
  }

  get status() {
    const s = this.serverStatus;
    if (!s) return this.state.status;
    const later = this.events.slice(s.atEvent).some((e) => e.event === "started" || e.event in TERMINAL);
    if (later) return this.state.status;
    // The server can only add what the events cannot know (the process is gone). An answer computed before a
    // final event reached it never undoes that event.
    const foldEnded = Object.values(TERMINAL).includes(this.state.status);
    if (foldEnded && (s.status === "running" || s.status === "queued")) return this.state.status;
    return s.status;
  }

  get error() {
    const s = this.serverStatus;
    if (s && this.status === s.status && s.error) return s.error;
    return this.state.error;
  }
}

// ------------------------------------------------------------------------------------------------------ numbers

export function formatDuration(seconds) {
  const s = finite(seconds);
  if (s === null || s < 0) return "–";
  const total = Math.round(s);
  if (total < 60) return `${total}s`;
  const pad = (n) => String(n).padStart(2, "0");
  if (total < 3600) return `${Math.floor(total / 60)}m ${pad(total % 60)}s`;
  if (total < 86400) return `${Math.floor(total / 3600)}h ${pad(Math.floor((total % 3600) / 60))}m`;
  return `${Math.floor(total / 86400)}d ${pad(Math.floor((total % 86400) / 3600))}h`;
}

// Seconds left: counts down from the last step's estimate (eta_at, server clock) using `nowSec` on the same clock.
export function etaSeconds(state, nowSec) {
  if (!state || state.status !== "running") return null;
  if (finite(state.eta_at) !== null && finite(nowSec) !== null) return Math.max(0, state.eta_at - nowSec);
  return finite(state.eta_s);
}

export function formatEta(state, nowSec) {
  const s = etaSeconds(state, nowSec);
  return s === null ? "–" : formatDuration(s);
}

export function formatMemory(mb) {
  const v = finite(mb);
  if (v === null) return "–";
  if (v < 1024) return `${Math.round(v)} MB`;
  return `${(v / 1024).toFixed(v < 10 * 1024 ? 2 : 1)} GB`;
}

export function formatLr(lr) {
  const v = finite(lr);
  if (v === null) return "–";
  if (v === 0) return "0";
  return v.toExponential(2).replace("e+", "e");
}

export function formatLoss(loss) {
  const v = finite(loss);
  if (v === null) return "–";
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e4)) return v.toExponential(3);
  return v.toPrecision(4);
}

export function formatSecPerStep(sec) {
  const v = finite(sec);
  if (v === null || v <= 0) return "–";
  if (v < 1) return `${v.toFixed(3)} s/step (${(1 / v).toFixed(1)} it/s)`;
  return `${v.toFixed(2)} s/step`;
}

export function formatStep(step, total) {
  if (!Number.isInteger(step)) return "–";
  if (!Number.isInteger(total) || total <= 0) return `${step}`;
  return `${step} / ${total} (${Math.floor((100 * Math.min(step, total)) / total)}%)`;
}

export function progressFraction(step, total) {
  if (!Number.isInteger(step) || !Number.isInteger(total) || total <= 0) return 0;
  return Math.max(0, Math.min(1, step / total));
}

// ------------------------------------------------------------------------------------------------------ chart

export function linearScale(d0, d1, r0, r1) {
  const span = d1 - d0;
  // a flat domain (one point, or a constant loss) maps to the middle instead of dividing by zero
  const f = span === 0 || !Number.isFinite(span) ? () => (r0 + r1) / 2 : (v) => r0 + ((v - d0) / span) * (r1 - r0);
  f.domain = [d0, d1];
  f.range = [r0, r1];
  return f;
}

// About `count` round tick values (1, 2, 5 × 10^k) covering [min, max].
export function niceTicks(min, max, count = 5) {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (min === max) return [min];
  if (min > max) [min, max] = [max, min];
  const raw = (max - min) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const eps = 1e-9; // 0.2 / 0.1 is 2.0000000000000004
  const step = (norm <= 1 + eps ? 1 : norm <= 2 + eps ? 2 : norm <= 5 + eps ? 5 : 10) * mag;
  const ticks = [];
  const first = Math.ceil(min / step - 1e-9) * step;
  for (let v = first; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

function quantile(sorted, q) {
  if (!sorted.length) return null;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

// Y range of the loss chart: from the lowest value (raw or smoothed) to the 98th percentile of the raw loss, padded
// by 5%. An early spike would otherwise flatten everything after it; what lies above is drawn clamped to the top.
export function lossDomain(steps) {
  const raw = steps.map((s) => s.loss).filter((v) => finite(v) !== null);
  if (!raw.length) return null;
  const smooth = steps.map((s) => s.smoothed).filter((v) => finite(v) !== null);
  const sorted = [...raw].sort((a, b) => a - b);
  const lo = Math.min(sorted[0], ...smooth);
  const hi = quantile(sorted, 0.98);
  const pad = (hi - lo) * 0.05 || Math.abs(hi) * 0.05 || 0.05;
  return [lo - pad, hi + pad];
}

// At most ~2 points per horizontal pixel bucket (the min and the max of the bucket, in step order), so a
// 50k-step run draws as fast as a short one and keeps its spikes.
export function decimate(points, buckets) {
  if (points.length <= 2 * buckets || buckets < 1) return points;
  const out = [];
  const x0 = points[0][0];
  const span = points[points.length - 1][0] - x0 || 1;
  let cur = -1;
  let lo = null;
  let hi = null;
  const flush = () => {
    if (lo === null) return;
    if (lo === hi) out.push(lo);
    else if (lo[0] <= hi[0]) out.push(lo, hi);
    else out.push(hi, lo);
  };
  for (const p of points) {
    const b = Math.min(buckets - 1, Math.floor(((p[0] - x0) / span) * buckets));
    if (b !== cur) {
      flush();
      cur = b;
      lo = hi = p;
    } else {
      if (p[1] < lo[1]) lo = p;
      if (p[1] > hi[1]) hi = p;
    }
  }
  flush();
  return out;
}

// Pixel geometry of the loss chart: scales, ticks, and the raw and smoothed polylines (null = gap). Values above
// the y range are clamped to the top edge.
export function chartLayout(steps, { width, height, padLeft = 44, padRight = 8, padTop = 8, padBottom = 18, total = null } = {}) {
  const plot = { left: padLeft, right: Math.max(padLeft + 1, width - padRight), top: padTop, bottom: Math.max(padTop + 1, height - padBottom) };
  const ydom = lossDomain(steps);
  if (!ydom) return { plot, empty: true, raw: [], smooth: [], xTicks: [], yTicks: [] };
  const firstStep = steps[0].step;
  const lastStep = Math.max(steps[steps.length - 1].step, Number.isInteger(total) ? total : 0);
  const x = linearScale(firstStep, lastStep === firstStep ? firstStep + 1 : lastStep, plot.left, plot.right);
  const y = linearScale(ydom[0], ydom[1], plot.bottom, plot.top);
  const clampY = (v) => Math.max(plot.top, Math.min(plot.bottom, y(v)));
  const line = (key) => {
    const pts = [];
    for (const s of steps) pts.push(finite(s[key]) === null ? null : [x(s.step), clampY(s[key])]);
    // decimate each unbroken run separately so gaps survive
    const out = [];
    let run = [];
    const buckets = Math.max(1, Math.floor(plot.right - plot.left));
    for (const p of pts) {
      if (p === null) {
        if (run.length) out.push(...decimate(run, buckets), null);
        run = [];
      } else run.push(p);
    }
    if (run.length) out.push(...decimate(run, buckets));
    return out;
  };
  return {
    plot,
    empty: false,
    x,
    y,
    xTicks: niceTicks(x.domain[0], x.domain[1], Math.max(2, Math.floor((plot.right - plot.left) / 70))).map((v) => ({ v, px: x(v) })),
    yTicks: niceTicks(ydom[0], ydom[1], Math.max(2, Math.floor((plot.bottom - plot.top) / 28))).map((v) => ({ v, px: y(v) })),
    raw: line("loss"),
    smooth: line("smoothed"),
  };
}

// ------------------------------------------------------------------------------------------------------ retries

// Exponential backoff between failed fetches (server restarting, network blip): 1 s, 2 s, 4 s … capped, with an
// optional jitter so several open editors do not retry in lockstep. reset() after a success.
export class Backoff {
  constructor({ baseMs = 1000, maxMs = 30000, factor = 2, jitter = 0, random = Math.random } = {}) {
    Object.assign(this, { baseMs, maxMs, factor, jitter, random });
    this.attempts = 0;
  }

  next() {
    const d = Math.min(this.maxMs, this.baseMs * this.factor ** this.attempts);
    this.attempts += 1;
    return Math.round(d * (1 - this.jitter * this.random()));
  }

  reset() {
    this.attempts = 0;
  }
}

// Should the panel poll the events route now? Only for a running job whose live (websocket) events have gone
// quiet: another browser, a job queued by someone else, or a missed broadcast still update within `intervalMs`.
export function pollDue({ status, lastLiveMs, lastPollMs, nowMs, quietMs = 4000, intervalMs = 5000 }) {
  if (status !== "running" && status !== "queued") return false;
  if (lastLiveMs !== null && lastLiveMs !== undefined && nowMs - lastLiveMs < quietMs) return false;
  return lastPollMs === null || lastPollMs === undefined || nowMs - lastPollMs >= intervalMs;
}

// ------------------------------------------------------------------------------------------------------ list

export function sortJobs(jobs) {
  const rank = (s) => (STATUS_ORDER.indexOf(s) === -1 ? STATUS_ORDER.length : STATUS_ORDER.indexOf(s));
  return [...jobs].sort((a, b) => rank(a.status) - rank(b.status) || (b.created ?? b.updated ?? 0) - (a.created ?? a.updated ?? 0));
}

// A list entry updated from a job's live state, so the list moves without refetching.
export function summaryFromMonitor(summary, monitor) {
  const st = monitor.state;
  return {
    ...summary,
    status: monitor.status,
    step: st.step ?? summary.step,
    total: st.total ?? summary.total,
    loss: st.loss ?? summary.loss,
    updated: st.updated ?? summary.updated,
    error: monitor.error?.message ?? summary.error ?? null,
  };
}

// The prompt of a sample's k-th video. The trainer lists each prompt once and may render several videos per prompt,
// naming them step_SSSSSS_p<prompt>_v<video>.mp4; other writers pair paths and prompts one to one.
export function samplePrompt(sample, k) {
  const m = /_p(\d+)_v\d+\.[^/\\.]+$/.exec(sample.paths[k] || "");
  if (m && sample.prompts[Number(m[1])] !== undefined) return sample.prompts[Number(m[1])];
  return sample.prompts[k] ?? "";
}

// Every servable video of the run, newest first: [{step, file, prompt}].
export function sampleVideos(state) {
  const out = [];
  for (const s of state.samples) {
    s.files.forEach((file, k) => file && out.push({ step: s.step, file, prompt: samplePrompt(s, k) }));
  }
  return out.reverse();
}

// The newest sample with a file the route can serve, or null.
export function latestSample(state) {
  const videos = sampleVideos(state);
  if (!videos.length) return null;
  const newestStep = videos[0].step;
  return videos.filter((v) => v.step === newestStep).pop(); // its first video
}

// The outputs a finished run reported that are files in the job folder (the trainer also reports folders).
export function outputFiles(state, jobDir, outputDir) {
  return Object.entries(state.done?.outputs || {})
    .map(([name, p]) => [name, typeof p === "string" ? jobRelative(p, jobDir, outputDir) : null])
    .filter(([, rel]) => rel && /\.[A-Za-z0-9]+$/.test(rel.split("/").pop()));
}
