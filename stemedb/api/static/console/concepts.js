// Concept browser: the subject tree as paths (GET /v1/concepts), a prefix filter,
// each subject's predicates with the skeptic's conflict score as a badge, and
// claimed values containing a text in any subject (GET /v1/concepts/search).
import { api } from "./api.js";
import { clear, conflictBadge, errorBox, h, link, route, table, valueText } from "./ui.js";

const MIN_SEARCH = 3; // the server's trigram index needs three characters

// Values containing `text` under `prefix` (or anywhere): subject, predicate, value.
async function valueHits(text, prefix) {
  const body = await api("/v1/concepts/search", { params: { q: text, prefix: prefix || undefined, limit: 100 } });
  const rows = body.hits.map((x) => h("tr", { dataset: { subject: x.subject, predicate: x.predicate } },
    h("td", {}, link(route("concepts", { prefix: x.subject }), x.subject)),
    h("td", {}, link(route("claim", { subject: x.subject, predicate: x.predicate }), x.predicate)),
    h("td", {}, x.value),
    h("td", { class: "num" }, String(x.claims))));
  const more = body.complete ? "" : " (the newest matches only: narrow the text or the prefix)";
  return h("section", { class: "card", "aria-labelledby": "value-hits-title" },
    h("h2", { id: "value-hits-title" }, `Values containing “${body.q}”${prefix ? ` under ${prefix}/` : ""}`),
    rows.length
      ? table(`${body.hits.length} value(s) in ${body.subjects} subject(s)${more}`,
        ["Subject", "Predicate", "Value", "Claims"], rows, { id: "value-hits" })
      : h("p", { class: "muted", id: "value-hits-none" }, "No claimed value contains it."));
}

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
    items.length ? h("ul", { class: "concepts", id: "concept-list" }, items)
      : h("p", { class: "muted" }, needle ? `No path here contains “${filter}”.` : "Nothing here.")));
  if (filter.trim().length >= MIN_SEARCH) {
    main.append(await valueHits(filter.trim(), parent).catch(errorBox));
  } else if (filter.trim()) {
    main.append(h("p", { class: "muted", id: "value-hits-none" }, `Type ${MIN_SEARCH} or more characters to search values in every subject.`));
  }
  if (prefix) {
    const preds = await predicates(prefix, needle);
    if (preds.length) {
      main.append(h("section", { class: "card", "aria-labelledby": "pred-title" },
        h("h2", { id: "pred-title" }, `Predicates of ${prefix}`),
        h("ul", { class: "preds", id: "predicate-list" }, preds)));
    }
  }
}
