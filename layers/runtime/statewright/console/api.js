// The HTTP API, from the origin that served the console (statewright serve, or the
// signing proxy of `statewright console`). Errors become ApiError with the API's own
// code and message; a 401 asks for a bearer token, kept in this tab's session storage.

const TOKEN_KEY = "statewright.token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let askToken = null; // set by the app: () => Promise<string|null>

export function onTokenNeeded(callback) {
  askToken = callback;
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

function apiUrl(path, query) {
  // "/machines" against the page's origin: the API shares it with the console.
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  return url;
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: fall through to the status line
  }
  const error = body && typeof body === "object" ? body.error ?? body : null;
  if (error && typeof error.message === "string") {
    return new ApiError(response.status, error.code || "error", error.message);
  }
  return new ApiError(response.status, "http_error", `HTTP ${response.status} ${response.statusText}`);
}

export async function request(method, path, { body, query } = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const bearer = token();
    if (bearer) headers.Authorization = `Bearer ${bearer}`;
    let response;
    try {
      response = await fetch(apiUrl(path, query), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
      });
    } catch (exc) {
      throw new ApiError(0, "unreachable", `the control plane did not answer (${exc.message})`);
    }
    if (response.status === 401 && attempt === 0 && askToken) {
      const error = await errorOf(response);
      const given = await askToken(error.message);
      if (given) continue;
      throw error;
    }
    if (!response.ok) throw await errorOf(response);
    return response.status === 204 ? null : response.json();
  }
}

// Every page of a listing (bounded, so a huge fleet cannot hang the tab).
export async function all(path, key, query = {}, maxPages = 20) {
  const items = [];
  let next = null;
  for (let page = 0; page < maxPages; page++) {
    const answer = await request("GET", path, { query: { ...query, next_token: next } });
    items.push(...answer[key]);
    next = answer.next_token;
    if (!next) return { items, complete: true };
  }
  return { items, complete: false };
}

const segment = (value) => encodeURIComponent(value);

export const api = {
  specs: () => request("GET", "/specs"),
  spec: (name) => request("GET", `/specs/${segment(name)}`),
  machines: (query) => all("/machines", "machines", { ...query, limit: 1000 }),
  machine: (id) => request("GET", `/machines/${segment(id)}`),
  history: (id) => all(`/machines/${segment(id)}/history`, "entries", { limit: 1000 }),
  create: (spec, id) => request("POST", "/machines", { body: id ? { spec, id } : { spec } }),
  send: (id, event) => request("POST", `/machines/${segment(id)}/events`, { body: { event } }),
  retry: (id) => request("POST", `/machines/${segment(id)}/retry`),
  extend: (id, ttl) => request("POST", `/machines/${segment(id)}/ttl`, { body: { ttl } }),
};
