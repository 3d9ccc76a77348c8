// The console's shell: a hash router over the pages, live polling, the confirmation and
// token dialogs, and the error banner that shows the API's own messages.

import { onTokenNeeded, setToken, token } from "./api.js";
import { fleetPage } from "./fleet.js";
import { machinePage } from "./machine.js";
import { specPage, specsPage } from "./spec.js";

const POLL_MS = 1000; // pages show changes within 2 s
const $ = (id) => document.getElementById(id);
const main = $("main");
const banner = $("error");
let bannerFrom = null;

function showError(error, from = "action") {
  bannerFrom = from;
  const code = error.code ? ` (${error.code})` : "";
  banner.textContent = `${error.message}${code}`;
  banner.hidden = false;
}

function clearError(from = null) {
  if (from && bannerFrom !== from) return;
  banner.hidden = true;
  banner.textContent = "";
  bannerFrom = null;
}

// Resolves true when the user confirms. `extra` (an element) goes into the dialog, e.g.
// an input the caller reads afterwards.
function confirm(question, detail, okLabel = "Confirm", extra = null) {
  const dialog = $("confirm");
  $("confirm-title").textContent = question;
  $("confirm-text").textContent = detail || "";
  $("confirm-extra").replaceChildren(...(extra ? [extra] : []));
  $("confirm-ok").textContent = okLabel;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    (extra?.querySelector?.("input") || $("confirm-ok")).focus();
  });
}

let tokenPending = null;
let tokenDeclined = false; // cancelled: ask again only from the Token button
function askToken(message, fromButton = false) {
  if (tokenDeclined && !fromButton) return Promise.resolve(null);
  tokenPending ||= new Promise((resolve) => {
    const dialog = $("token");
    const input = $("token-input");
    input.value = "";
    $("token-reason").textContent = message || "";
    dialog.returnValue = "";
    dialog.addEventListener("close", () => {
      tokenPending = null;
      const given = dialog.returnValue === "ok" ? input.value.trim() : "";
      if (given) setToken(given);
      tokenDeclined = !given;
      $("token-button").hidden = !token() && !tokenDeclined;
      resolve(given || null);
    }, { once: true });
    dialog.showModal();
  });
  return tokenPending;
}
onTokenNeeded(askToken);
$("token-button").hidden = !token();
$("token-button").addEventListener("click", () => askToken("", true));

// Runs `step` now and then every POLL_MS until the page is left or `step` returns false.
function live(step) {
  let stopped = false;
  let timer = null;
  let first = true;
  const liveNote = $("live");
  const tick = async () => {
    try {
      const more = await step(first);
      first = false;
      clearError("poll");
      liveNote.textContent = `live · ${new Date().toLocaleTimeString()}`;
      if (more === false) return;
    } catch (error) {
      if (!stopped) showError(error, "poll");
    }
    if (!stopped) timer = setTimeout(tick, POLL_MS);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

function once(step) {
  step().catch((error) => showError(error, "poll"));
  return () => {};
}

const app = { confirm, showError, clearError, live, once };

const ROUTES = [
  [/^#\/machine\/(.+)$/, (m) => ["fleet", machinePage, { id: decodeURIComponent(m[1]) }]],
  [/^#\/spec\/(.+)$/, (m) => ["specs", specPage, { name: decodeURIComponent(m[1]) }]],
  [/^#\/specs$/, () => ["specs", specsPage, {}]],
];

let leave = () => {};
function route() {
  leave();
  clearError();
  const [path, query] = (location.hash || "#/").split("?");
  let page = ["fleet", fleetPage, {}];
  for (const [pattern, make] of ROUTES) {
    const match = path.match(pattern);
    if (match) {
      page = make(match);
      break;
    }
  }
  const [nav, render, named] = page;
  const params = new URLSearchParams(query || "");
  for (const [key, value] of Object.entries(named)) params.set(key, value);
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.toggleAttribute("aria-current", link.dataset.nav === nav);
    if (link.dataset.nav === nav) link.setAttribute("aria-current", "page");
  }
  main.replaceChildren();
  leave = render(main, params, app);
  document.title = `${main.querySelector("h1")?.textContent || "Statewright"} · Statewright console`;
}

window.addEventListener("hashchange", () => {
  route();
  main.focus({ preventScroll: true });
});
route();
