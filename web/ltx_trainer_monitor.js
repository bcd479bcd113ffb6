// LTX training monitor for the ComfyUI editor: a "LTX Training" sidebar tab (job list, live loss chart, stats,
// validation videos, Cancel) and a compact loss curve + latest sample on every LTXTrainer_TrainLoRA node.
//
// State comes from the pack's routes (nodes/routes.py) on load, on websocket reconnect and by polling while live
// events are quiet; live updates come from the `ltx_trainer.event` / `ltx_trainer.jobs` websocket events.
// All logic that can live without the DOM is in ./lib (tested by `node --test web_tests/`).

import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

import {
  chartLayout,
  etaSeconds,
  fileRoute,
  formatDuration,
  formatLoss,
  formatLr,
  formatMemory,
  formatSecPerStep,
  formatStep,
  latestSample,
  outputFiles,
  progressFraction,
  sampleVideos,
} from "./lib/monitor_state.js";
import { MonitorStore } from "./lib/monitor_store.js";
import { EARLIER_LAYOUTS, migratedWidgetValues } from "./lib/widget_layouts.js";

const EXTENSION = "LTXTrainer.Monitor";
// The compact Train LoRA node and the first release's all-settings one (kept for saved workflows).
const NODE_TYPES = new Set(["LTXTrainer_TrainLoRA_v2", "LTXTrainer_TrainLoRA"]);
const TAB_ID = "ltx-trainer-monitor";
const STATUS_TEXT = {
  running: "Running",
  queued: "Queued",
  finished: "Finished",
  failed: "Failed",
  cancelled: "Cancelled",
  unknown: "Unknown",
};

// ------------------------------------------------------------------------------------------------ plumbing

function url(route) {
  return typeof api.apiURL === "function" ? api.apiURL(route) : `/api${route}`;
}

async function request(route, options = {}) {
  const r = await api.fetchApi(route, { cache: "no-store", ...options });
  let body = null;
  try {
    body = await r.json();
  } catch {
    body = null;
  }
  if (!r.ok) {
    const err = new Error(body?.error || `HTTP ${r.status}`);
    err.status = r.status;
    throw err;
  }
  return body;
}

const store = new MonitorStore({
  fetchJson: (route) => request(route),
  postJson: (route) => request(route, { method: "POST" }),
});

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c);
  return el;
}

function toast(severity, summary, detail) {
  app.extensionManager?.toast?.add?.({ severity, summary, detail, life: 5000 });
}

// Coalesce bursts of events into one repaint per frame.
function frameThrottle(fn) {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      fn();
    });
  };
}

const CSS = `
.ltxm-root { display: flex; flex-direction: column; gap: 8px; padding: 8px; height: 100%; overflow-y: auto;
  box-sizing: border-box; font-size: 13px; color: var(--fg-color, #ddd); }
.ltxm-header { display: flex; align-items: center; justify-content: space-between; }
.ltxm-header h3 { margin: 0; font-size: 15px; }
.ltxm-btn { background: var(--comfy-input-bg, #333); color: var(--input-text, #ddd); border: 1px solid var(--border-color, #555);
  border-radius: 4px; padding: 3px 10px; cursor: pointer; font-size: 12px; }
.ltxm-btn:disabled { opacity: .45; cursor: default; }
.ltxm-btn.ltxm-danger { border-color: #c0392b; }
.ltxm-btn.ltxm-armed { background: #c0392b; color: #fff; }
.ltxm-banner { background: #5a1d1d; color: #fdd; border-radius: 4px; padding: 4px 8px; }
.ltxm-empty { opacity: .7; padding: 6px 0; }
.ltxm-jobs { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 2px; max-height: 35%;
  overflow-y: auto; flex-shrink: 0; }
.ltxm-job { display: grid; grid-template-columns: 10px minmax(0, 1fr); grid-template-rows: auto auto; column-gap: 6px;
  align-items: center; padding: 4px 6px; border-radius: 4px; cursor: pointer; }
.ltxm-job .ltxm-meta { grid-column: 2; }
.ltxm-job:hover { background: var(--comfy-input-bg, #333); }
.ltxm-job.ltxm-selected { background: var(--comfy-input-bg, #333); outline: 1px solid var(--border-color, #666); }
.ltxm-job .ltxm-name { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.ltxm-job .ltxm-meta { opacity: .75; font-size: 11px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.ltxm-dot { width: 8px; height: 8px; border-radius: 50%; background: #888; }
.ltxm-s-running .ltxm-dot, .ltxm-badge.ltxm-s-running { background: #2e86de; }
.ltxm-s-finished .ltxm-dot, .ltxm-badge.ltxm-s-finished { background: #27ae60; }
.ltxm-s-failed .ltxm-dot, .ltxm-badge.ltxm-s-failed { background: #c0392b; }
.ltxm-s-cancelled .ltxm-dot, .ltxm-badge.ltxm-s-cancelled { background: #d68910; }
.ltxm-badge { border-radius: 10px; padding: 1px 8px; font-size: 11px; color: #fff; background: #777; }
.ltxm-title { display: flex; gap: 8px; align-items: center; justify-content: space-between; }
.ltxm-title h4 { margin: 0; font-size: 14px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.ltxm-progress { height: 4px; background: var(--comfy-input-bg, #333); border-radius: 2px; overflow: hidden; }
.ltxm-progress > div { height: 100%; background: #2e86de; width: 0; transition: width .3s; }
.ltxm-stats { display: grid; grid-template-columns: repeat(auto-fill, minmax(96px, 1fr)); gap: 6px 10px; margin: 0; }
.ltxm-stats div { min-width: 0; }
.ltxm-stats dt { opacity: .65; font-size: 11px; }
.ltxm-stats dd { margin: 0; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
.ltxm-chart { width: 100%; height: 180px; display: block; }
.ltxm-legend { display: flex; gap: 12px; font-size: 11px; opacity: .8; }
.ltxm-legend span::before { content: ""; display: inline-block; width: 14px; height: 2px; margin-right: 4px;
  vertical-align: middle; background: var(--c); }
.ltxm-actions { display: flex; gap: 8px; align-items: center; }
.ltxm-msg { font-size: 12px; opacity: .85; }
.ltxm-health { font-size: 11px; opacity: .8; margin: 4px 0; overflow-wrap: anywhere; }
.ltxm-health.ltxm-health-bad { opacity: 1; color: #e74c3c; }
.ltxm-error { background: #3b1a1a; border-left: 3px solid #c0392b; padding: 6px 8px; white-space: pre-wrap;
  word-break: break-word; }
.ltxm-samples { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 8px; }
.ltxm-samples figure { margin: 0; }
.ltxm-samples video { width: 100%; border-radius: 4px; background: #000; }
.ltxm-samples figcaption { font-size: 11px; opacity: .8; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.ltxm-links a { color: var(--fg-color, #ddd); margin-right: 10px; font-size: 12px; }
.ltxm-node { display: flex; flex-direction: column; gap: 4px; font-size: 11px; color: var(--fg-color, #ddd);
  overflow: hidden; height: 100%; box-sizing: border-box; }
.ltxm-node canvas { width: 100%; height: 64px; display: block; background: rgba(0,0,0,.15); border-radius: 3px; }
.ltxm-node video { width: 100%; min-height: 0; flex: 1; object-fit: contain; background: #000; border-radius: 3px; }
.ltxm-floating { position: fixed; right: 12px; bottom: 12px; width: 380px; height: 70vh; z-index: 1000;
  background: var(--comfy-menu-bg, #222); border: 1px solid var(--border-color, #555); border-radius: 6px; }
.ltxm-floating-toggle { position: fixed; right: 12px; bottom: 12px; z-index: 1001; }
`;

function injectCss() {
  if (document.getElementById("ltxm-style")) return;
  document.head.append(h("style", { id: "ltxm-style", text: CSS }));
}

// ------------------------------------------------------------------------------------------------ chart

const RAW_COLOR = "rgba(95, 168, 255, 0.7)";
const SMOOTH_COLOR = "#ffb347";

function strokeLine(ctx, pts, color, width) {
  ctx.strokeStyle = color;
  ctx.lineWidth = width;
  ctx.beginPath();
  let pen = false;
  for (const p of pts) {
    if (p === null) {
      pen = false;
      continue;
    }
    if (pen) ctx.lineTo(p[0], p[1]);
    else ctx.moveTo(p[0], p[1]);
    pen = true;
  }
  ctx.stroke();
}

// Paint the loss chart into `ctx` inside box {x, y, w, h}; compact = no axes (node widget).
function paintChart(ctx, box, state, { compact = false } = {}) {
  const fg = getComputedStyle(document.documentElement).getPropertyValue("--fg-color").trim() || "#ddd";
  const L = chartLayout(state.steps, {
    width: box.w,
    height: box.h,
    total: state.total,
    ...(compact ? { padLeft: 3, padRight: 3, padTop: 3, padBottom: 3 } : {}),
  });
  ctx.save();
  ctx.translate(box.x, box.y);
  ctx.font = "10px sans-serif";
  if (L.empty) {
    ctx.fillStyle = fg;
    ctx.globalAlpha = 0.6;
    ctx.fillText(state.status === "running" ? "waiting for the first step…" : "no loss recorded", 8, box.h / 2);
    ctx.restore();
    return;
  }
  if (!compact) {
    ctx.strokeStyle = fg;
    ctx.fillStyle = fg;
    ctx.globalAlpha = 0.15;
    ctx.lineWidth = 1;
    for (const t of L.yTicks) {
      ctx.beginPath();
      ctx.moveTo(L.plot.left, Math.round(t.px) + 0.5);
      ctx.lineTo(L.plot.right, Math.round(t.px) + 0.5);
      ctx.stroke();
    }
    ctx.globalAlpha = 0.7;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const t of L.yTicks) ctx.fillText(formatLoss(t.v).replace(/\.?0+$/, ""), L.plot.left - 4, t.px);
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const t of L.xTicks) ctx.fillText(String(t.v), t.px, L.plot.bottom + 4);
    ctx.globalAlpha = 1;
  }
  strokeLine(ctx, L.raw, RAW_COLOR, 1);
  strokeLine(ctx, L.smooth, SMOOTH_COLOR, compact ? 1.5 : 2);
  ctx.restore();
}

function drawCanvas(canvas, state, opts) {
  const w = canvas.clientWidth;
  const hgt = canvas.clientHeight;
  if (!w || !hgt) return;
  const dpr = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(hgt * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(hgt * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, hgt);
  paintChart(ctx, { x: 0, y: 0, w, h: hgt }, state, opts);
}

function sampleVideo(jobId, file) {
  return h("video", { src: url(fileRoute(jobId, file)), controls: true, loop: true, muted: true, preload: "metadata",
                      playsinline: true });
}

// ------------------------------------------------------------------------------------------------ sidebar panel

class MonitorPanel {
  constructor() {
    this.root = h("div", { class: "ltxm-root", "data-testid": "ltx-monitor" });
    this.header = h("div", { class: "ltxm-header" },
      h("h3", { text: "LTX Training" }),
      h("button", { class: "ltxm-btn", text: "Refresh", title: "Reload jobs from the server",
                    onclick: () => store.resync() }));
    this.banner = h("div", { class: "ltxm-banner", hidden: true });
    this.list = h("ul", { class: "ltxm-jobs", "data-testid": "ltx-jobs" });
    this.detail = h("div", { class: "ltxm-detail", "data-testid": "ltx-detail" });
    this.root.append(this.header, this.banner, this.list, this.detail);
    this.detailFor = null;
    this.render = frameThrottle(() => this.update());
    this.resize = new ResizeObserver(() => this.render());
    this.unsubscribe = null;
  }

  mount(el) {
    injectCss();
    el.replaceChildren(this.root);
    el.style.height = "100%";
    if (!this.unsubscribe) this.unsubscribe = store.subscribe(this.render);
    this.resize.observe(this.root);
    if (!store.listLoaded) store.refreshList();
    this.update();
  }

  unmount() {
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.resize.disconnect();
    for (const v of this.root.querySelectorAll("video")) v.pause();
  }

  update() {
    if (!this.root.isConnected) return;
    this.banner.hidden = !store.error;
    this.banner.textContent = store.error ? `${store.error} — retrying…` : "";
    this.updateList();
    this.updateDetail();
  }

  updateList() {
    const jobs = store.jobs();
    if (!jobs.length) {
      this.list.replaceChildren(h("li", { class: "ltxm-empty",
        text: store.listLoaded ? "No training jobs yet. Queue a workflow with a Train LoRA node to start one."
                               : "Loading jobs…" }));
      return;
    }
    this.list.replaceChildren(...jobs.map((j) => {
      const meta = [STATUS_TEXT[j.status] || j.status, formatStep(j.step, j.total)];
      if (j.loss !== null && j.loss !== undefined) meta.push(`loss ${formatLoss(j.loss)}`);
      return h("li", {
        class: `ltxm-job ltxm-s-${j.status}${j.id === store.selectedId ? " ltxm-selected" : ""}`,
        "data-job-id": j.id,
        title: j.error || j.id,
        onclick: () => store.select(j.id),
      }, h("span", { class: "ltxm-dot" }), h("span", { class: "ltxm-name", text: j.name || j.id }),
      h("span", { class: "ltxm-meta", text: meta.join(" · ") }));
    }));
  }

  buildDetail(jobId) {
    const d = {};
    d.name = h("h4");
    d.badge = h("span", { class: "ltxm-badge", "data-testid": "ltx-status" });
    d.progress = h("div");
    d.stats = {};
    const stat = (key, label) => {
      d.stats[key] = h("dd", { "data-stat": key, text: "–" });
      return h("div", {}, h("dt", { text: label }), d.stats[key]);
    };
    d.canvas = h("canvas", { class: "ltxm-chart", "data-testid": "ltx-chart" });
    d.cancel = h("button", { class: "ltxm-btn ltxm-danger", text: "Cancel training", "data-testid": "ltx-cancel",
                             onclick: () => this.onCancel(jobId) });
    d.msg = h("span", { class: "ltxm-msg" });
    d.error = h("div", { class: "ltxm-error", hidden: true, "data-testid": "ltx-error" });
    d.health = h("div", { class: "ltxm-health", hidden: true, "data-testid": "ltx-health" });
    d.links = h("div", { class: "ltxm-links" });
    d.samples = h("div", { class: "ltxm-samples", "data-testid": "ltx-samples" });
    d.sampleEls = new Map(); // file -> figure (kept, so playing videos are not reset by updates)
    d.samplesHead = h("h4", { text: "Validation samples", hidden: true });
    this.detail.replaceChildren(
      h("div", { class: "ltxm-title" }, d.name, d.badge),
      h("div", { class: "ltxm-progress" }, d.progress),
      h("dl", { class: "ltxm-stats" }, stat("step", "Step"), stat("eta", "ETA"), stat("loss", "Loss"),
        stat("smoothed", "Smoothed"), stat("lr", "LR"), stat("speed", "Speed"), stat("memory", "Memory"),
        stat("elapsed", "Elapsed")),
      d.canvas,
      h("div", { class: "ltxm-legend" }, h("span", { style: `--c:${RAW_COLOR}`, text: "loss" }),
        h("span", { style: `--c:${SMOOTH_COLOR}`, text: "smoothed (EMA 0.9)" })),
      h("div", { class: "ltxm-actions" }, d.cancel, d.msg),
      d.health, d.error, d.links, d.samplesHead, d.samples);
    this.d = d;
    this.detailFor = jobId;
    this.armed = null;
  }

  updateDetail() {
    const jobId = store.selectedId;
    const m = jobId ? store.monitor(jobId) : null;
    if (!jobId || !m) {
      this.detailFor = null;
      this.detail.replaceChildren(jobId ? h("div", { class: "ltxm-empty", text: "Loading…" }) : "");
      return;
    }
    if (this.detailFor !== jobId) this.buildDetail(jobId);
    const d = this.d;
    const st = m.state;
    const status = m.status;
    const summary = store.jobs().find((j) => j.id === jobId);
    d.name.textContent = summary?.name || jobId;
    d.name.title = jobId;
    d.badge.textContent = STATUS_TEXT[status] || status;
    d.badge.className = `ltxm-badge ltxm-s-${status}`;
    d.progress.style.width = `${100 * progressFraction(st.step, st.total)}%`;
    this.updateClock();
    d.stats.step.textContent = formatStep(st.step, st.total);
    d.stats.loss.textContent = formatLoss(st.loss);
    d.stats.smoothed.textContent = formatLoss(st.smoothed_loss);
    d.stats.lr.textContent = formatLr(st.lr);
    d.stats.speed.textContent = formatSecPerStep(st.sec_per_step);
    d.stats.memory.textContent = formatMemory(st.memory_mb);
    drawCanvas(d.canvas, st);
    d.cancel.disabled = status !== "running";
    d.cancel.hidden = !(status === "running" || status === "queued");
    d.health.hidden = !st.health?.summary;
    if (st.health) {
      d.health.textContent = st.health.summary;
      d.health.classList.toggle("ltxm-health-bad", !st.health.ok);
    }
    const err = m.error;
    d.error.hidden = !(status === "failed" && err);
    if (!d.error.hidden) {
      d.error.replaceChildren(h("strong", { text: "Training failed: " }), err.message || "unknown error");
    }
    if (status === "cancelled" && st.cancelled) {
      const why = st.cancelled.reason ? ` (${st.cancelled.reason})` : "";
      d.msg.textContent = st.cancelled.checkpoint
        ? `Cancelled at step ${st.cancelled.step}${why}; resumable checkpoint saved.`
        : `Cancelled at step ${st.cancelled.step}${why}.`;
    }
    this.updateLinks(jobId, m, status);
    this.updateSamples(jobId, st);
  }

  updateLinks(jobId, m, status) {
    const links = [];
    const job = store.jobs().find((j) => j.id === jobId);
    if (status === "finished") {
      // the files the trainer reported; the two standard LoRA files if it reported none
      const outputs = outputFiles(m.state, m.jobDir, m.outputDir);
      const shown = outputs.length ? outputs
        : [["LoRA (ComfyUI)", "lora_weights_comfy.safetensors"], ["LoRA (diffusers)", "lora_weights.safetensors"]];
      for (const [name, rel] of shown) {
        links.push(h("a", { href: url(fileRoute(jobId, rel)), download: rel.split("/").pop(), text: name, title: rel }));
      }
    }
    const log = m.error?.log || m.files?.log || job?.log;
    if (typeof log === "string" && log && !log.startsWith("/") && !/^[A-Za-z]:/.test(log)) {
      links.push(h("a", { href: url(fileRoute(jobId, log)), target: "_blank", text: "log" }));
    }
    // a finished run usually reports its config among the outputs already: one link per file
    const config = url(fileRoute(jobId, m.files?.config || "training_config.yaml"));
    if (!links.some((a) => a.getAttribute("href") === config)) {
      links.push(h("a", { href: config, target: "_blank", text: "config" }));
    }
    const key = links.map((a) => `${a.textContent}=${a.getAttribute("href")}`).join("|");
    if (this.d.linksKey !== key) {
      this.d.links.replaceChildren(...links);
      this.d.linksKey = key;
    }
  }

  updateSamples(jobId, st) {
    const d = this.d;
    const wanted = sampleVideos(st); // newest first
    const keep = new Set(wanted.map((w) => w.file));
    for (const [file, fig] of d.sampleEls) {
      if (!keep.has(file)) {
        fig.remove();
        d.sampleEls.delete(file);
      }
    }
    wanted.forEach((w, i) => {
      let fig = d.sampleEls.get(w.file);
      if (!fig) {
        fig = h("figure", { "data-file": w.file }, sampleVideo(jobId, w.file),
          h("figcaption", { title: w.prompt, text: `step ${w.step ?? "?"} · ${w.prompt}` }));
        d.sampleEls.set(w.file, fig);
      }
      if (d.samples.children[i] !== fig) d.samples.insertBefore(fig, d.samples.children[i] || null);
    });
    d.samplesHead.hidden = wanted.length === 0;
  }

  updateClock() {
    if (!this.d || !this.root.isConnected) return;
    const m = store.monitor(this.detailFor);
    if (!m) return;
    const st = m.state;
    const now = store.serverNowSec();
    const running = m.status === "running";
    this.d.stats.eta.textContent = running ? formatDuration(etaSeconds({ ...st, status: m.status }, now)) : "–";
    const start = st.runs.length ? st.runs[st.runs.length - 1].time : st.started_at;
    const end = running ? now : st.updated;
    this.d.stats.elapsed.textContent = start && end ? formatDuration(end - start) : "–";
  }

  async onCancel(jobId) {
    const btn = this.d.cancel;
    if (this.armed !== jobId) {
      // two clicks: a stray click must not stop a long run (even though it can be resumed)
      this.armed = jobId;
      btn.textContent = "Click again to cancel";
      btn.classList.add("ltxm-armed");
      setTimeout(() => {
        if (this.armed === jobId) this.disarm();
      }, 4000);
      return;
    }
    this.disarm();
    btn.disabled = true;
    this.d.msg.textContent = "Cancelling…";
    const res = await store.cancel(jobId);
    this.d.msg.textContent = res.message;
    toast(res.ok ? "info" : "warn", "LTX Training", res.message);
  }

  disarm() {
    this.armed = null;
    if (!this.d) return;
    this.d.cancel.textContent = "Cancel training";
    this.d.cancel.classList.remove("ltxm-armed");
  }
}

// ------------------------------------------------------------------------------------------------ node widget

const NODE_CHART_H = 64;
const NODE_VIDEO_H = 150;

class NodeMonitor {
  constructor(node) {
    this.node = node;
    this.line = h("div", { text: "No training run yet." });
    this.canvas = h("canvas");
    this.video = h("video", { muted: true, loop: true, autoplay: true, playsinline: true, hidden: true });
    this.video.muted = true; // the attribute alone does not allow autoplay everywhere
    this.root = h("div", { class: "ltxm-node", "data-testid": "ltx-node-monitor" }, this.line, this.canvas, this.video);
    this.file = null;
    this.requested = null;
    this.render = frameThrottle(() => this.update());
    if (typeof node.addDOMWidget === "function") {
      injectCss();
      this.widget = node.addDOMWidget("ltx_training_monitor", "ltx_trainer_monitor", this.root, {
        serialize: false, // graphToPrompt skips it: not an input of the node
        hideOnZoom: false,
        getMinHeight: () => 24 + NODE_CHART_H + (this.file ? NODE_VIDEO_H : 0),
      });
      this.widget.serialize = false; // not in widgets_values either, so saved workflows keep their shape
    } else {
      // very old frontends: draw the curve on the node itself
      const orig = node.onDrawForeground;
      node.onDrawForeground = function (ctx) {
        orig?.apply(this, arguments);
        const m = monitorFor(this);
        if (m) paintChart(ctx, { x: 8, y: this.size[1] - NODE_CHART_H - 6, w: this.size[0] - 16, h: NODE_CHART_H }, m.state, { compact: true });
      };
    }
    this.unsubscribe = store.subscribe(this.render);
    nodeMonitors.add(this);
    this.update();
  }

  update() {
    // node.id is only final once the node is in the graph (and after a workflow load); the 1 s ticker re-renders
    const jobId = jobForNodeObject(this.node);
    const m = jobId ? store.monitor(jobId) : null;
    if (jobId && !m && this.requested !== jobId) {
      this.requested = jobId;
      store.loadJob(jobId);
    }
    if (!this.widget) {
      this.node.setDirtyCanvas?.(true, false);
      return;
    }
    if (!m) return;
    const st = m.state;
    const parts = [STATUS_TEXT[m.status] || m.status, `step ${formatStep(st.step, st.total)}`];
    if (st.smoothed_loss !== null) parts.push(`loss ${formatLoss(st.smoothed_loss)}`);
    if (m.status === "running") {
      const eta = etaSeconds({ ...st, status: m.status }, store.serverNowSec());
      if (eta !== null) parts.push(`ETA ${formatDuration(eta)}`);
    }
    if (m.status === "failed" && m.error?.message) parts.push(m.error.message);
    this.line.textContent = parts.join(" · ");
    this.line.title = this.line.textContent;
    drawCanvas(this.canvas, st, { compact: true });
    const sample = latestSample(st);
    if (sample && sample.file !== this.file) {
      const first = this.file === null;
      this.file = sample.file;
      this.video.src = url(fileRoute(jobId, sample.file));
      this.video.title = `step ${sample.step} · ${sample.prompt}`;
      this.video.hidden = false;
      this.video.play?.().catch(() => {});
      if (first) this.grow();
    }
  }

  // Make room for the video once; never shrink what the user sized.
  grow() {
    const min = this.node.computeSize?.();
    if (!min) return;
    this.node.setSize?.([Math.max(this.node.size[0], min[0]), Math.max(this.node.size[1], min[1])]);
    this.node.setDirtyCanvas?.(true, true);
  }

  remove() {
    nodeMonitors.delete(this);
    this.unsubscribe?.();
    this.video.pause?.();
    this.video.removeAttribute("src");
  }
}

const nodeMonitors = new Set();

// Node ids repeat across workflows, so TrainLoRA keys its job by "<workflow id>:<node id>"; a bare node id is only
// a fallback for jobs started from prompts without a workflow (API calls).
function nodeKey(node) {
  const wf = app.graph?.id;
  return wf ? `${wf}:${node.id}` : String(node.id);
}

function jobForNodeObject(node) {
  return store.jobForNode(nodeKey(node)) ?? store.jobForNode(String(node.id));
}

function monitorFor(node) {
  const jobId = jobForNodeObject(node);
  return jobId ? store.monitor(jobId) : null;
}

// ------------------------------------------------------------------------------------------------ registration

const panel = new MonitorPanel();

function mountFloatingPanel() {
  // Frontends without sidebar tabs: a toggle button and a floating panel.
  const box = h("div", { class: "ltxm-floating", hidden: true });
  const toggle = h("button", { class: "ltxm-btn ltxm-floating-toggle", text: "LTX Training", onclick: () => {
    box.hidden = !box.hidden;
    if (box.hidden) panel.unmount();
    else panel.mount(box);
    toggle.style.bottom = box.hidden ? "12px" : "calc(70vh + 20px)";
  } });
  document.body.append(box, toggle);
}

// A node loaded from a workflow saved by an earlier release whose widgets were laid out otherwise: litegraph has set
// its widgets by position; set them again by name (web/lib/widget_layouts.js), the new widgets to their defaults.
function keepEarlierLayouts(nodeType, nodeData) {
  const specs = { ...(nodeData.input?.required || {}), ...(nodeData.input?.optional || {}) };
  const configure = nodeType.prototype.onConfigure;
  nodeType.prototype.onConfigure = function (info) {
    const r = configure?.apply(this, arguments);
    const widgets = (this.widgets || []).filter((w) => w.serialize !== false && w.name in specs);
    const values = migratedWidgetValues(nodeData.name, info?.widgets_values, widgets.map((w) => {
      const [kind, opts] = specs[w.name];
      return { name: w.name, default: opts?.default ?? (Array.isArray(kind) ? kind[0] : opts?.options?.[0]) };
    }));
    if (values) {
      widgets.forEach((w, i) => { w.value = values[i]; });
      console.info(`LTX Trainer: node ${this.id} (${nodeData.name}) was saved by an earlier release; its widget values were mapped by name`);
    }
    return r;
  };
}

app.registerExtension({
  name: EXTENSION,

  async setup() {
    injectCss();
    api.addEventListener("ltx_trainer.event", (e) => store.onLiveEvent(e.detail));
    api.addEventListener("ltx_trainer.jobs", () => store.onJobsChanged());
    api.addEventListener("reconnected", () => store.onReconnected());
    if (typeof app.extensionManager?.registerSidebarTab === "function") {
      app.extensionManager.registerSidebarTab({
        id: TAB_ID,
        icon: "pi pi-chart-line",
        title: "LTX Training",
        tooltip: "LTX Training: live loss, samples and cancel for training jobs",
        type: "custom",
        render: (el) => panel.mount(el),
        destroy: () => panel.unmount(),
      });
    } else {
      mountFloatingPanel();
    }
    setInterval(() => {
      store.tick();
      panel.updateClock();
      for (const nm of nodeMonitors) nm.render();
    }, 1000);
    store.refreshList();
    // for debugging from the browser console
    window.LTXTrainerMonitor = { store, panel };
  },

  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (EARLIER_LAYOUTS[nodeData?.name]) keepEarlierLayouts(nodeType, nodeData);
    if (!NODE_TYPES.has(nodeData?.name)) return;
    const created = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const r = created?.apply(this, arguments);
      this.ltxMonitor = new NodeMonitor(this);
      return r;
    };
    const executed = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      const r = executed?.apply(this, arguments);
      const jobId = message?.ltx_job?.[0];
      if (typeof jobId === "string") {
        store.nodeJobs.set(nodeKey(this), jobId);
        this.ltxMonitor?.update();
      }
      return r;
    };
    const removed = nodeType.prototype.onRemoved;
    nodeType.prototype.onRemoved = function () {
      this.ltxMonitor?.remove();
      return removed?.apply(this, arguments);
    };
  },
});
