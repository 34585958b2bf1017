// One record: its fields, each signature verified in this browser (Ed25519 over the
// server's signing message from POST /v1/normalize), and its trace as a graph.
import { api, ApiError } from "./api.js";
import { badge, clear, h, isoTime, link, route, short, table, valueText } from "./ui.js";

export const title = "Record";
const PROJECTION = ["hash", "seq", "written_at", "tier", "agent_id", "superseded", "signatures"];
const SVG = "http://www.w3.org/2000/svg";

function hex(text) {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i += 1) out[i] = parseInt(text.substr(i * 2, 2), 16);
  return out;
}

async function signedBody(assertion) {
  // The record exactly as it was signed and stored: its journal frame (the feed at its
  // seq). Falls back to the shown fields minus the server's own ones.
  try {
    const feed = await api("/v1/feed", { params: { after: assertion.seq - 1, limit: 1 } });
    const frame = feed.frames[0];
    if (frame && frame.hash === assertion.hash) return frame.record;
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
  }
  return Object.fromEntries(Object.entries(assertion).filter(([k]) => !PROJECTION.includes(k)));
}

async function verifyAll(assertion) {
  const body = await signedBody(assertion);
  const unsigned = Object.fromEntries(Object.entries(body).filter(([k]) => k !== "signatures" && k !== "kind"));
  const norm = await api("/v1/normalize", { method: "POST", params: { kind: "assertion" }, body: unsigned });
  const message = hex(norm.message);
  if (!globalThis.crypto || !crypto.subtle) {
    return assertion.signatures.map((s) => ({ ...s, ok: null, note: "this browser cannot verify here (WebCrypto needs HTTPS)" }));
  }
  return Promise.all(assertion.signatures.map(async (s) => {
    try {
      const key = await crypto.subtle.importKey("raw", hex(s.agent_id), { name: "Ed25519" }, false, ["verify"]);
      const ok = await crypto.subtle.verify({ name: "Ed25519" }, key, hex(s.signature), message);
      return { ...s, ok };
    } catch (err) {
      return { ...s, ok: null, note: `cannot verify: ${err.message}` };
    }
  }));
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function graph(trace) {
  const me = trace.assertion;
  const left = trace.ancestors.map((a) => ({ hash: a.hash, label: `parent ${short(a.hash)}` }));
  const right = trace.children.map((c) => ({ hash: c, label: `child ${short(c)}` }));
  const below = trace.supersessions.map((s) => ({ hash: null, label: `${s.type || "superseded"} ${short(s.hash)}`, cls: "sup" }));
  if (trace.votes && trace.votes.count) {
    below.push({ hash: null, label: `${trace.votes.count} vote(s), total ${trace.votes.total}`, cls: "vote" });
  }
  const rows = Math.max(left.length, right.length, 1);
  const width = 720;
  const height = Math.max(56, rows * 46 + (below.length ? 80 : 6));
  const g = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "trace", "aria-label": "Trace graph" });
  g.append(svg("title", {}, "Parents, children and supersessions of this record"));
  const cy = 24 + ((rows - 1) * 46) / 2;
  const node = (x, y, label, hash, cls) => {
    const group = svg("g", { class: `node ${cls}` });
    group.append(svg("rect", { x: x - 85, y: y - 15, width: 170, height: 30, rx: 6 }));
    group.append(svg("text", { x, y: y + 5, "text-anchor": "middle" }, label));
    if (!hash) return group;
    const a = svg("a", { href: route("record", { hash }) });
    a.append(group);
    return a;
  };
  const edge = (x1, y1, x2, y2) => g.append(svg("line", { x1, y1, x2, y2, class: "edge" }));
  left.forEach((n, i) => { edge(185, 24 + i * 46, 275, cy); });
  right.forEach((n, i) => { edge(445, cy, 535, 24 + i * 46); });
  below.forEach((n, i) => { edge(360, cy + 15, 120 + i * 190, height - 30); });
  left.forEach((n, i) => g.append(node(100, 24 + i * 46, n.label, n.hash, "parent")));
  right.forEach((n, i) => g.append(node(620, 24 + i * 46, n.label, n.hash, "child")));
  below.forEach((n, i) => g.append(node(120 + i * 190, height - 30, n.label, n.hash, n.cls)));
  g.append(node(360, cy, `${valueText(me.object)}`.slice(0, 24), null, "me"));
  return g;
}

export async function show(main, { params }) {
  const hash = params.get("hash");
  const input = h("input", { id: "record-hash", name: "hash", value: hash || "", size: 66, placeholder: "64 hex characters" });
  const form = h("form", { class: "card controls", "aria-label": "Open a record" },
    h("div", { class: "field wide" }, h("label", { for: "record-hash" }, "Record hash"), input),
    h("div", { class: "buttons" }, h("button", { type: "submit" }, "Open")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.hash = route("record", { hash: input.value.trim() });
  });
  clear(main, h("h1", {}, "Record"), form);
  if (!hash) return;
  const trace = await api(`/v1/trace/${hash}`);
  const a = trace.assertion;
  const sigs = await verifyAll(a);
  const fields = Object.entries(a).filter(([k]) => k !== "signatures").map(([k, v]) => h("tr", {},
    h("th", { scope: "row" }, k),
    h("td", {}, k === "object" ? valueText(v) : ["timestamp"].includes(k) ? `${v} (${isoTime(v)})`
      : k === "written_at" ? `${v} (${isoTime(Math.floor(v / 1000))})` : typeof v === "object" ? JSON.stringify(v) : String(v))));
  const sigRows = sigs.map((s) => h("tr", { class: "sig", dataset: { ok: String(s.ok) } },
    h("td", {}, link(route("agents", { id: s.agent_id }), short(s.agent_id, 16))),
    h("td", {}, s.ok === true ? badge("verified", "ok") : s.ok === false ? badge("INVALID", "bad") : badge("unknown", "warm")),
    h("td", { class: "muted small" }, s.note || "Ed25519, checked in this browser")));
  main.append(
    h("p", { class: "lede" }, link(route("claim", { subject: a.subject, predicate: a.predicate }), `${a.subject} · ${a.predicate}`),
      " = ", h("strong", {}, valueText(a.object)), a.superseded ? [" ", badge("superseded", "bad")] : null),
    table("Signatures", ["Signer", "Status", "How"], sigRows, { id: "signatures" }),
    h("section", { class: "card", "aria-labelledby": "trace-title" }, h("h2", { id: "trace-title" }, "Trace"),
      graph(trace),
      h("p", { class: "small" }, `Votes: ${trace.votes.count} (total ${trace.votes.total}) · same source: ${trace.same_source.length}`)),
    table("Fields", ["Field", "Value"], fields, { id: "fields" }));
}
