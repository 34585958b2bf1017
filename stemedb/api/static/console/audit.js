// Audit: the recent queries (GET /v1/audit/queries), who asked and what they were
// shown (the winner each answer carried), newest first.
import { api, ApiError } from "./api.js";
import { clear, h, isoTime, link, route, short, table } from "./ui.js";

export const title = "Audit";

function pairOf(entry) {
  const p = entry.params || {};
  return p.subject && p.predicate
    ? link(route("claim", { subject: p.subject, predicate: p.predicate }), `${p.subject} · ${p.predicate}`)
    : p.subject || "";
}

function shown(entry) {
  const results = entry.results || [];
  if (!results.length) return [pairOf(entry), h("span", { class: "muted small" }, " (no winner recorded)")];
  return results.map((r) => {
    if (r.listed) {
      return h("div", {}, pairOf(entry), ` → listed ${r.listed.length}: `,
        r.listed.slice(0, 4).map((x) => [link(route("record", { hash: x }), short(x)), " "]));
    }
    return h("div", {},
      r.subject && r.predicate
        ? link(route("claim", { subject: r.subject, predicate: r.predicate }), `${r.subject} · ${r.predicate}`)
        : pairOf(entry),
      " → ",
      r.winner ? link(route("record", { hash: r.winner }), short(r.winner)) : "no winner",
      r.resolution_confidence !== undefined ? h("span", { class: "muted small" }, ` (${Number(r.resolution_confidence).toFixed(2)})`) : null);
  });
}

export async function show(main, { params }) {
  const agent = params.get("agent_id") || "";
  const input = h("input", { id: "audit-agent", name: "agent_id", value: agent, placeholder: "64 hex, optional" });
  const form = h("form", { class: "card controls", "aria-label": "Filter the audit" },
    h("div", { class: "field wide" }, h("label", { for: "audit-agent" }, "Asked by agent"), input),
    h("div", { class: "buttons" }, h("button", { type: "submit" }, "Filter")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.hash = route("audit", { agent_id: input.value.trim() });
  });
  clear(main, h("h1", {}, "Audit"), form);
  let body;
  try {
    body = await api("/v1/audit/queries", { params: { limit: 100, agent_id: agent || undefined } });
  } catch (err) {
    if (err instanceof ApiError && err.status === 403) {
      main.append(h("p", { class: "error", role: "alert" }, "This key may not read the audit."));
      return;
    }
    throw err;
  }
  const rows = body.queries.map((q) => h("tr", { dataset: { query: q.query_id } },
    h("td", {}, isoTime(Math.floor(q.at_ms / 1000))),
    h("td", {}, q.agent_id ? link(route("agents", { id: q.agent_id }), short(q.agent_id)) : h("span", { class: "muted" }, "not given")),
    h("th", { scope: "row" }, q.endpoint, q.lens ? h("span", { class: "muted small" }, ` ${q.lens}`) : null),
    h("td", { class: "small" }, ["as_of", "known_at"].filter((k) => q.params && q.params[k]).map((k) => `${k} ${isoTime(q.params[k])}`).join(", ") || "now"),
    h("td", {}, shown(q), q.truncated ? h("span", { class: "muted small" }, " (truncated)") : null)));
  main.append(table(`Recent queries (${body.queries.length})`, ["When", "Asked by", "Endpoint", "Time travel", "Shown"], rows, { id: "audit-table" }),
    h("p", { class: "muted small" }, "Asked by is the X-Agent-Id the client declared, if any. Disable with STEMEDB_QUERY_AUDIT=false."));
}
