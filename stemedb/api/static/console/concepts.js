// Concept browser: the subject tree as paths (GET /v1/concepts), a prefix filter,
// and each subject's predicates with the skeptic's conflict score as a badge.
import { api } from "./api.js";
import { clear, conflictBadge, h, link, route, valueText } from "./ui.js";

export const title = "Concepts";

function crumbs(prefix) {
  const parts = prefix ? prefix.split("/") : [];
  const out = [link(route("concepts"), "all")];
  parts.forEach((p, i) => out.push(" / ", link(route("concepts", { prefix: parts.slice(0, i + 1).join("/") }), p)));
  return h("nav", { class: "crumbs", "aria-label": "Concept path" }, out);
}

async function predicates(subject, needle) {
  const [body, recency, listing] = await Promise.all([
    api("/v1/query", { method: "POST", body: { subject, lens: "skeptic", limit: 200 } }),
    api("/v1/query", { method: "POST", body: { subject, lens: "recency", limit: 200 } }),
    api("/v1/query", { method: "POST", body: { subject, limit: 1000 } }),
  ]);
  const latest = Object.fromEntries(recency.results.map((g) => [g.predicate, g.winner]));
  const values = {};
  for (const a of listing.assertions) {
    (values[a.predicate] = values[a.predicate] || []).push(valueText(a.object).toLowerCase());
  }
  // "Contains" matches a predicate's name or any value claimed for it.
  const matches = (g) => !needle || g.predicate.toLowerCase().includes(needle)
    || (values[g.predicate] || []).some((v) => v.includes(needle));
  return body.results.filter(matches).map((g) => h("li", { class: "pred", dataset: { predicate: g.predicate } },
    link(route("claim", { subject, predicate: g.predicate }), g.predicate),
    " ", conflictBadge(g.conflict_score),
    h("span", { class: "muted small" }, ` ${g.candidates_count} candidate(s) · latest: ${latest[g.predicate] ? valueText(latest[g.predicate].object) : "—"}`)));
}

export async function show(main, { params }) {
  const prefix = (params.get("prefix") || "").replace(/\/+$/, "");
  const filter = params.get("q") || "";
  const input = h("input", { id: "concept-search", name: "prefix", value: prefix, placeholder: "drugs/sema", autocomplete: "off" });
  const textInput = h("input", { id: "concept-filter", name: "q", value: filter, placeholder: "a path, predicate or value" });
  const form = h("form", { class: "card controls", role: "search", "aria-label": "Find concepts" },
    h("div", { class: "field" }, h("label", { for: "concept-search" }, "Path prefix"), input),
    h("div", { class: "field" }, h("label", { for: "concept-filter" }, "Contains"), textInput),
    h("div", { class: "buttons" }, h("button", { type: "submit" }, "Browse")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.hash = route("concepts", { prefix: input.value.trim().replace(/\/+$/, ""), q: textInput.value.trim() });
  });
  clear(main, h("h1", {}, "Concepts"), form, crumbs(prefix));
  // A typed prefix that ends inside a segment ("drugs/sema"): list the parent's
  // children whose names start with the rest.
  let parent = prefix;
  let partial = "";
  let body = await api("/v1/concepts", { params: { prefix: parent || undefined } }).catch(() => null);
  if (!body || (prefix && !body.children.length)) {
    const cut = prefix.lastIndexOf("/");
    parent = cut >= 0 ? prefix.slice(0, cut) : "";
    partial = cut >= 0 ? prefix.slice(cut + 1) : prefix;
    body = await api("/v1/concepts", { params: { prefix: parent || undefined } });
  }
  const needle = filter.toLowerCase();
  const children = body.children.filter((c) => c.segment.startsWith(partial)
    && (!needle || c.path.toLowerCase().includes(needle)));
  const items = children.map((c) => h("li", { class: "concept", dataset: { path: c.path } },
    c.has_children ? link(route("concepts", { prefix: c.path }), `${c.segment}/`) : h("span", {}, c.segment),
    h("span", { class: "muted small" }, ` ${c.assertion_count} assertion(s) `),
    link(route("concepts", { prefix: c.path, show: "1" }), "predicates", { "aria-label": `predicates of ${c.path}` })));
  main.append(h("section", { class: "card", "aria-labelledby": "children-title" },
    h("h2", { id: "children-title" }, parent ? `Under ${parent}/` : "Top level"),
    items.length ? h("ul", { class: "concepts", id: "concept-list" }, items) : h("p", { class: "muted" }, "Nothing here.")));
  if (prefix) {
    const preds = await predicates(prefix, needle);
    if (preds.length) {
      main.append(h("section", { class: "card", "aria-labelledby": "pred-title" },
        h("h2", { id: "pred-title" }, `Predicates of ${prefix}`),
        h("ul", { class: "preds", id: "predicate-list" }, preds)));
    }
  }
}
