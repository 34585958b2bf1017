// One contested claim: every candidate, every lens's answer, the skeptic's shares,
// and a time control (as_of / known_at) that asks the API again.
import { api, ApiError, LENSES } from "./api.js";
import {
  badge, bar, clear, conflictBadge, h, isoTime, link, num, route, short, table, valueText,
} from "./ui.js";

export const title = "Claim";

function toLocal(seconds) {
  if (!seconds) return "";
  return new Date(seconds * 1000).toISOString().slice(0, 19);
}

function fromLocal(text) {
  // datetime-local values are read as UTC (the console shows every time in UTC).
  return text ? Math.floor(Date.parse(`${text}Z`) / 1000) : "";
}

function form(params) {
  const field = (id, label, value, attrs = {}) => h("div", { class: "field" },
    h("label", { for: id }, label), h("input", { id, name: id, value: value || "", ...attrs }));
  const f = h("form", { class: "card controls", id: "claim-form", "aria-label": "Choose a claim" },
    field("subject", "Subject", params.get("subject"), { required: true, placeholder: "drugs/semaglutide" }),
    field("predicate", "Predicate", params.get("predicate"), { required: true }),
    h("fieldset", { class: "time" },
      h("legend", {}, "Time travel (UTC)"),
      field("as_of", "As of (claim time)", toLocal(Number(params.get("as_of"))),
        { type: "datetime-local", step: "1" }),
      field("known_at", "Known at (write time)", toLocal(Number(params.get("known_at"))),
        { type: "datetime-local", step: "1" })),
    h("div", { class: "buttons" },
      h("button", { type: "submit" }, "Show"),
      h("button", { type: "button", id: "time-now", class: "secondary" }, "Now")));
  f.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = (n) => f.elements[n].value.trim();
    location.hash = route("claim", {
      subject: v("subject"), predicate: v("predicate"),
      as_of: fromLocal(v("as_of")), known_at: fromLocal(v("known_at")),
    });
  });
  f.querySelector("#time-now").addEventListener("click", () => {
    f.elements.as_of.value = "";
    f.elements.known_at.value = "";
    f.requestSubmit();
  });
  return f;
}

function timeParams(params) {
  const out = {};
  for (const k of ["as_of", "known_at"]) {
    if (params.get(k)) out[k] = Number(params.get(k));
  }
  return out;
}

async function lensAnswer(base, lens) {
  try {
    const body = await api("/v1/query", { method: "POST", body: { ...base, lens } });
    return { lens, group: body.results[0] || null };
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    return { lens, error: err.message };
  }
}

function lensRow(answer) {
  const g = answer.group;
  let winner = "—";
  let conf = "—";
  let why = answer.error || "no candidates";
  if (g) {
    winner = g.winner ? valueText(g.winner.object) : "no winner";
    conf = num(g.resolution_confidence);
    why = g.explanation.length ? g.explanation[0].why : "";
    if (!g.winner && answer.lens === "skeptic") why = `reports the conflict (${num(g.conflict_score)}) instead of a winner`;
  }
  return h("tr", { dataset: { lens: answer.lens } },
    h("th", { scope: "row" }, answer.lens),
    h("td", { class: "winner", dataset: { hash: g && g.winner ? g.winner.hash : "" } }, winner),
    h("td", { class: "num" }, conf),
    h("td", { class: "why" }, why));
}

async function trustOf(agentIds, time) {
  const out = {};
  await Promise.all([...agentIds].map(async (id) => {
    try {
      out[id] = (await api(`/v1/agents/${id}`, { params: time })).trust;
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
    }
  }));
  return out;
}

async function votesOf(hashes) {
  const out = {};
  await Promise.all(hashes.slice(0, 40).map(async (hash) => {
    try {
      out[hash] = (await api(`/v1/trace/${hash}`, { params: { depth: 0 } })).votes;
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
    }
  }));
  return out;
}

function candidateRows(assertions, trust, votes, winners) {
  return assertions.map((a) => h("tr", { class: a.superseded ? "superseded" : "" },
    h("th", { scope: "row" }, valueText(a.object),
      a.superseded ? [" ", badge("superseded", "bad")] : null,
      winners[a.hash] ? [" ", badge(`wins: ${winners[a.hash].join(", ")}`, "ok")] : null),
    h("td", {}, a.source_class, h("span", { class: "muted small" }, ` (tier ${a.tier})`)),
    h("td", { class: "num" }, num(a.confidence, 2)),
    h("td", {}, a.agent_id ? link(route("agents", { id: a.agent_id }), short(a.agent_id)) : "unsigned"),
    h("td", { class: "num" }, a.agent_id && trust[a.agent_id] !== undefined ? num(trust[a.agent_id], 2) : "—"),
    h("td", { class: "num" }, votes[a.hash] ? `${num(votes[a.hash].total, 1)} (${votes[a.hash].count})` : "—"),
    h("td", {}, isoTime(a.timestamp)),
    h("td", { class: "source" }, a.source || "—"),
    h("td", {}, link(route("record", { hash: a.hash }), short(a.hash), { "aria-label": `record ${a.hash}` }))));
}

function sharesPanel(sk) {
  const rows = sk.claims.map((c) => h("li", {},
    h("span", { class: "share-label" }, valueText(c.object)),
    bar(c.share, `share of ${valueText(c.object)}`),
    h("span", { class: "num" }, `${(c.share * 100).toFixed(1)}% · ${c.best_tier} · ${c.assertion_count} claim(s)`)));
  return h("section", { class: "card", "aria-labelledby": "skeptic-title", id: "skeptic" },
    h("h2", { id: "skeptic-title" }, "Skeptic: ", sk.status, " ", conflictBadge(sk.conflict_score)),
    h("div", { class: "conflict-row" }, h("span", {}, "Conflict score"),
      bar(sk.conflict_score, "conflict score"), h("span", { class: "num", id: "conflict-score" }, num(sk.conflict_score))),
    h("ul", { class: "shares" }, rows));
}

export async function show(main, { params }) {
  const subject = params.get("subject");
  const predicate = params.get("predicate");
  clear(main, h("h1", {}, "Contested claim"), form(params));
  if (!subject || !predicate) {
    main.append(h("p", { class: "muted" }, "Pick a subject and predicate, or open one from ",
      link(route("triage"), "Triage"), " or ", link(route("concepts"), "Concepts"), "."));
    return;
  }
  const time = timeParams(params);
  const base = { subject, predicate, ...time };
  const [list, sk, ...answers] = await Promise.all([
    api("/v1/query", { method: "POST", body: { ...base, include_superseded: true, limit: 200 } }),
    api("/v1/skeptic", { params: base }),
    ...LENSES.map((lens) => lensAnswer(base, lens)),
  ]);
  const assertions = list.assertions;
  const winners = {};
  for (const a of answers) {
    const w = a.group && a.group.winner;
    if (w) (winners[w.hash] = winners[w.hash] || []).push(a.lens);
  }
  const [trust, votes] = await Promise.all([
    trustOf(new Set(assertions.map((a) => a.agent_id).filter(Boolean)), time),
    votesOf(assertions.map((a) => a.hash)),
  ]);
  const when = time.as_of || time.known_at
    ? `as of ${time.as_of ? isoTime(time.as_of) : "now"}, known at ${time.known_at ? isoTime(time.known_at) : "now"}`
    : "now";
  main.append(
    h("p", { class: "lede" }, h("strong", {}, subject), " · ", h("strong", {}, predicate),
      ` — ${assertions.length} candidate(s), answered ${when}`),
    table("Every lens's answer", ["Lens", "Winner", "Confidence", "Why"],
      answers.map(lensRow), { id: "lens-table" }),
    sharesPanel(sk),
    table("Candidates", ["Value", "Tier", "Confidence", "Signer", "Trust", "Votes", "Claim time",
      "Source", "Record"], candidateRows(assertions, trust, votes, winners), { id: "candidates" }));
}
