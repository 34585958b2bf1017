// Renders /openapi.json as a browsable page: endpoints by tag, parameters,
// request/response schemas (with $refs resolved for reading), and a small
// "try it" form. Vanilla JS, no dependencies, nothing fetched but this server.
"use strict";

(function () {
  let spec = null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function deref(schema, depth) {
    // Inline $refs (bounded depth, so recursive models stay readable).
    if (depth > 6 || schema === null || typeof schema !== "object") return schema;
    if (Array.isArray(schema)) return schema.map((item) => deref(item, depth + 1));
    if (typeof schema.$ref === "string") {
      const name = schema.$ref.split("/").pop();
      const target = (spec.components.schemas || {})[name];
      return target ? deref(target, depth + 1) : schema;
    }
    const out = {};
    for (const [key, value] of Object.entries(schema)) out[key] = deref(value, depth + 1);
    return out;
  }

  function schemaBlock(title, schema) {
    return el("div", {}, el("h4", {}, title), el("pre", {}, JSON.stringify(deref(schema, 0), null, 2)));
  }

  function paramsTable(params) {
    const rows = params.map((p) => {
      if (p.$ref) p = spec.components.parameters[p.$ref.split("/").pop()];
      const type = p.schema ? (p.schema.type || (p.schema.$ref || "").split("/").pop() || "any") : "";
      return el("tr", {}, el("td", {}, p.name), el("td", {}, p.in), el("td", {}, type),
        el("td", {}, p.required ? "yes" : ""), el("td", {}, p.description || ""));
    });
    return el("table", {},
      el("tr", {}, el("th", {}, "name"), el("th", {}, "in"), el("th", {}, "type"),
        el("th", {}, "required"), el("th", {}, "description")),
      ...rows);
  }

  function tryForm(method, path, op) {
    const pathInput = el("input", { type: "text", value: path });
    const headers = el("input", { type: "text", placeholder: "X-API-Key (optional)" });
    const body = op.requestBody ? el("textarea", { placeholder: "JSON body" }) : null;
    const output = el("pre", { class: "hidden" });
    const button = el("button", { type: "button" }, "Send " + method.toUpperCase());
    button.addEventListener("click", async () => {
      const init = { method: method.toUpperCase(), headers: {} };
      if (headers.value) init.headers["X-API-Key"] = headers.value;
      if (body && body.value.trim()) {
        init.headers["Content-Type"] = "application/json";
        init.body = body.value;
      }
      output.classList.remove("hidden");
      output.textContent = "...";
      try {
        const response = await fetch(pathInput.value, init);
        const text = await response.text();
        let shown = text;
        try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON */ }
        output.textContent = response.status + " " + response.statusText + "\n" +
          "X-Request-Id: " + response.headers.get("X-Request-Id") + "\n\n" + shown;
      } catch (err) {
        output.textContent = String(err);
      }
    });
    return el("div", { class: "try" }, el("h4", {}, "Try it"),
      el("label", {}, "URL (edit path parameters and query string)"), pathInput,
      headers, body, button, output);
  }

  function operation(method, path, op) {
    const body = el("div", { class: "body" });
    if (op.description) body.append(el("p", {}, op.description));
    if (op.parameters && op.parameters.length) body.append(el("h4", {}, "Parameters"), paramsTable(op.parameters));
    if (op.requestBody) {
      for (const [media, content] of Object.entries(op.requestBody.content)) {
        body.append(schemaBlock("Request body (" + media + ")", content.schema));
      }
    }
    for (const [status, response] of Object.entries(op.responses || {})) {
      const content = response.content ? Object.entries(response.content)[0] : null;
      if (content) body.append(schemaBlock(status + " " + response.description + " (" + content[0] + ")", content[1].schema));
      else body.append(el("h4", {}, status + " " + response.description));
    }
    body.append(tryForm(method, path, op));
    const summary = el("summary", {},
      el("span", { class: "method " + method }, method),
      el("span", { class: "path" }, path),
      el("span", { class: "summary" }, op.summary || ""),
      el("span", { class: "auth" }, op["x-stemedb-auth"] || ""));
    const node = el("details", { class: "op" }, summary, body);
    node.dataset.search = (method + " " + path + " " + (op.summary || "") + " " + (op.tags || []).join(" ")).toLowerCase();
    return node;
  }

  function render() {
    document.title = spec.info.title + " " + spec.info.version;
    document.getElementById("title").textContent = spec.info.title + " " + spec.info.version;
    document.getElementById("subtitle").textContent = spec.info.description || "";
    const byTag = new Map();
    for (const [path, item] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(item)) {
        const tag = (op.tags && op.tags[0]) || "default";
        if (!byTag.has(tag)) byTag.set(tag, []);
        byTag.get(tag).push(operation(method, path, op));
      }
    }
    const content = document.getElementById("content");
    const toc = document.getElementById("toc");
    for (const tag of [...byTag.keys()].sort()) {
      toc.append(el("a", { href: "#tag-" + tag }, tag));
      content.append(el("section", { "data-tag": tag }, el("h2", { id: "tag-" + tag }, tag), ...byTag.get(tag)));
    }
  }

  function filter(text) {
    const needle = text.trim().toLowerCase();
    for (const op of document.querySelectorAll("details.op")) {
      op.classList.toggle("hidden", needle !== "" && !op.dataset.search.includes(needle));
    }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    document.getElementById("filter").addEventListener("input", (e) => filter(e.target.value));
    try {
      const response = await fetch("/openapi.json");
      spec = await response.json();
      render();
    } catch (err) {
      document.getElementById("subtitle").textContent = "Could not load /openapi.json: " + err;
    }
  });
})();
