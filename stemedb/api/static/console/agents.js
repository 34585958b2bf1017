// Agents: trust now (GET /v1/agents), one agent's trust over time as a plot and
// its counts (GET /v1/agents/{id}).
import { api } from "./api.js";
import { bar, clear, h, isoTime, link, num, route, short, table } from "./ui.js";

export const title = "Agents";
const SVG = "http://www.w3.org/2000/svg";

function plot(history) {
  const pts = history.filter((o) => typeof o.score_after === "number");
  const el = document.createElementNS(SVG, "svg");
  el.setAttribute("viewBox", "0 0 600 160");
  el.setAttribute("class", "plot");
  el.setAttribute("role", "img");
  el.setAttribute("aria-label", "Trust over time");
  if (pts.length < 1) return h("p", { class: "muted" }, "No outcomes yet: trust is the neutral 0.5.");
  const xs = pts.map((o) => o.timestamp || 0);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const sx = (x) => 20 + (x1 === x0 ? 280 : ((x - x0) / (x1 - x0)) * 560);
  const sy = (y) => 150 - y * 140;
  const d = pts.map((o, i) => `${i ? "L" : "M"}${sx(o.timestamp || 0).toFixed(1)},${sy(o.score_after).toFixed(1)}`).join(" ");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", d);
  path.setAttribute("class", "line");
  const mid = document.createElementNS(SVG, "line");
  Object.entries({ x1: 20, x2: 580, y1: sy(0.5), y2: sy(0.5), class: "mid" }).forEach(([k, v]) => mid.setAttribute(k, v));
  el.append(mid, path);
  return el;
}

export async function show(main, { params }) {
  const id = params.get("id");
  clear(main, h("h1", {}, "Agents"));
  if (id) {
    const p = await api(`/v1/agents/${id}`);
    const counts = Object.entries(p.counts || {}).map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", { class: "num" }, String(v))));
    main.append(h("section", { class: "card", "aria-labelledby": "agent-title" },
      h("h2", { id: "agent-title" }, `Agent ${short(id, 16)}`),
      h("p", {}, "Trust now ", bar(p.trust, "trust"), ` ${num(p.trust, 3)}`, p.rated ? "" : " (unrated)"),
      h("p", { class: "muted small" }, `first seen seq ${p.first_seen_seq ?? "—"}`),
      plot(p.history || [])),
    table("Counts", ["What", "How many"], counts, { id: "agent-counts" }));
  }
  const page = await api("/v1/agents", { params: { limit: 200 } });
  main.append(table(`Agents by trust (${page.count})`, ["Agent", "Trust", "Rated", "First seen"],
    page.agents.map((a) => h("tr", {},
      h("th", { scope: "row" }, link(route("agents", { id: a.agent_id }), short(a.agent_id, 16))),
      h("td", {}, bar(a.trust, "trust"), ` ${num(a.trust, 3)}`),
      h("td", {}, a.rated ? "yes" : "no"),
      h("td", {}, a.first_seen_ms ? isoTime(Math.floor(a.first_seen_ms / 1000)) : "—"))), { id: "agents-table" }));
}
