// Overview: counts, journal head, rates from /metrics, and the live feed (long poll).
import { api, ApiError, canAdmin } from "./api.js";
import { clear, h, isoTime, link, route, short, valueText } from "./ui.js";

export const title = "Overview";
const VERIFY_KEY = "stemedb.console.lastVerify";
let generation = 0; // bumped on every show/leave: older loops see they are stale
let controller = null;
let feedTimer = null;
let tickTimer = null;

export function leave() {
  generation += 1;
  if (controller) controller.abort();
  clearTimeout(feedTimer);
  clearTimeout(tickTimer);
}

function stat(label, value, id, extra) {
  return h("div", { class: "stat" },
    h("div", { class: "stat-label" }, label),
    h("div", { class: "stat-value", id }, value),
    extra ? h("div", { class: "stat-extra" }, extra) : null);
}

function parseMetrics(text) {
  const sums = { writes: 0, queries: 0, longPolls: null };
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const [name, value] = [line.split(/[{ ]/)[0], Number(line.split(" ").pop())];
    if (name === "stemedb_assertions_ingested_total") sums.writes += value;
    else if (name === "stemedb_queries_total") sums.queries += value;
    else if (name === "stemedb_long_polls_active") sums.longPolls = value;
  }
  return sums;
}

async function metrics() {
  const resp = await fetch("/metrics", { cache: "no-store" });
  if (!resp.ok) return null;
  return { at: performance.now(), ...parseMetrics(await resp.text()) };
}

// One line for a record that is not an assertion: the fields a reader looks for.
function describe(kind, r) {
  const target = r.target_hash || r.assertion_hash;
  const parts = {
    outcome: () => `${r.accurate ? "accurate" : "inaccurate"} · agent ${short(r.agent_id)}`,
    vote: () => `vote ${r.value ?? r.weight ?? ""} on ${short(target)}`,
    supersession: () => `${r.type || "supersedes"} ${short(target)}${r.reason ? ` (${r.reason})` : ""}`,
    epoch: () => `epoch ${r.name || ""}`,
    alias: () => `${r.alias || r.path || ""} → ${r.canonical || ""}`,
    agent_tier: () => `agent ${short(r.agent_id)} up to ${r.max_tier}`,
  };
  return (parts[kind] || (() => kind))();
}

function frameRow(frame) {
  const r = frame.record || {};
  const what = frame.kind === "assertion"
    ? [link(route("claim", { subject: r.subject, predicate: r.predicate }),
      `${r.subject} · ${r.predicate}`), " = ", h("strong", {}, valueText(r.object))]
    : describe(frame.kind, r);
  return h("li", { class: "feed-item", dataset: { seq: frame.seq, hash: frame.hash } },
    h("span", { class: "feed-seq" }, `#${frame.seq}`),
    h("span", { class: "badge kind" }, frame.kind),
    h("span", { class: "feed-what" }, what),
    h("span", { class: "feed-time" }, isoTime(Math.floor(frame.written_ms / 1000))),
    frame.kind === "assertion" ? link(route("record", { hash: frame.hash }), "record",
      { "aria-label": `record ${frame.seq}` }) : null);
}

async function follow(list, status, after) {
  const mine = generation;
  const stopped = () => mine !== generation;
  let next = after;
  while (!stopped()) {
    controller = new AbortController();
    let body;
    try {
      body = await api("/v1/feed", {
        params: { after: next, limit: 50, wait: 20 }, signal: controller.signal,
      });
    } catch (err) {
      if (stopped()) return;
      status.textContent = `feed paused: ${err.message}; retrying in 5 s`;
      await new Promise((r) => { feedTimer = setTimeout(r, 5000); });
      continue;
    }
    if (body.retry_after) {
      // Over the server's cap of concurrent long polls: it asks us to come back later.
      status.textContent = `server busy; polling again in ${body.retry_after} s`;
      await new Promise((r) => { feedTimer = setTimeout(r, body.retry_after * 1000); });
      continue;
    }
    status.textContent = "live";
    for (const frame of body.frames) list.prepend(frameRow(frame));
    while (list.children.length > 60) list.lastElementChild.remove();
    next = body.next_after;
  }
}

function verifyPanel(session) {
  const out = h("div", { id: "verify-result" });
  const showLast = () => {
    const last = JSON.parse(sessionStorage.getItem(VERIFY_KEY) || "null");
    clear(out, last
      ? [h("span", { class: `badge ${last.ok ? "ok" : "bad"}` }, last.ok ? "chain OK" : "FAILED"),
        ` at ${new Date(last.at).toISOString().replace("T", " ").slice(0, 19)}Z`,
        last.checks ? h("span", { class: "muted" }, ` · ${last.checks} checks`) : null]
      : h("span", { class: "muted" }, "not run from this console in this session"));
  };
  showLast();
  if (!canAdmin(session)) {
    return h("div", { class: "stat" }, h("div", { class: "stat-label" }, "Last verify"), out,
      h("p", { class: "muted small" }, "Verify now needs an admin key."));
  }
  const button = h("button", { type: "button", id: "verify-now" }, "Verify now");
  button.addEventListener("click", async () => {
    button.disabled = true;
    clear(out, "verifying…");
    let report;
    try {
      report = await api("/v1/admin/verify", { method: "POST", body: {} });
    } catch (err) {
      report = err instanceof ApiError && err.body && "ok" in err.body ? err.body : null;
      if (!report) clear(out, `verify failed: ${err.message}`);
    }
    if (report) {
      sessionStorage.setItem(VERIFY_KEY, JSON.stringify(
        { ok: report.ok, at: Date.now(), checks: (report.checks || []).length }));
      showLast();
    }
    button.disabled = false;
  });
  return h("div", { class: "stat" }, h("div", { class: "stat-label" }, "Last verify"), out, button);
}

export async function show(main, { session }) {
  const mine = ++generation;
  const health = await api("/v1/health");
  let agents = "—";
  try {
    const page = await api("/v1/agents", { params: { limit: 500 } });
    agents = page.next_cursor ? `${page.count}+` : String(page.count);
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
  }
  const writeRate = h("span", {}, "measuring…");
  const queryRate = h("span", {}, "measuring…");
  const list = h("ol", { class: "feed", id: "feed", "aria-label": "Recent records, newest first" });
  const status = h("span", { class: "muted", id: "feed-status" }, "connecting…");
  clear(main,
    h("h1", {}, "Overview"),
    h("section", { class: "stats", "aria-label": "Store" },
      stat("Assertions", health.assertion_count.toLocaleString("en"), "stat-assertions"),
      stat("Agents", agents, "stat-agents"),
      stat("Journal head", `seq ${health.journal_seq}`, "stat-seq",
        h("code", { title: health.chain_head, id: "chain-head" }, short(health.chain_head, 16))),
      stat("Status", health.status, "stat-status", `up ${health.uptime_seconds} s · v${health.version}`),
      stat("Writes / s", writeRate, "stat-writes"),
      stat("Queries / s", queryRate, "stat-queries"),
      verifyPanel(session)),
    h("section", { class: "card", "aria-labelledby": "feed-title" },
      h("h2", { id: "feed-title" }, "Live activity ", status), list));
  const seed = Math.max(0, health.journal_seq - 15);
  follow(list, status, seed);
  let before = session.metrics ? await metrics().catch(() => null) : null;
  if (!before) {
    writeRate.textContent = queryRate.textContent = "metrics off";
    return;
  }
  const tick = async () => {
    if (mine !== generation) return;
    const now = await metrics().catch(() => null);
    if (now && before) {
      const dt = (now.at - before.at) / 1000;
      writeRate.textContent = ((now.writes - before.writes) / dt).toFixed(1);
      queryRate.textContent = ((now.queries - before.queries) / dt).toFixed(1);
      before = now;
    }
    tickTimer = setTimeout(tick, 3000);
  };
  tickTimer = setTimeout(tick, 1500);
}
