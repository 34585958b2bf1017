// Triage: every contested pair as Resolved / Active / Emerging (GET /v1/triage),
// by conflict × recency, filtered by concept prefix, tier and class.
import { api } from "./api.js";
import { badge, bar, clear, h, isoTime, link, num, route, table } from "./ui.js";

export const title = "Triage";
const TIERS = ["Regulatory", "Clinical", "Observational", "Expert", "Community", "Anecdotal"];

function select(id, label, options, value) {
  return h("div", { class: "field" }, h("label", { for: id }, label),
    h("select", { id, name: id },
      h("option", { value: "" }, "any"),
      options.map((o) => h("option", { value: o, selected: o === value }, o))));
}

export async function show(main, { params }) {
  const q = Object.fromEntries(["prefix", "tier", "class", "window_days", "now"]
    .map((k) => [k, params.get(k) || undefined]));
  const form = h("form", { class: "card controls", "aria-label": "Triage filters" },
    h("div", { class: "field" }, h("label", { for: "prefix" }, "Concept prefix"),
      h("input", { id: "prefix", name: "prefix", value: q.prefix || "", placeholder: "drugs" })),
    select("tier", "Tier", TIERS, q.tier),
    select("class", "Class", ["Emerging", "Active", "Resolved"], q.class),
    h("div", { class: "field" }, h("label", { for: "window_days" }, "Window (days)"),
      h("input", { id: "window_days", name: "window_days", type: "number", min: "1", step: "any", value: q.window_days || "30" })),
    h("div", { class: "field" }, h("label", { for: "now" }, "Window ends (UTC)"),
      h("input", { id: "now", name: "now", type: "datetime-local", step: "1",
        value: q.now ? new Date(Number(q.now) * 1000).toISOString().slice(0, 19) : "" })),
    h("div", { class: "buttons" }, h("button", { type: "submit" }, "Filter")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = (n) => form.elements[n].value.trim();
    const now = v("now") ? Math.floor(Date.parse(`${v("now")}Z`) / 1000) : "";
    location.hash = route("triage", { prefix: v("prefix"), tier: v("tier"), class: v("class"), window_days: v("window_days"), now });
  });
  clear(main, h("h1", {}, "Triage"), form);
  let body = await api("/v1/triage", { params: q });
  for (let i = 0; body.status === "building" && i < 600; i += 1) {
    clear(main, h("h1", {}, "Triage"), form, h("p", { role: "status" },
      `Building the triage index: seq ${body.indexed_seq} of ${body.head_seq}…`));
    await new Promise((r) => setTimeout(r, 1000));
    body = await api("/v1/triage", { params: q });
  }
  const counts = h("p", { class: "counts", id: "triage-counts" },
    ["Emerging", "Active", "Resolved"].map((c) => [badge(`${c} ${body.counts[c]}`, c.toLowerCase()), " "]),
    h("span", { class: "muted small" },
      ` window ${body.window_days} days ending ${isoTime(body.reference_time)}${q.now ? "" : " (the newest claim)"} · server ${body.server_ms} ms`));
  const rows = body.pairs.map((p) => h("tr", { dataset: { subject: p.subject, predicate: p.predicate, class: p.class } },
    h("td", {}, badge(p.class, p.class.toLowerCase())),
    h("th", { scope: "row" }, link(route("claim", { subject: p.subject, predicate: p.predicate }), `${p.subject} · ${p.predicate}`)),
    h("td", { class: "conflict" }, bar(p.conflict_score, "conflict"), " ", num(p.conflict_score, 2)),
    h("td", { class: "num" }, num(p.score, 3)),
    h("td", {}, `${p.live_values} live / ${p.values_ever} ever`),
    h("td", {}, p.best_tier),
    h("td", {}, isoTime(p.newest_timestamp)),
    h("td", { class: "why" }, p.why)));
  main.append(counts, table(`${body.total} contested pair(s), by conflict × recency`,
    ["Class", "Pair", "Conflict", "Score", "Values", "Best tier", "Newest claim", "Why"], rows,
    { id: "triage-table" }));
}
