// Router and sign-in: one view at a time, chosen by the URL hash (#/view?params).
import { ApiError, apiKey, forgetSession, session, setApiKey } from "./api.js";
import { clear, errorBox, h, hashParams } from "./ui.js";
import * as overview from "./overview.js";
import * as concepts from "./concepts.js";
import * as claim from "./claim.js";
import * as triage from "./triage.js";
import * as record from "./record.js";
import * as agents from "./agents.js";
import * as audit from "./audit.js";

const VIEWS = { overview, concepts, claim, triage, record, agents, audit };
const main = document.getElementById("view");
let current = null;

function signIn(message) {
  const input = h("input", {
    id: "api-key", name: "api-key", type: "password", autocomplete: "off", required: true,
  });
  const form = h("form", { class: "card signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in"),
    h("p", {}, "This server has authentication on. Give an API key: it is kept for this "
      + "browser tab only (sessionStorage) and sent as X-API-Key."),
    message ? h("p", { class: "error", role: "alert" }, message) : null,
    h("label", { for: "api-key" }, "API key"), input,
    h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    setApiKey(input.value.trim());
    forgetSession();
    render();
  });
  clear(main, form);
  input.focus();
}

function showWho(s) {
  const who = document.getElementById("who");
  if (!s.auth) {
    clear(who, h("span", { class: "badge" }, "auth off"));
    return;
  }
  const out = h("button", { type: "button", class: "link", id: "sign-out" }, "Sign out");
  out.addEventListener("click", () => {
    setApiKey("");
    forgetSession();
    render();
  });
  clear(who, h("span", { class: "badge" }, `key ${s.key_id} · ${s.role}`), " ", out);
}

// `data-rendered` on the view says which route it shows once done: until a
// new hash is rendered, the old view (not busy yet) must not pass for it.
async function render() {
  const shown = location.hash;
  try {
    await renderRoute();
  } finally {
    main.dataset.rendered = shown;
  }
}

async function renderRoute() {
  if (current && current.leave) current.leave();
  current = null;
  const { path, params } = hashParams();
  const name = VIEWS[path[0]] ? path[0] : "overview";
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  let s;
  try {
    s = await session();
  } catch (err) {
    clear(main, errorBox(err));
    return;
  }
  if (s.role === "none") {
    clear(document.getElementById("who"));
    signIn(apiKey() ? `That key was refused: ${s.error}` : "");
    return;
  }
  showWho(s);
  const view = VIEWS[name];
  current = view;
  document.title = `${view.title} · StemeDB console`;
  main.dataset.view = name;
  main.setAttribute("aria-busy", "true");
  try {
    await view.show(main, { path, params, session: s });
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      forgetSession();
      signIn("The key was refused; give it again.");
      return;
    }
    main.append(errorBox(err));
  } finally {
    main.removeAttribute("aria-busy");
  }
}

// After a navigation, move focus to the new view so keyboard and screen-reader
// users start reading there (the view's h1 is its first child).
window.addEventListener("hashchange", async () => {
  await render();
  if (!main.contains(document.activeElement)) main.focus({ preventScroll: true });
});
render();
