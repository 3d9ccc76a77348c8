// Fleet page: every machine, filtered by spec, state and status, with counts per state.

import { api } from "./api.js";
import { h, badge, refreshTimes, timeCell } from "./dom.js";

const STATUSES = ["running", "waiting", "failed"];

function option(value, label, selected) {
  return h("option", { value, selected: value === selected }, label);
}

export function fleetPage(main, params, app) {
  const filters = { spec: params.get("spec") || "", state: params.get("state") || "", status: params.get("status") || "" };
  let specs = [];
  let lastShown = "";

  const specSelect = h("select", { id: "filter-spec", name: "spec" });
  const stateSelect = h("select", { id: "filter-state", name: "state" });
  const statusSelect = h("select", { id: "filter-status", name: "status" },
    option("", "any status", filters.status), STATUSES.map((s) => option(s, s, filters.status)));
  const counts = h("ul", { class: "counts", "aria-label": "Machines per state" });
  const summary = h("p", { class: "summary", "aria-live": "polite" });
  const tbody = h("tbody");
  const table = h("table", { class: "fleet cards" },
    h("caption", { class: "visually-hidden" }, "Machines"),
    h("thead", {}, h("tr", {},
      ["Machine", "Spec", "State", "Status", "Epoch", "Updated"].map((t) => h("th", { scope: "col" }, t)),
      h("th", { scope: "col", class: "expires-col", hidden: true }, "Expires"))),
    tbody);

  const createSpec = h("select", { id: "create-spec", name: "spec", required: true });
  const createId = h("input", {
    id: "create-id", name: "id", placeholder: "generated when empty", autocomplete: "off",
    pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]{0,127}", title: "letters, digits, '.', '_' or '-'",
  });
  const createForm = h("form", { class: "create", "aria-label": "Create a machine" },
    h("label", {}, "Spec ", createSpec),
    h("label", {}, "Id ", createId),
    h("button", { type: "submit" }, "Create machine"));
  createForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const spec = createSpec.value;
    const id = createId.value.trim();
    const ok = await app.confirm(`Create a machine of spec ${spec}${id ? ` with id ${id}` : ""}?`,
      "It starts in INIT and runs INIT's tasks, if any.", "Create");
    if (!ok) return;
    try {
      const machine = await api.create(spec, id || undefined);
      app.clearError();
      location.hash = `#/machine/${encodeURIComponent(machine.id)}`;
    } catch (error) {
      app.showError(error);
    }
  });

  function fillStates() {
    const chosen = specs.find((s) => s.name === filters.spec);
    const states = chosen ? chosen.states : [...new Set(specs.flatMap((s) => s.states))].sort();
    stateSelect.replaceChildren(option("", "any state", filters.state), ...states.map((s) => option(s, s, filters.state)));
  }

  function syncHash() {
    const query = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
    const hash = `#/${query.toString() ? `?${query}` : ""}`;
    if (location.hash !== hash) history.replaceState(null, "", hash);
  }

  for (const [select, key] of [[specSelect, "spec"], [stateSelect, "state"], [statusSelect, "status"]]) {
    select.addEventListener("change", () => {
      filters[key] = select.value;
      if (key === "spec") {
        filters.state = "";
        fillStates();
      }
      syncHash();
      lastShown = "";
      refresh();
    });
  }

  main.replaceChildren(
    h("h1", {}, "Fleet"),
    h("form", { class: "filters", "aria-label": "Filters", onsubmit: (e) => e.preventDefault() },
      h("label", {}, "Spec ", specSelect),
      h("label", {}, "State ", stateSelect),
      h("label", {}, "Status ", statusSelect)),
    counts,
    summary,
    h("div", { class: "scroll" }, table),
    h("details", { class: "create-box" }, h("summary", {}, "Create a machine"), createForm),
  );

  function show(machines, complete) {
    const now = Date.now();
    const visible = machines.filter((m) => !filters.status || m.status === filters.status);
    const perState = new Map();
    for (const m of visible) perState.set(m.state, (perState.get(m.state) || 0) + 1);
    counts.replaceChildren(...[...perState.entries()].sort().map(([state, n]) =>
      h("li", { "data-state": state }, h("span", { class: "state-name" }, state), " ", h("strong", {}, n))));
    summary.textContent = `${visible.length} machine${visible.length === 1 ? "" : "s"}` +
      (complete ? "" : " (the first pages only: narrow the filters to see the rest)");
    const hasExpiry = visible.some((m) => "expires_at" in m);
    table.querySelector(".expires-col").hidden = !hasExpiry;
    tbody.replaceChildren(...visible.map((m) => h("tr", { "data-machine": m.id },
      h("th", { scope: "row" }, h("a", { href: `#/machine/${encodeURIComponent(m.id)}` }, m.id)),
      h("td", { "data-label": "Spec" }, h("a", { href: `#/spec/${encodeURIComponent(m.spec)}` }, m.spec)),
      h("td", { "data-label": "State", class: "state-name" }, m.state),
      h("td", { "data-label": "Status" }, badge(m.status), m.halted ? h("span", { class: "note" }, " halted") : null),
      h("td", { "data-label": "Epoch", class: "num" }, m.epoch),
      h("td", { "data-label": "Updated" }, timeCell(m.updated_at, now)),
      hasExpiry ? h("td", { "data-label": "Expires" }, m.expires_at ? timeCell(m.expires_at, now) : "never",
        m.expired ? h("span", { class: "badge status-failed" }, "expired") : null) : null,
    )));
    if (!visible.length) {
      tbody.replaceChildren(h("tr", {}, h("td", { colspan: hasExpiry ? 7 : 6, class: "empty" }, "No machines match.")));
    }
  }

  async function refresh() {
    const { items, complete } = await api.machines({ spec: filters.spec, state: filters.state });
    const key = JSON.stringify([items, filters]);
    if (key !== lastShown) {
      lastShown = key;
      show(items, complete);
    } else {
      refreshTimes(main);
    }
  }

  return app.live(async (first) => {
    if (first) {
      specs = (await api.specs()).specs;
      specSelect.replaceChildren(option("", "any spec", filters.spec), ...specs.map((s) => option(s.name, s.name, filters.spec)));
      createSpec.replaceChildren(...specs.map((s) => option(s.name, s.name, filters.spec)));
      fillStates();
    }
    await refresh();
  });
}
