// The monitor's data: the job list and the loaded jobs, kept current from the routes (on load, on reconnect, by
// polling when live events go quiet) and from live websocket events. Input/output is injected (fetchJson, postJson,
// clock, timers), so Node tests drive it with fakes; web/ltx_trainer_monitor.js wires it to ComfyUI's api.

import { Backoff, JobMonitor, jobRoute, pollDue, ROUTE_PREFIX, sortJobs, summaryFromMonitor } from "./monitor_state.js";

export class MonitorStore {
  constructor({
    fetchJson,
    postJson,
    nowMs = () => Date.now(),
    schedule = (fn, ms) => setTimeout(fn, ms),
    unschedule = (h) => clearTimeout(h),
    backoff = new Backoff({ jitter: 0.2 }),
  }) {
    Object.assign(this, { fetchJson, postJson, nowMs, schedule, unschedule, backoff });
    this.summaries = []; // from GET /jobs
    this.monitors = new Map(); // job id -> JobMonitor
    this.info = new Map(); // job id -> {next, lastLiveMs, lastPollMs, loaded}
    this.nodeJobs = new Map(); // node id (string) -> job id its latest event came from
    this.loading = new Map(); // job id -> promise of the running full fetch
    this.selectedId = null;
    this.error = null; // last failed fetch, shown in the panel until a fetch succeeds
    this.clockOffsetSec = 0; // server clock - this clock, for ETA countdowns
    this.listeners = new Set();
    this.retryHandle = null;
    this.listLoaded = false;
  }

  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  changed() {
    for (const fn of [...this.listeners]) {
      try {
        fn(this);
      } catch (e) {
        console.error("[LTX Training] view update failed", e);
      }
    }
  }

  serverNowSec() {
    return this.nowMs() / 1000 + this.clockOffsetSec;
  }

  // The list with live state folded in, running jobs first, newest first within a status.
  jobs() {
    const ids = new Set(this.summaries.map((j) => j.id));
    const rows = this.summaries.map((j) => (this.monitors.has(j.id) ? summaryFromMonitor(j, this.monitors.get(j.id)) : j));
    for (const [id, m] of this.monitors) {
      if (!ids.has(id)) rows.push(summaryFromMonitor({ id, name: id, created: m.state.started_at }, m));
    }
    return sortJobs(rows);
  }

  monitor(jobId) {
    return this.monitors.get(jobId) || null;
  }

  #ensureMonitor(jobId) {
    let m = this.monitors.get(jobId);
    if (!m) {
      m = new JobMonitor({ jobId });
      this.monitors.set(jobId, m);
      this.info.set(jobId, { next: 0, lastLiveMs: null, lastPollMs: null, loaded: false });
    }
    return m;
  }

  #failed(what, err) {
    this.error = `${what}: ${err?.message || err}`;
    if (this.retryHandle === null) {
      const delay = this.backoff.next();
      this.retryHandle = this.schedule(() => {
        this.retryHandle = null;
        this.resync();
      }, delay);
    }
    this.changed();
  }

  #ok() {
    if (this.error !== null || this.backoff.attempts) {
      this.error = null;
      this.backoff.reset();
    }
  }

  async refreshList() {
    try {
      const body = await this.fetchJson(`${ROUTE_PREFIX}/jobs`);
      this.summaries = body.jobs || [];
      this.listLoaded = true;
      // node -> job for jobs whose job.json names the node (newest first wins); live events override later
      for (const j of [...this.summaries].sort((a, b) => (a.created ?? 0) - (b.created ?? 0))) {
        if (j.node_id !== null && j.node_id !== undefined) this.nodeJobs.set(String(j.node_id), j.id);
      }
      if (this.selectedId === null && this.summaries.length) {
        const first = this.jobs()[0];
        this.select(first.id);
      }
      this.#ok();
    } catch (err) {
      this.#failed("could not load the training jobs", err);
      return;
    }
    this.changed();
  }

  // Full fetch of one job: every event (folded here, like live ones) plus the status the server derived.
  loadJob(jobId) {
    if (this.loading.has(jobId)) return this.loading.get(jobId);
    const p = (async () => {
      try {
        const body = await this.fetchJson(jobRoute(jobId));
        const m = this.#ensureMonitor(jobId);
        const st = body.state || {};
        m.setDirs(st.job_dir || null, st.output_dir || null);
        m.files = { log: typeof st.log === "string" ? st.log : null, config: typeof st.config === "string" ? st.config : null };
        m.addMany(body.events || []);
        m.setServerStatus(st.status, st.error || null, typeof body.next === "number" ? body.next : null);
        if (typeof st.now === "number") this.clockOffsetSec = st.now - this.nowMs() / 1000;
        Object.assign(this.info.get(jobId), { next: body.next ?? m.events.length, loaded: true, lastPollMs: this.nowMs() });
        if (body.job) {
          const i = this.summaries.findIndex((j) => j.id === jobId);
          if (i === -1) this.summaries.push(body.job);
          else this.summaries[i] = body.job;
        }
        this.#ok();
        this.changed();
        return m;
      } catch (err) {
        if (err?.status === 404) {
          // deleted from disk: forget it
          this.monitors.delete(jobId);
          this.summaries = this.summaries.filter((j) => j.id !== jobId);
          if (this.selectedId === jobId) this.selectedId = null;
          this.changed();
          return null;
        }
        this.#failed(`could not load job ${jobId}`, err);
        return null;
      } finally {
        this.loading.delete(jobId);
      }
    })();
    this.loading.set(jobId, p);
    return p;
  }

  async select(jobId) {
    this.selectedId = jobId;
    this.changed();
    const info = this.info.get(jobId);
    if (!info || !info.loaded) await this.loadJob(jobId);
  }

  // New events of a loaded job since the last fetch (an index into its append-only events file).
  async poll(jobId) {
    const info = this.info.get(jobId);
    if (!info || !info.loaded) return this.loadJob(jobId);
    info.lastPollMs = this.nowMs();
    try {
      const body = await this.fetchJson(`${jobRoute(jobId, "/events")}?since=${info.next}`);
      if (typeof body.next === "number" && body.next < info.next) {
        info.loaded = false; // the file shrank: a new job under the same id; start over
        this.monitors.delete(jobId);
        this.info.delete(jobId);
        return this.loadJob(jobId);
      }
      const m = this.monitors.get(jobId);
      m.addMany(body.events || []);
      // the server also sees the process: a trainer that died without a final event turns failed here
      if (typeof body.status === "string") {
        m.setServerStatus(body.status, body.error ? { message: body.error } : null, typeof body.next === "number" ? body.next : null);
      }
      info.next = body.next ?? info.next;
      this.#ok();
      this.changed();
    } catch (err) {
      if (err?.status === 404) return this.loadJob(jobId);
      this.#failed(`could not update job ${jobId}`, err);
    }
    return this.monitors.get(jobId) || null;
  }

  // A `ltx_trainer.event` websocket message: {job_id, node_id, event}.
  onLiveEvent(payload) {
    if (!payload || typeof payload.job_id !== "string" || !payload.event) return;
    const { job_id: jobId, node_id: nodeId, event } = payload;
    if (nodeId !== null && nodeId !== undefined) this.nodeJobs.set(String(nodeId), jobId);
    const known = this.monitors.has(jobId);
    const m = this.#ensureMonitor(jobId);
    this.info.get(jobId).lastLiveMs = this.nowMs();
    const isNew = m.add(event);
    // A lifecycle event from the trainer supersedes the status the server derived earlier (JobMonitor.status).
    if (isNew && event.event === "started" && this.#shouldFollow(jobId)) this.select(jobId);
    if (!known || !this.info.get(jobId).loaded) this.loadJob(jobId); // learn its folder (sample URLs), past events
    if (!this.summaries.some((j) => j.id === jobId)) this.refreshList();
    if (isNew) this.changed();
  }

  // A job that starts is shown unless the panel already shows another running one.
  #shouldFollow(jobId) {
    if (this.selectedId === null || this.selectedId === jobId) return this.selectedId === null;
    const current = this.monitors.get(this.selectedId);
    return !current || current.status !== "running";
  }

  onJobsChanged() {
    return this.refreshList();
  }

  // The websocket came back (server restart or network): anything may have happened meanwhile.
  async resync() {
    await this.refreshList();
    const ids = new Set([...this.monitors.keys()].filter((id) => this.info.get(id)?.loaded));
    if (this.selectedId) ids.add(this.selectedId);
    await Promise.all([...ids].map((id) => this.poll(id)));
  }

  onReconnected() {
    return this.resync();
  }

  // Called about once a second by the view: poll running jobs whose live events went quiet.
  tick() {
    const now = this.nowMs();
    const due = [];
    for (const [id, m] of this.monitors) {
      const info = this.info.get(id);
      if (!info.loaded || this.loading.has(id)) continue;
      if (id !== this.selectedId && !this.#watchedByNode(id)) continue;
      if (pollDue({ status: m.status, lastLiveMs: info.lastLiveMs, lastPollMs: info.lastPollMs, nowMs: now })) due.push(id);
    }
    return Promise.all(due.map((id) => this.poll(id)));
  }

  #watchedByNode(jobId) {
    for (const id of this.nodeJobs.values()) if (id === jobId) return true;
    return false;
  }

  jobForNode(nodeId) {
    return this.nodeJobs.get(String(nodeId)) ?? null;
  }

  async cancel(jobId) {
    try {
      const body = await this.postJson(jobRoute(jobId, "/cancel"));
      await this.poll(jobId);
      if (body.signalled) return { ok: true, message: "Cancel sent: the trainer saves a resumable checkpoint, then stops." };
      return { ok: false, message: `Nothing to cancel: the job is ${body.status}.` };
    } catch (err) {
      return { ok: false, message: `Cancel failed: ${err?.message || err}` };
    }
  }
}
