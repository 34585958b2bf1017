// The console's only door to the server: the public HTTP API, with the API key
// (auth on) from sessionStorage, so the page sees exactly what the key may see.

const KEY = "stemedb.console.apiKey";

export class ApiError extends Error {
  constructor(status, body) {
    const msg = (body && body.error && body.error.message) || `HTTP ${status}`;
    super(msg);
    this.status = status;
    this.body = body;
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function setApiKey(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

function query(params) {
  const usp = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") usp.set(k, String(v));
  }
  const text = usp.toString();
  return text ? `?${text}` : "";
}

export async function api(path, { method = "GET", params, body, signal } = {}) {
  const headers = { Accept: "application/json" };
  const key = apiKey();
  if (key) headers["X-API-Key"] = key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path + query(params), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
    cache: "no-store",
  });
  const type = resp.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await resp.json() : await resp.text();
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

// Every lens the server knows, in the order of docs/lenses.md.
export const LENSES = [
  "recency", "confidence", "consensus", "authority", "trust",
  "votes", "best", "epoch", "skeptic", "layered",
];

// What the current key may do, asked once per key (GET /v1/console/session):
// {auth, role}; a 401 means a key is needed (or the one given is not valid).
let sessionCache = null;
export async function session() {
  if (sessionCache && sessionCache.key === apiKey()) return sessionCache.value;
  let value;
  try {
    value = await api("/v1/console/session");
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) throw err;
    value = { auth: true, role: "none", error: err.message };
  }
  sessionCache = { key: apiKey(), value };
  return value;
}

export function forgetSession() {
  sessionCache = null;
}

export const canAdmin = (s) => s.role === "admin";
