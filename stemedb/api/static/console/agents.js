// Agents: trust now (GET /v1/agents), one agent's trust over time as a plot and
// its counts (GET /v1/agents/{id}).
import { api } from "./api.js";
import { bar, clear, h, isoTime, link, num, route, short, table } from "./ui.js";

export const title = "Agents";
const SVG = "http://www.w3.org/2000/svg";

function plot(history) {
  const pts = history.filter((o) => typeof o.score_after === "number");
  const el = document.createElementNS(SVG, "svg");
  el.setAttribute("viewBox", "0 0 600 175");
  el.setAttribute("class", "plot");
  el.setAttribute("role", "img");
  el.setAttribute("aria-label", "Trust over time");
  if (pts.length < 1) return h("p", { class: "muted" }, "No outcomes yet: trust is the neutral 0.5.");
  const xs = pts.map((o) => o.timestamp || 0);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const sx = (x) => 50 + (x1 === x0 ? 265 : ((x - x0) / (x1 - x0)) * 530);
  const sy = (y) => 150 - y * 140;
  const d = pts.map((o, i) => `${i ? "L" : "M"}${sx(o.timestamp || 0).toFixed(1)},${sy(o.score_after).toFixed(1)}`).join(" ");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", d);
  path.setAttribute("class", "line");
  const mid = document.createElementNS(SVG, "line");
  Object.entries({ x1: 50, x2: 580, y1: sy(0.5), y2: sy(0.5), class: "mid" }).forEach(([k, v]) => mid.setAttribute(k, v));
  el.append(mid, path);
  const label = (x, y, text, anchor = "start") => {
    const t = document.createElementNS(SVG, "text");
    Object.entries({ x, y, "text-anchor": anchor, class: "axis" }).forEach(([k, v]) => t.setAttribute(k, v));
    t.textContent = text;
    el.append(t);
  };
  label(44, sy(1) + 4, "1.0", "end");
  label(44, sy(0.5) + 4, "0.5", "end");
  label(44, sy(0) + 4, "0", "end");
  label(sx(x0), 170, isoTime(x0).slice(0, 10));
  if (x1 !== x0) label(sx(x1), 170, isoTime(x1).slice(0, 10), "end");
  return h("figure", { class: "plot-box" }, el,
    h("figcaption", { class: "muted small" }, "Stored trust after each outcome (dashed: the neutral 0.5)"));
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
