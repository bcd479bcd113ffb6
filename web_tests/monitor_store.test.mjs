// The store with fake routes, clock and timers: initial load, live events, reconnect, polling, retries, cancel.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { Backoff } from "../web/lib/monitor_state.js";
import { MonitorStore } from "../web/lib/monitor_store.js";

const EVENTS = readFileSync(new URL("../tests/fixtures/monitor_events_resume.jsonl", import.meta.url), "utf8")
  .split("\n")
  .filter(Boolean)
  .map((l) => JSON.parse(l));

// A fake server holding one job's events file; `down` makes every request fail like a restarting server.
function fakeServer({ events = EVENTS.slice(0, 8), status = "running" } = {}) {
  const srv = {
    events: [...events],
    status,
    down: false,
    error: null,
    others: [], // ids of further jobs that exist (with no events yet)
    requests: [],
    cancels: 0,
    summary() {
      return { id: "j1", name: "cat lora", created: 1000, status: srv.status, step: null, total: 10, node_id: "7" };
    },
    async fetchJson(path) {
      srv.requests.push(path);
      if (srv.down) throw new Error("Failed to fetch");
      if (path === "/ltx_trainer/jobs") return { jobs: [srv.summary()] };
      if (path === "/ltx_trainer/jobs/j1") {
        return {
          job: srv.summary(),
          state: { status: srv.status, error: null, job_dir: "/jobs/j1", output_dir: "/jobs/j1", now: 5000,
                   log: "train.log", config: "training_config.yaml" },
          events: [...srv.events],
          next: srv.events.length,
        };
      }
      const m = path.match(/^\/ltx_trainer\/jobs\/j1\/events\?since=(\d+)$/);
      if (m) return { events: srv.events.slice(Number(m[1])), next: srv.events.length, status: srv.status, error: srv.error };
      const other = path.match(/^\/ltx_trainer\/jobs\/(j[2-9])$/);
      if (other && srv.others.includes(other[1])) {
        const st = { status: "running", error: null, job_dir: `/jobs/${other[1]}`, output_dir: `/jobs/${other[1]}`, now: 5000 };
        return { job: null, state: st, events: [], next: 0 };
      }
      const err = new Error(`no job`);
      err.status = 404;
      throw err;
    },
    async postJson(path) {
      srv.requests.push(`POST ${path}`);
      if (srv.down) throw new Error("Failed to fetch");
      srv.cancels += 1;
      return { job_id: "j1", signalled: srv.status === "running", status: srv.status };
    },
  };
  return srv;
}

function makeStore(srv, clock = { t: 1_000_000 }) {
  const timers = [];
  const store = new MonitorStore({
    fetchJson: srv.fetchJson,
    postJson: srv.postJson,
    nowMs: () => clock.t,
    schedule: (fn, ms) => timers.push({ fn, ms }) && timers.length,
    unschedule: () => {},
    backoff: new Backoff({ baseMs: 1000, maxMs: 8000 }),
  });
  return { store, timers, clock };
}

const flush = () => new Promise((r) => setTimeout(r, 0));

test("initial load selects the job, folds its history and maps node 7 to it", async () => {
  const srv = fakeServer();
  const { store } = makeStore(srv);
  let notified = 0;
  store.subscribe(() => (notified += 1));
  await store.refreshList();
  await flush();
  assert.equal(store.selectedId, "j1");
  const m = store.monitor("j1");
  assert.equal(m.status, "running");
  assert.deepEqual(m.state.steps.map((s) => s.step), [1, 2, 3, 4, 5]);
  assert.deepEqual(m.state.samples[0].files, ["validation_samples/step_000005_0.mp4"]);
  assert.equal(store.jobForNode(7), "j1");
  assert.equal(store.jobs()[0].step, 5); // the list row follows the folded state
  assert.ok(notified >= 2);
  assert.equal(store.clockOffsetSec, 5000 - 1000);
});

test("live events fold in; duplicates and the later poll change nothing", async () => {
  const srv = fakeServer();
  const { store } = makeStore(srv);
  await store.refreshList();
  await flush();
  // websocket delivers event 8 and 9; one of them twice
  store.onLiveEvent({ job_id: "j1", node_id: "7", event: EVENTS[8] });
  store.onLiveEvent({ job_id: "j1", node_id: "7", event: EVENTS[8] });
  store.onLiveEvent({ job_id: "j1", node_id: "7", event: EVENTS[9] });
  const m = store.monitor("j1");
  assert.equal(m.events.length, 10);
  srv.events = EVENTS.slice(0, 12); // meanwhile the file grew
  await store.poll("j1");
  assert.equal(m.events.length, 12);
  assert.deepEqual(m.events, EVENTS.slice(0, 12));
});

test("a live event for an unknown job loads it and refreshes the list", async () => {
  const srv = fakeServer();
  const { store } = makeStore(srv);
  store.onLiveEvent({ job_id: "j1", node_id: "3", event: EVENTS[0] });
  await flush();
  await flush();
  assert.ok(srv.requests.includes("/ltx_trainer/jobs/j1"));
  assert.ok(srv.requests.includes("/ltx_trainer/jobs"));
  assert.equal(store.monitor("j1").events.length, 8);
  assert.equal(store.jobForNode("3"), "j1"); // the live event's node wins over job.json's
});

test("a lifecycle event overrides the status the server derived", async () => {
  const srv = fakeServer({ status: "running" });
  const { store } = makeStore(srv);
  await store.refreshList();
  await flush();
  store.onLiveEvent({ job_id: "j1", node_id: "7", event: { event: "cancelled", time: 1020, step: 6, checkpoint: "c" } });
  assert.equal(store.monitor("j1").status, "cancelled");
  assert.equal(store.jobs()[0].status, "cancelled");
});

test("reconnect refetches what was missed while the socket was down", async () => {
  const srv = fakeServer();
  const { store } = makeStore(srv);
  await store.refreshList();
  await flush();
  srv.events = [...EVENTS]; // finished while we were disconnected
  srv.status = "finished";
  await store.onReconnected();
  const m = store.monitor("j1");
  assert.equal(m.events.length, EVENTS.length);
  assert.equal(m.status, "finished");
  assert.equal(m.state.steps.length, 10);
});

test("failed fetches back off and recover", async () => {
  const srv = fakeServer();
  const { store, timers } = makeStore(srv);
  srv.down = true;
  await store.refreshList();
  assert.match(store.error, /could not load the training jobs: Failed to fetch/);
  assert.equal(timers.length, 1);
  assert.equal(timers[0].ms, 1000);
  await timers[0].fn(); // retry fires while still down
  await flush();
  assert.equal(timers.length, 2);
  assert.equal(timers[1].ms, 2000);
  srv.down = false;
  await timers[1].fn();
  await flush();
  await flush();
  assert.equal(store.error, null);
  assert.equal(store.backoff.attempts, 0);
  assert.equal(store.monitor("j1").events.length, 8);
});

test("tick polls a running job only when live events have gone quiet", async () => {
  const srv = fakeServer();
  const { store, clock } = makeStore(srv);
  await store.refreshList();
  await flush();
  const polls = () => srv.requests.filter((r) => r.includes("/events?since=")).length;
  clock.t += 1000;
  store.onLiveEvent({ job_id: "j1", node_id: "7", event: EVENTS[8] });
  clock.t += 2000;
  await store.tick();
  assert.equal(polls(), 0); // live events are flowing
  clock.t += 6000;
  srv.events = EVENTS.slice(0, 9);
  srv.events.push({ event: "step", time: 1013.5, step: 7, total: 10, loss: 0.5, lr: 1e-4 });
  await store.tick();
  assert.equal(polls(), 1); // quiet for 8 s: ask the server
  assert.equal(store.monitor("j1").events.length, 10);
  assert.equal(store.monitor("j1").state.step, 7);
  await store.tick();
  assert.equal(polls(), 1); // not again right away
  srv.status = "finished";
  srv.events.push({ event: "done", time: 1014, step: 7, total: 7, seconds: 14, outputs: {} });
  clock.t += 10000;
  await store.tick();
  assert.equal(polls(), 2);
  assert.equal(store.monitor("j1").status, "finished");
  clock.t += 10000;
  await store.tick();
  assert.equal(polls(), 2); // a finished job is not polled any more
});

test("a shrunken events file means a new job under the same id: reload it", async () => {
  const srv = fakeServer();
  const { store } = makeStore(srv);
  await store.refreshList();
  await flush();
  srv.events = EVENTS.slice(0, 2);
  await store.poll("j1");
  assert.equal(store.monitor("j1").events.length, 2);
});

test("cancel posts and reports what happened", async () => {
  const srv = fakeServer();
  const { store } = makeStore(srv);
  await store.refreshList();
  await flush();
  const ok = await store.cancel("j1");
  assert.equal(ok.ok, true);
  assert.match(ok.message, /resumable checkpoint/);
  assert.ok(srv.requests.includes("POST /ltx_trainer/jobs/j1/cancel"));
  srv.status = "finished";
  const no = await store.cancel("j1");
  assert.equal(no.ok, false);
  assert.match(no.message, /job is finished/);
  srv.down = true;
  const err = await store.cancel("j1");
  assert.equal(err.ok, false);
  assert.match(err.message, /Cancel failed/);
});

test("a deleted job disappears", async () => {
  const srv = fakeServer();
  const { store } = makeStore(srv);
  await store.refreshList();
  await flush();
  await store.loadJob("gone");
  assert.equal(store.monitor("gone"), null);
  assert.deepEqual(store.jobs().map((j) => j.id), ["j1"]);
});

test("a job that starts is selected unless another running job is shown", async () => {
  const srv = fakeServer({ status: "finished", events: EVENTS });
  srv.others = ["j2", "j3"];
  const { store } = makeStore(srv);
  await store.refreshList();
  await flush();
  assert.equal(store.selectedId, "j1");
  store.onLiveEvent({ job_id: "j2", node_id: "9", event: { event: "started", time: 3000, step: 0, total: 5 } });
  assert.equal(store.selectedId, "j2"); // j1 is finished: follow the new run
  store.onLiveEvent({ job_id: "j3", node_id: "9", event: { event: "started", time: 3001, step: 0, total: 5 } });
  assert.equal(store.selectedId, "j2"); // j2 is running: keep showing it
  store.onLiveEvent({ job_id: "j2", node_id: "9", event: { event: "step", time: 3002, step: 1, total: 5, loss: 1 } });
  await flush();
  await flush();
  assert.equal(store.selectedId, "j2");
  assert.equal(store.monitor("j2").state.step, 1);
  assert.equal(store.monitor("j2").state.samples.length, 0);
  assert.equal(store.jobForNode(9), "j2");
});

test("a poll carries the server's status: a trainer that vanished turns failed", async () => {
  const srv = fakeServer();
  const { store, clock } = makeStore(srv);
  await store.refreshList();
  await flush();
  assert.equal(store.monitor("j1").status, "running");
  srv.status = "failed";
  srv.error = "the training process ended without reporting (killed or crashed); see its log";
  clock.t += 10000;
  await store.tick();
  assert.equal(store.monitor("j1").status, "failed");
  assert.match(store.monitor("j1").error.message, /ended without reporting/);
  assert.equal(store.jobs()[0].status, "failed");
});

test("a loaded job keeps the log and config files the job route names (the panel links them)", async () => {
  const srv = fakeServer();
  const { store } = makeStore(srv);
  await store.refreshList();
  await flush();
  assert.deepEqual(store.monitor("j1").files, { log: "train.log", config: "training_config.yaml" });
});
