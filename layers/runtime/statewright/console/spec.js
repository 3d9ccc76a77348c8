// Spec pages: the list of specs served, and one spec's diagram, events and tasks.

import { api } from "./api.js";
import { diagram } from "./diagram.js";
import { h, json } from "./dom.js";

export function specsPage(main, params, app) {
  const list = h("ul", { class: "spec-list" });
  main.replaceChildren(h("h1", {}, "Specs"), list);
  return app.once(async () => {
    const { specs } = await api.specs();
    list.replaceChildren(...specs.map((s) => h("li", {},
      h("a", { href: `#/spec/${encodeURIComponent(s.name)}` }, s.name),
      h("span", { class: "muted" }, ` — events ${s.events.join(", ") || "none"}; states ${s.states.join(", ")}`))));
    if (!specs.length) list.append(h("li", {}, "No spec is loaded."));
  });
}

function eventRows(spec) {
  const rows = [];
  for (const event of [...spec.events, "NEXT", "FAILED"]) {
    const where = Object.entries(spec.states)
      .filter(([, state]) => state.on && event in state.on)
      .map(([name, state]) => {
        const advance = state.on[event].find((a) => a.action === "advance");
        return advance ? `${name} → ${advance.state}` : `${name} (no-op)`;
      });
    if (!where.length && (event === "NEXT" || event === "FAILED")) continue;
    rows.push(h("tr", { "data-event": event },
      h("th", { scope: "row" }, event, SYSTEM.has(event) ? h("span", { class: "muted" }, " (system)") : ""),
      h("td", {}, where.length ? where.join("; ") : h("span", { class: "warning" }, "handled nowhere"))));
  }
  return rows;
}

const SYSTEM = new Set(["NEXT", "FAILED"]);

function taskRows(spec) {
  return Object.entries(spec.tasks || {}).map(([name, task]) => {
    const states = Object.entries(spec.states).filter(([, s]) => (s.tasks || []).includes(name)).map(([n]) => n);
    const { executor, config, description, ...rest } = task;
    return h("tr", { "data-task": name },
      h("th", { scope: "row" }, name, description ? h("div", { class: "muted" }, description) : null),
      h("td", {}, executor),
      h("td", {}, states.join(", ") || h("span", { class: "warning" }, "in no state")),
      h("td", {}, h("pre", { class: "output" }, json(config))),
      h("td", { class: "settings" }, Object.entries(rest).map(([key, value]) =>
        h("div", {}, h("code", {}, key), " ", JSON.stringify(value)))));
  });
}

export function specPage(main, params, app) {
  const name = params.get("name");
  main.replaceChildren(h("h1", {}, "Spec ", h("code", {}, name)));
  return app.once(async () => {
    const spec = await api.spec(name);
    const extensions = Object.entries(spec).filter(([k]) => !["name", "digest", "version", "events", "states", "tasks"].includes(k));
    const sections = [
      h("p", { class: "muted" }, `Machine ${spec.version} spec, digest `, h("code", {}, spec.digest)),
      h("section", { "aria-labelledby": "h-diagram" }, h("h2", { id: "h-diagram" }, "Diagram"),
        h("div", { class: "diagram-box" }, diagram(spec))),
      h("section", { "aria-labelledby": "h-events" }, h("h2", { id: "h-events" }, "Events"),
        h("div", { class: "scroll" }, h("table", { class: "events" },
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Event"), h("th", { scope: "col" }, "Accepted in"))),
          h("tbody", {}, eventRows(spec))))),
      h("section", { "aria-labelledby": "h-tasks" }, h("h2", { id: "h-tasks" }, "Tasks"),
        h("div", { class: "scroll" }, h("table", { class: "spec-tasks" },
          h("thead", {}, h("tr", {}, ["Task", "Executor", "States", "Config", "Settings"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, taskRows(spec))))),
      extensions.length ? h("section", { "aria-labelledby": "h-more" }, h("h2", { id: "h-more" }, "More"),
        h("pre", { class: "output" }, json(Object.fromEntries(extensions)))) : null,
      findingsSection(spec),
    ];
    main.append(...sections.filter(Boolean));
  });
}

function findingsSection(spec) {
  const title = h("h2", { id: "h-findings" }, "Findings");
  if (Array.isArray(spec.findings)) {
    const items = spec.findings.map((f) => h("li", { class: `finding ${f.severity}` },
      h("strong", {}, f.severity), ` line ${f.line}: ${f.message} `, h("code", {}, `[${f.rule}]`)));
    return h("section", { "aria-labelledby": "h-findings" }, title,
      items.length ? h("ul", { class: "findings" }, items) : h("p", {}, "The linter found nothing to report."));
  }
  return h("section", { "aria-labelledby": "h-findings" }, title,
    h("p", { class: "findings-unavailable" },
      "A control plane serves only specs without lint errors, but this API does not report the linter's warnings. ",
      "Run ", h("code", {}, `statewright validate ${spec.name}.yml`), " to see them."));
}
