// A spec's state diagram as SVG, laid out here (no library): states in layers by their
// distance from INIT, top to bottom; transitions (advance actions) as arrows labelled with
// their events. With a machine, its current state is marked and every task shows the
// status of its latest run in that state.

import { svg } from "./dom.js";

const GAP_X = 36;
const GAP_Y = 64;
const HEADER = 30;
const TASK_LINE = 18;
const PAD = 16;
const LANE = 90; // room beside the states for arrows that skip rows or go back up

// [{from, to, events}] for every advance, one arrow per pair of states.
export function transitions(spec) {
  const byPair = new Map();
  for (const [from, state] of Object.entries(spec.states)) {
    for (const [event, actions] of Object.entries(state.on || {})) {
      for (const action of actions) {
        if (action.action !== "advance" || !action.state) continue;
        const key = `${from}\u0000${action.state}`;
        if (!byPair.has(key)) byPair.set(key, { from, to: action.state, events: [] });
        byPair.get(key).events.push(event);
      }
    }
  }
  return [...byPair.values()];
}

// Rows by the longest path from INIT over the transitions that do not close a cycle
// (a depth-first search finds those), so a chain reads straight down; states INIT cannot
// reach go last.
function layers(spec, edges) {
  const names = Object.keys(spec.states);
  const start = names.includes("INIT") ? "INIT" : names[0];
  const out = (name) => edges.filter((e) => e.from === name && e.to !== name);
  const back = new Set();
  const seen = new Set();
  const onPath = new Set();
  const order = [];
  const visit = (name) => {
    seen.add(name);
    onPath.add(name);
    for (const edge of out(name)) {
      if (onPath.has(edge.to)) back.add(edge);
      else if (!seen.has(edge.to)) visit(edge.to);
    }
    onPath.delete(name);
    order.push(name);
  };
  visit(start);
  const row = new Map([[start, 0]]);
  for (const name of order.reverse()) {
    for (const edge of out(name)) {
      if (back.has(edge) || !row.has(name)) continue;
      row.set(edge.to, Math.max(row.get(edge.to) ?? 0, row.get(name) + 1));
    }
  }
  const deepest = Math.max(0, ...row.values());
  for (const name of names) if (!row.has(name)) row.set(name, deepest + 1); // unreachable
  const rows = [];
  for (const name of names) (rows[row.get(name)] ||= []).push(name);
  return rows.filter(Boolean);
}

function taskStatus(machine, task, state) {
  const record = machine?.tasks?.[task];
  if (!record || record.state !== state) return null;
  return record.status;
}

export function diagram(spec, machine = null) {
  const edges = transitions(spec);
  const rows = layers(spec, edges);
  const heightOf = (name) => HEADER + TASK_LINE * (spec.states[name].tasks || []).length + 8;
  // Wide enough for the longest name or "task: succeeded" line (monospace-ish estimate).
  const longest = Math.max(...Object.entries(spec.states).map(([name, state]) =>
    Math.max(name.length * 8.5 + 60, ...(state.tasks || []).map((t) => (t.length + 11) * 6.8 + 34))));
  const NODE_WIDTH = Math.round(Math.min(300, Math.max(150, longest)));
  const widest = Math.max(...rows.map((row) => row.length));
  const width = 2 * LANE + widest * NODE_WIDTH + (widest - 1) * GAP_X; // lanes both sides
  const box = new Map();
  let y = PAD;
  for (const row of rows) {
    const rowWidth = row.length * NODE_WIDTH + (row.length - 1) * GAP_X;
    let x = (width - rowWidth) / 2;
    const rowHeight = Math.max(...row.map(heightOf));
    for (const name of row) {
      box.set(name, { x, y, w: NODE_WIDTH, h: heightOf(name), row: rows.indexOf(row) });
      x += NODE_WIDTH + GAP_X;
    }
    y += rowHeight + GAP_Y;
  }
  const height = y - GAP_Y + PAD;
  const current = machine?.state;
  const label = machine
    ? `State diagram of ${spec.name}; the machine is in ${current}`
    : `State diagram of ${spec.name}`;

  const root = svg("svg", {
    class: "diagram", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label,
    "data-spec": spec.name,
  });
  root.append(svg("title", {}, label));
  root.append(
    svg("defs", {},
      svg("marker", {
        id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7,
        orient: "auto-start-reverse",
      }, svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" })),
    ),
  );

  const lanes = { right: 0, left: 0 };
  for (const edge of edges) {
    const a = box.get(edge.from);
    const b = box.get(edge.to);
    let d;
    let lx;
    let ly;
    let anchor = "start";
    if (edge.from === edge.to) {
      d = `M${a.x + a.w},${a.y + 8} C${a.x + a.w + 36},${a.y - 8} ${a.x + a.w + 36},${a.y + 36} ${a.x + a.w},${a.y + 20}`;
      lx = a.x + a.w + 30; ly = a.y + 4;
    } else if (b.row === a.row + 1) {
      const x1 = a.x + a.w / 2; const y1 = a.y + a.h;
      const x2 = b.x + b.w / 2; const y2 = b.y;
      const mid = (y1 + y2) / 2;
      d = `M${x1},${y1} C${x1},${mid} ${x2},${mid} ${x2},${y2}`;
      lx = (x1 + x2) / 2 + 6; ly = mid + 4;
    } else if (b.row > a.row) {
      // Down past a row: along the right-hand lane.
      const laneX = width - LANE + 12 + (lanes.right++ % 3) * 14;
      const y1 = a.y + a.h / 2; const y2 = b.y + b.h / 2;
      d = `M${a.x + a.w},${y1} C${laneX},${y1} ${laneX},${y2} ${b.x + b.w},${y2}`;
      lx = laneX + 4; ly = (y1 + y2) / 2;
    } else {
      // Back up (a cycle): along the left-hand lane.
      const laneX = LANE - 12 - (lanes.left++ % 3) * 14;
      const y1 = a.y + a.h / 2; const y2 = b.y + b.h / 2;
      d = `M${a.x},${y1} C${laneX},${y1} ${laneX},${y2} ${b.x},${y2}`;
      lx = laneX - 4; ly = (y1 + y2) / 2; anchor = "end";
    }
    root.append(
      svg("g", { class: "edge", "data-from": edge.from, "data-to": edge.to },
        svg("path", { d, "marker-end": "url(#arrow)" }),
        svg("text", { x: lx, y: ly, "text-anchor": anchor }, edge.events.join(", ")),
      ),
    );
  }

  for (const [name, state] of Object.entries(spec.states)) {
    const { x, y: top, w, h } = box.get(name);
    const isCurrent = name === current;
    const classes = ["state"];
    if (isCurrent) classes.push("current");
    if (state.terminal) classes.push("terminal");
    if (isCurrent && machine?.status) classes.push(`machine-${machine.status}`);
    const group = svg("g", {
      class: classes.join(" "), "data-state": name, "aria-current": isCurrent ? "step" : null,
    });
    group.append(svg("rect", { x, y: top, width: w, height: h, rx: 8 }));
    if (state.terminal) {
      group.append(svg("rect", { class: "inner", x: x + 3, y: top + 3, width: w - 6, height: h - 6, rx: 6 }));
    }
    group.append(svg("text", { class: "name", x: x + 10, y: top + 20 }, name));
    if (isCurrent) {
      group.append(svg("text", { class: "here", x: x + w - 10, y: top + 20, "text-anchor": "end" }, "● now"));
    }
    (state.tasks || []).forEach((task, i) => {
      const status = taskStatus(machine, task, name);
      const ty = top + HEADER + 8 + i * TASK_LINE;
      const row = svg("g", { class: `task status-${status || "none"}`, "data-task": task, "data-status": status || "" });
      row.append(svg("circle", { cx: x + 16, cy: ty - 4, r: 4 }));
      row.append(svg("text", { x: x + 26, y: ty }, status ? `${task}: ${status}` : task));
      group.append(row);
    });
    root.append(group);
  }
  root.setAttribute("width", width);
  return root;
}
