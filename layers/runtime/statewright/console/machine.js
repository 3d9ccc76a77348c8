// Machine page: the diagram with the current state and task statuses, the tasks and their
// outputs, the live history with who sent each input, and the actions the state allows.

import { api, ApiError } from "./api.js";
import { diagram } from "./diagram.js";
import { h, badge, json, refreshTimes, timeCell, when } from "./dom.js";

const SYSTEM_EVENTS = new Set(["NEXT", "FAILED"]);

function describeActions(actions) {
  const advance = actions.find((a) => a.action === "advance");
  return advance ? `it enters ${advance.state}` : "it is accepted and changes no state";
}

function historyLine(entry) {
  switch (entry.kind) {
    case "transition":
      return `${entry.from_state} → ${entry.to_state}${entry.event ? ` on ${entry.event}` : ""}`;
    case "event":
      return `event ${entry.event}`;
    case "task_started":
      return `task ${entry.task} started (attempt ${entry.attempt})`;
    case "task_finished":
      return `task ${entry.task} ${entry.status} (attempt ${entry.attempt})${entry.error ? `: ${entry.error}` : ""}`;
    case "task_cancelled":
      return `task ${entry.task} cancelled`;
    case "ttl_changed":
      return `TTL set: expires ${when(entry.expires_at)}`;
    case "expiring":
      return `expiring ${when(entry.expires_at)}`;
    case "expired":
      return "expired";
    default: {
      const extra = ["event", "task", "status", "error"].filter((k) => entry[k]).map((k) => `${k} ${entry[k]}`);
      return [entry.kind.replaceAll("_", " "), ...extra].join(", ");
    }
  }
}

function outputCell(record) {
  const parts = [];
  if (record.output !== null && record.output !== undefined) {
    parts.push(h("pre", { class: "output" }, json(record.output)));
  }
  const redacted = record.redacted_outputs || [];
  if (redacted.length) {
    parts.push(h("p", { class: "redacted" }, "sensitive, not shown: ",
      redacted.map((name, i) => [i ? ", " : "", h("code", {}, name)])));
  }
  return parts.length ? parts : h("span", { class: "muted" }, "—");
}

// The error's type in bold, unless the message already starts with it.
function errorText(record) {
  const type = record.error_type;
  const shown = type && !record.error.startsWith(`${type}:`);
  return [shown ? h("strong", {}, `${type}: `) : null, record.error];
}

function taskRows(machine) {
  const now = Date.now();
  return Object.entries(machine.tasks).map(([name, t]) => {
    const current = t.epoch === machine.epoch;
    const notes = [];
    if (t.waiting_for?.length) notes.push(`waiting for ${t.waiting_for.join(", ")}`);
    if (t.not_before) notes.push(`next attempt ${when(t.not_before)}`);
    return h("tr", { "data-task": name, "data-status": t.status, class: current ? "current" : "earlier" },
      h("th", { scope: "row" }, name),
      h("td", { "data-label": "State" }, t.state, current ? "" : h("span", { class: "muted" }, " (earlier)")),
      h("td", { "data-label": "Executor" }, t.executor),
      h("td", { "data-label": "Status" }, badge(t.status), notes.length ? h("div", { class: "note" }, notes.join("; ")) : null),
      h("td", { "data-label": "Attempt", class: "num" }, t.attempt),
      h("td", { "data-label": "Finished" }, t.finished_at ? timeCell(t.finished_at, now) : t.started_at ? timeCell(t.started_at, now) : ""),
      h("td", { "data-label": "Error", class: "error-text" }, t.error ? errorText(t) : ""),
      h("td", { "data-label": "Output" }, outputCell(t)),
    );
  });
}

export function machinePage(main, params, app) {
  const id = params.get("id");
  let spec = null;
  let shownMachine = "";
  let shownHistory = "";
  let machine = null;

  const heading = h("h1", {}, "Machine ", h("code", {}, id));
  const facts = h("dl", { class: "facts" });
  const specNote = h("p", { class: "note", hidden: true });
  const picture = h("div", { class: "diagram-box" });
  const actions = h("div", { class: "actions", role: "group", "aria-label": "Actions" });
  const tasksBody = h("tbody");
  const metadata = h("pre", { class: "output" });
  const historyBody = h("tbody");
  const actorHead = h("th", { scope: "col", hidden: true }, "Actor");
  const gone = h("p", { class: "gone", role: "status", hidden: true });

  main.replaceChildren(
    heading, gone, facts, specNote,
    h("section", { "aria-labelledby": "h-actions" }, h("h2", { id: "h-actions" }, "Actions"), actions),
    h("section", { "aria-labelledby": "h-diagram" }, h("h2", { id: "h-diagram" }, "Diagram"), picture),
    h("section", { "aria-labelledby": "h-tasks" }, h("h2", { id: "h-tasks" }, "Tasks"),
      h("div", { class: "scroll" }, h("table", { class: "tasks cards" },
        h("thead", {}, h("tr", {}, ["Task", "State", "Executor", "Status", "Attempt", "Finished", "Error", "Output"]
          .map((t) => h("th", { scope: "col" }, t)))),
        tasksBody))),
    h("section", { "aria-labelledby": "h-metadata" }, h("h2", { id: "h-metadata" }, "Metadata"), metadata),
    h("section", { "aria-labelledby": "h-history" }, h("h2", { id: "h-history" }, "History"),
      h("div", { class: "scroll" }, h("table", { class: "history" },
        h("thead", {}, h("tr", {}, ["Time", "Epoch", "What", "Source"].map((t) => h("th", { scope: "col" }, t)), actorHead)),
        historyBody))),
  );

  async function act(run) {
    try {
      await run();
      app.clearError();
      shownMachine = "";
      await refresh();
    } catch (error) {
      app.showError(error);
    }
  }

  function renderActions() {
    const buttons = [];
    const state = spec.states[machine.state];
    for (const [event, handlers] of Object.entries(state?.on || {})) {
      if (SYSTEM_EVENTS.has(event)) continue;
      buttons.push(h("button", {
        type: "button", "data-event": event,
        onclick: async () => {
          const ok = await app.confirm(`Send ${event} to ${machine.id}?`,
            `In ${machine.state}, ${describeActions(handlers)}.`, `Send ${event}`);
          if (ok) await act(() => api.send(machine.id, event));
        },
      }, `Send ${event}`));
    }
    if (machine.status === "failed") {
      const failed = Object.entries(machine.tasks)
        .filter(([, t]) => t.epoch === machine.epoch && t.status === "failed").map(([n]) => n);
      buttons.push(h("button", {
        type: "button", class: "retry", "data-action": "retry",
        onclick: async () => {
          const ok = await app.confirm(`Retry the failed tasks of ${machine.id}?`,
            failed.length ? `Runs again: ${failed.join(", ")}.` : "Runs the failed tasks of the current state again.", "Retry");
          if (ok) await act(() => api.retry(machine.id));
        },
      }, "Retry failed tasks"));
    }
    if (machine.expires_at) {
      // Only where the API has TTLs (machines carry expires_at) and this one has one.
      buttons.push(h("button", {
        type: "button", "data-action": "extend",
        onclick: async () => {
          const input = h("input", { id: "ttl-input", value: spec.lifecycle?.ttl || "24h", required: true,
            pattern: "([0-9]+[dhms])+", title: "a duration such as 90s, 30m, 72h, 7d or 1d12h" });
          const ok = await app.confirm(`Extend the TTL of ${machine.id}?`,
            "The machine then expires this long from now.", "Extend", h("label", {}, "TTL ", input));
          if (ok) await act(() => api.extend(machine.id, input.value.trim()));
        },
      }, "Extend TTL"));
    }
    actions.replaceChildren(...(buttons.length ? buttons : [h("p", { class: "muted" }, `${machine.state} accepts no event from outside.`)]));
  }

  function renderMachine() {
    const now = Date.now();
    const fact = (term, ...value) => [h("dt", {}, term), h("dd", {}, ...value)];
    const rows = [
      fact("Spec", h("a", { href: `#/spec/${encodeURIComponent(machine.spec)}` }, machine.spec)),
      fact("State", h("strong", { class: "state-name", "data-current-state": machine.state }, machine.state),
        machine.previous_state ? h("span", { class: "muted" }, ` (from ${machine.previous_state})`) : null),
      fact("Status", badge(machine.status), machine.halted ? h("span", { class: "note" }, ` halted: ${machine.halted}`) : null),
      fact("Epoch", String(machine.epoch)),
      fact("Created", timeCell(machine.created_at, now)),
      fact("Updated", timeCell(machine.updated_at, now)),
    ];
    if ("expires_at" in machine) {
      rows.push(fact("Expires", machine.expires_at ? timeCell(machine.expires_at, now) : "never",
        machine.expired ? h("span", { class: "badge status-failed" }, " expired") : null));
    }
    facts.replaceChildren(...rows.flat());
    specNote.hidden = machine.spec_digest === spec.digest;
    specNote.textContent = `This machine runs an earlier version of ${spec.name} (digest ${machine.spec_digest}); the diagram shows the version served now.`;
    picture.replaceChildren(diagram(spec, machine));
    tasksBody.replaceChildren(...taskRows(machine));
    if (!tasksBody.children.length) tasksBody.append(h("tr", {}, h("td", { colspan: 8, class: "empty" }, "No task has run yet.")));
    metadata.textContent = json(machine.metadata);
    renderActions();
  }

  function renderHistory(entries) {
    const withActor = entries.some((e) => "actor" in e);
    actorHead.hidden = !withActor;
    const now = Date.now();
    historyBody.replaceChildren(...entries.slice().reverse().map((e) => h("tr", { "data-kind": e.kind },
      h("td", {}, timeCell(e.at, now)),
      h("td", { class: "num" }, e.epoch),
      h("td", {}, historyLine(e)),
      h("td", {}, e.source || ""),
      withActor ? h("td", { class: "actor" }, e.actor || "") : null,
    )));
  }

  async function refresh() {
    let fresh;
    try {
      fresh = await api.machine(id);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404 && machine) {
        gone.hidden = false;
        gone.replaceChildren(`${id} no longer exists: it was deleted (its last state was ${machine.state}). `,
          h("a", { href: "#/" }, "Back to the fleet"));
        actions.replaceChildren();
        return false; // nothing more to watch
      }
      throw error;
    }
    machine = fresh;
    if (!spec || spec.name !== machine.spec) spec = await api.spec(machine.spec);
    const key = JSON.stringify(machine);
    if (key !== shownMachine) {
      shownMachine = key;
      renderMachine();
    }
    const { items } = await api.history(id);
    const historyKey = JSON.stringify(items);
    if (historyKey !== shownHistory) {
      shownHistory = historyKey;
      renderHistory(items);
    }
    refreshTimes(main);
    return true;
  }

  return app.live(() => refresh());
}
