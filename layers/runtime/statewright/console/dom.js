// Building DOM from values: text always goes in as text nodes, never as HTML, so a
// machine id or a task output can hold anything and still show as what it is.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(element, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

export function svg(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return date.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

// "3s ago", "in 2h": relative times for the fleet, with the exact time as a title.
export function relative(iso, now = Date.now()) {
  if (!iso) return "";
  const then = new Date(iso).getTime();
  if (Number.isNaN(then)) return String(iso);
  const seconds = Math.round((then - now) / 1000);
  const size = Math.abs(seconds);
  if (size < 5) return "just now"; // also hides a server clock a little ahead of this one
  const [value, unit] =
    size < 60 ? [size, "s"] :
    size < 3600 ? [Math.round(size / 60), "m"] :
    size < 86400 ? [Math.round(size / 3600), "h"] : [Math.round(size / 86400), "d"];
  return seconds < 0 ? `${value}${unit} ago` : `in ${value}${unit}`;
}

export function timeCell(iso, relativeTo) {
  return h("time", { datetime: iso, title: when(iso), "data-relative": true }, relative(iso, relativeTo));
}

// Relative times drift as the clock moves even when the data does not.
export function refreshTimes(root, now = Date.now()) {
  for (const node of root.querySelectorAll("time[data-relative]")) {
    node.textContent = relative(node.getAttribute("datetime"), now);
  }
}

export function badge(status) {
  return h("span", { class: `badge status-${status}` }, status);
}

export function json(value) {
  return JSON.stringify(value, null, 2);
}
