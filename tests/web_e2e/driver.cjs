#!/usr/bin/env node
// Browser half of tests/test_web_e2e.py: drives the real ComfyUI editor (headless Chromium via playwright-core, as
// in ../../../shared/comfyui-harness/ui_driver.cjs) and checks the LTX Training monitor.
//
// usage: node driver.cjs standin|real URL OUT_DIR
//   standin: the e2e stand-in pack is loaded; run a short fake training, watch it live, reload, cancel a second one
//   real:    the real pack is loaded; check the sidebar tab, routes and the widget on LTXTrainer_TrainLoRA
// Prints one JSON line {ok, checks: [[name, ok, detail]], problems: [...]} and exits 0 only when every check passed.
// env: HARNESS_NODE_DIR (playwright-core, default /tmp/comfyui-harness-node), CHROMIUM (default /usr/bin/chromium)
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { createRequire } = require("module");

const NODE_DIR = process.env.HARNESS_NODE_DIR || "/tmp/comfyui-harness-node";
const { chromium } = createRequire(path.join(NODE_DIR, "node_modules", "_x_.js"))("playwright-core");
const [MODE, URL_, OUT] = process.argv.slice(2);
const NODE_TYPE = "LTXTrainer_TrainLoRA";
const checks = [];
const problems = [];
const check = (name, ok, detail = "") => checks.push([name, Boolean(ok), String(detail).slice(0, 500)]);

// Noise every offline start of frontend 1.27 makes (see the harness README).
const BENIGN = [
  /HTTP 404: .*\/user\.css$/, /HTTP 404: .*\/api\/userdata\?dir=(workflows|subgraphs)/,
  /HTTP 404: .*\/api\/userdata\/comfy\.templates\.json/, /api\.comfy\.org/, /user\.css|comfy\.templates\.json/,
  /^console\.error: Failed to load resource/, /favicon/, /reading 'id'\)\s+at onChange/, /ERR_ABORTED/,
  // Frontend 1.49 (ComfyUI 0.33) logs this on every start, with or without custom nodes (harness README).
  /ComfyApp graph accessed before initialization/,
];

async function waitFor(page, fn, arg, timeoutMs = 30000) {
  try {
    await page.waitForFunction(fn, arg, { timeout: timeoutMs, polling: 200 });
    return true;
  } catch {
    return false;
  }
}

async function openEditor(ctx) {
  const page = await ctx.newPage();
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message} ${(e.stack || "").split("\n").slice(1, 4).join(" | ")}`));
  page.on("console", (m) => m.type() === "error" && problems.push(`console.error: ${m.text()}`));
  page.on("response", (r) => r.status() >= 400 && problems.push(`HTTP ${r.status()}: ${r.url()}`));
  await page.goto(`${URL_}/`, { waitUntil: "domcontentloaded", timeout: 120000 });
  await page.waitForFunction(() => window.app && window.app.graph && window.comfyAPI, null, { timeout: 120000 });
  await waitFor(page, () => (window.app.extensions || []).some((e) => e.name === "LTXTrainer.Monitor"), null, 60000);
  await page.waitForTimeout(1000);
  return page;
}

async function openTab(page) {
  await page.evaluate(async () => {
    const id = "Workspace.ToggleSidebarTab.ltx-trainer-monitor";
    if (!document.querySelector("[data-testid=ltx-monitor]")?.isConnected) await window.app.extensionManager.command.execute(id);
  });
  return waitFor(page, () => document.querySelector("[data-testid=ltx-monitor]")?.isConnected, null, 10000);
}

async function addTrainNode(page, values, type = NODE_TYPE) {
  return page.evaluate(({ type, values }) => {
    const node = window.LiteGraph.createNode(type);
    node.pos = [420, 120];
    window.app.graph.add(node);
    for (const [k, v] of Object.entries(values || {})) {
      const w = node.widgets.find((x) => x.name === k);
      if (w) w.value = v;
    }
    window.app.canvas.setDirty(true, true);
    return node.id;
  }, { type, values });
}

async function queue(page) {
  return page.evaluate(async () => {
    const api = window.comfyAPI.api.api;
    const res = await api.queuePrompt(0, await window.app.graphToPrompt());
    return res;
  });
}

const text = (page, sel) => page.evaluate((s) => document.querySelector(s)?.textContent ?? null, sel);

async function standin(ctx) {
  let page = await openEditor(ctx);
  check("extension registered", await page.evaluate(() => (window.app.extensions || []).some((e) => e.name === "LTXTrainer.Monitor")));
  check("sidebar tab opens", await openTab(page));
  const listed = await waitFor(page, () => document.querySelectorAll("[data-testid=ltx-jobs] li[data-job-id]").length >= 2);
  const rows = await page.evaluate(() => [...document.querySelectorAll("[data-testid=ltx-jobs] li[data-job-id]")].map((li) => [li.dataset.jobId, li.className]));
  check("pre-existing jobs listed", listed, JSON.stringify(rows));
  check("stale 'running' job with a dead process shows failed", rows.some(([id, c]) => id === "stale-run" && c.includes("ltxm-s-failed")), JSON.stringify(rows));
  check("job that reported an error shows failed", rows.some(([id, c]) => id === "oom-run" && c.includes("ltxm-s-failed")), JSON.stringify(rows));

  // --- a live run, in an otherwise empty graph (the default workflow's nodes would fail validation)
  await page.evaluate(() => window.app.graph.clear());
  const nodeId = await addTrainNode(page, { steps: 16, step_seconds: 0.5, sample_every: 4 });
  const widgetCount = await page.evaluate((id) => window.app.graph.getNodeById(id).widgets.map((w) => w.name), nodeId);
  check("node has the monitor widget", widgetCount.includes("ltx_training_monitor"), JSON.stringify(widgetCount));
  const serial = await page.evaluate(async (id) => {
    const n = window.app.graph.getNodeById(id);
    const prompt = await window.app.graphToPrompt();
    return { values: n.serialize().widgets_values, inputs: Object.keys(prompt.output[String(id)].inputs) };
  }, nodeId);
  check("monitor widget is not serialized", serial.values.length === 3 && !serial.inputs.includes("ltx_training_monitor"), JSON.stringify(serial));
  const q = await queue(page);
  check("prompt queued", q && q.prompt_id, JSON.stringify(q));
  const live = await waitFor(page, () => {
    const b = document.querySelector("[data-testid=ltx-status]");
    const s = document.querySelector("[data-stat=step]");
    return b && b.textContent === "Running" && s && / \/ 16 /.test(s.textContent);
  });
  check("panel follows the new run live", live, await text(page, "[data-testid=ltx-detail]"));
  const sampleOk = await waitFor(page, () => document.querySelectorAll("[data-testid=ltx-samples] video").length >= 1, null, 30000);
  check("validation video appears", sampleOk);
  if (sampleOk) {
    const fetched = await page.evaluate(async () => {
      const v = document.querySelector("[data-testid=ltx-samples] video");
      const r = await fetch(v.src);
      return { src: v.src, status: r.status, type: r.headers.get("content-type"), bytes: (await r.arrayBuffer()).byteLength };
    });
    check("video served by the files route", fetched.status === 200 && fetched.type === "video/mp4" && fetched.bytes > 0, JSON.stringify(fetched));
    const playable = await waitFor(page, () => {
      const v = document.querySelector("[data-testid=ltx-samples] video");
      return v && v.readyState >= 1 && v.duration > 0;
    }, null, 10000);
    check("video has metadata (playable)", playable, "needs an H.264-capable Chromium");
  }
  const nodeLine = await waitFor(page, (id) => {
    const n = window.app.graph.getNodeById(id);
    const el = n?.ltxMonitor?.root;
    return el && /Running|Finished/.test(el.textContent) && el.querySelector("canvas").width > 0;
  }, nodeId, 20000);
  check("node shows status and loss curve", nodeLine, await page.evaluate((id) => window.app.graph.getNodeById(id)?.ltxMonitor?.root.textContent, nodeId));
  const nodePixels = await page.evaluate((id) => {
    const c = window.app.graph.getNodeById(id).ltxMonitor.canvas;
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n += 1;
    return n;
  }, nodeId);
  check("node loss curve drawn", nodePixels > 100, `${nodePixels} painted pixels`);
  const nodeVideo = await waitFor(page, (id) => !!window.app.graph.getNodeById(id)?.ltxMonitor?.video.src, nodeId, 20000);
  check("node shows the latest sample", nodeVideo);
  const chartPixels = await page.evaluate(() => {
    const c = document.querySelector("[data-testid=ltx-chart]");
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n += 1;
    return n;
  });
  check("loss chart drawn", chartPixels > 500, `${chartPixels} painted pixels`);
  if (OUT) await page.screenshot({ path: path.join(OUT, "monitor_live.png") });

  // --- reload mid-run: the state comes back from the routes
  const before = await page.evaluate(() => window.LTXTrainerMonitor.store.selectedId);
  await page.close();
  page = await openEditor(ctx);
  await openTab(page);
  const restored = await waitFor(page, (jobId) => {
    const m = window.LTXTrainerMonitor.store.monitor(jobId);
    return m && m.state.steps.length >= 2 && document.querySelector("[data-testid=ltx-detail] h4");
  }, before, 20000);
  check("reloaded page shows the same job with its history", restored, before);
  const finished = await waitFor(page, () => document.querySelector("[data-testid=ltx-status]")?.textContent === "Finished", null, 40000);
  check("run finishes in the panel", finished, await text(page, "[data-testid=ltx-detail]"));
  const lora = await page.evaluate(async () => {
    const a = [...document.querySelectorAll(".ltxm-links a")].find((x) => x.textContent === "lora_comfy");
    return a ? { href: a.href, status: (await fetch(a.href)).status } : null;
  });
  check("finished job links the LoRA it reported", lora && lora.status === 200, JSON.stringify(lora));

  // --- cancel a second run from the panel (alone in the graph, so only it runs)
  await page.evaluate(() => [...window.app.graph._nodes].forEach((n) => window.app.graph.remove(n)));
  const node2 = await addTrainNode(page, { steps: 200, step_seconds: 0.3, sample_every: 1000 });
  await queue(page);
  const running2 = await waitFor(page, () => {
    const s = window.LTXTrainerMonitor.store;
    const m = s.monitor(s.selectedId);
    return m && m.status === "running" && m.state.total === 200 && m.state.step >= 2;
  }, null, 30000);
  check("second run is followed", running2);
  await page.click("[data-testid=ltx-cancel]");
  const armed = await text(page, "[data-testid=ltx-cancel]");
  check("first click only arms Cancel", armed === "Click again to cancel", armed);
  await page.click("[data-testid=ltx-cancel]");
  const cancelled = await waitFor(page, () => document.querySelector("[data-testid=ltx-status]")?.textContent === "Cancelled", null, 20000);
  check("Cancel stops the run (SIGTERM -> cancelled event)", cancelled, await text(page, "[data-testid=ltx-detail]"));
  const nodeCancelled = await waitFor(page, (id) => /Cancelled/.test(window.app.graph.getNodeById(id)?.ltxMonitor?.root.textContent || ""), node2, 10000);
  check("node shows cancelled", nodeCancelled);
  if (OUT) await page.screenshot({ path: path.join(OUT, "monitor_cancelled.png") });
}

async function real(ctx) {
  const page = await openEditor(ctx);
  check("extension registered", await page.evaluate(() => (window.app.extensions || []).some((e) => e.name === "LTXTrainer.Monitor")));
  check("sidebar tab opens", await openTab(page));
  const routes = await page.evaluate(async () => (await fetch("/api/ltx_trainer/jobs")).status);
  check("routes registered by the pack (GET /api/ltx_trainer/jobs)", routes === 200, routes);
  // The compact Train LoRA node and the first release's all-settings one both carry the monitor.
  for (const type of ["LTXTrainer_TrainLoRA_v2", NODE_TYPE]) {
    const known = await page.evaluate((t) => !!window.LiteGraph.registered_node_types[t], type);
    check(`${type} is registered`, known);
    if (!known) continue;
    const nodeId = await addTrainNode(page, {}, type);
    const info = await page.evaluate(async (id) => {
      const n = window.app.graph.getNodeById(id);
      const prompt = await window.app.graphToPrompt();
      const names = n.widgets.map((w) => w.name);
      const serialised = n.serialize().widgets_values || [];
      const valueWidgets = n.widgets.filter((w) => w.serialize !== false).length;
      return { names, serialised: serialised.length, valueWidgets, inputs: Object.keys(prompt.output[String(id)]?.inputs || {}) };
    }, nodeId);
    check(`${type} has the monitor widget`, info.names.includes("ltx_training_monitor"), JSON.stringify(info));
    check(`${type}'s monitor widget is not serialized`, info.serialised <= info.valueWidgets && !info.inputs.includes("ltx_training_monitor"), JSON.stringify(info));
  }
  // A workflow saved by the first release (its Train LoRA had 38 widgets, 'modalities' came in the middle later)
  // loads with every value in the widget it was saved from.
  const legacy = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "fixtures", "first_release_train_from_a_dataset.json"), "utf8"));
  const loaded = await page.evaluate(async (wf) => {
    await window.app.loadGraphData(wf);
    const prompt = (await window.app.graphToPrompt()).output;
    const train = Object.values(prompt).find((n) => n.class_type === "LTXTrainer_TrainLoRA");
    return train?.inputs || null;
  }, legacy);
  const expect = { steps: 40, batch_size: 1, modalities: "auto", mixed_precision_mode: "no", validation_width: 96, job_name: "tiny example (dataset)", memory_budget_gb: 0 };
  const wrong = Object.entries(expect).filter(([k, v]) => !loaded || loaded[k] !== v);
  check("a first-release workflow loads its Train LoRA values by name", wrong.length === 0, JSON.stringify({ wrong, loaded }));
  if (OUT) await page.screenshot({ path: path.join(OUT, "monitor_real_pack.png") });
}

(async () => {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "ltxm-e2e-chromium-"));
  const ctx = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1500, height: 950 },
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--autoplay-policy=no-user-gesture-required"],
  });
  try {
    await (MODE === "real" ? real(ctx) : standin(ctx));
  } catch (e) {
    check("driver ran to the end", false, e.stack || e);
  } finally {
    await ctx.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  const real_ = problems.filter((p) => !BENIGN.some((re) => re.test(p)));
  const ok = checks.every(([, passed]) => passed) && real_.length === 0;
  console.log(JSON.stringify({ ok, checks, problems: real_ }));
  process.exit(ok ? 0 : 1);
})();
