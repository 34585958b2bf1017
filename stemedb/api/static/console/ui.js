// Small DOM helpers: build elements without innerHTML (the CSP allows no inline code,
// and record values are untrusted text).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function table(caption, headers, rows, attrs = {}) {
  return h("div", { class: "scroll" },
    h("table", attrs,
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, rows)));
}

export function valueText(obj) {
  if (obj === null || obj === undefined) return "—";
  if (typeof obj !== "object") return String(obj);
  if ("value" in obj) {
    const v = obj.value;
    const unit = obj.unit ? ` ${obj.unit}` : "";
    return (typeof v === "object" ? JSON.stringify(v) : String(v)) + unit;
  }
  return JSON.stringify(obj);
}

export function short(hex, n = 8) {
  return hex ? `${hex.slice(0, n)}…` : "—";
}

export function isoTime(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  return new Date(seconds * 1000).toISOString().replace(".000Z", "Z").replace("T", " ");
}

export function num(x, digits = 3) {
  return typeof x === "number" ? x.toFixed(digits) : "—";
}

export function bar(fraction, label) {
  const pct = Math.max(0, Math.min(1, fraction || 0)) * 100;
  const fill = h("span", { class: "bar-fill" });
  fill.style.width = `${pct.toFixed(1)}%`;
  return h("span", {
    class: "bar", role: "meter", "aria-valuemin": "0", "aria-valuemax": "1",
    "aria-valuenow": (fraction || 0).toFixed(3), "aria-label": label,
  }, fill);
}

export function badge(text, kind = "") {
  return h("span", { class: `badge ${kind}`.trim() }, text);
}

export function conflictBadge(score) {
  const level = score >= 0.66 ? "hot" : score >= 0.4 ? "warm" : "calm";
  return h("span", { class: `badge conflict ${level}`, title: "skeptic conflict score" },
    `conflict ${num(score, 2)}`);
}

export function errorBox(err) {
  return h("div", { class: "error", role: "alert" }, `Error: ${err.message || err}`);
}

export function link(href, text, attrs = {}) {
  return h("a", { href, ...attrs }, text);
}

export function hashParams() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, qs] = hash.split("?");
  return { path: path.split("/"), params: new URLSearchParams(qs || "") };
}

export function route(view, params = {}) {
  const usp = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") usp.set(k, v);
  }
  const qs = usp.toString();
  return `#/${view}${qs ? `?${qs}` : ""}`;
}
