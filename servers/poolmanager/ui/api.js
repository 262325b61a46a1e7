// The REST API at /api/v1 with the admin token of this browser session.

const BASE = "/api/v1";
const KEY = "poolmanager.token";

/// An error answer of the API: its status, `code` (an ErrorCode) and message.
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function token() {
  return sessionStorage.getItem(KEY);
}

export function setToken(value) {
  sessionStorage.setItem(KEY, value);
}

export function clearToken() {
  sessionStorage.removeItem(KEY);
}

export function authHeaders(value = token()) {
  return { Authorization: `Bearer ${value}` };
}

// Calls the API; answers the JSON body (null for 204). A 401 also tells the app
// (event "pm:unauthorized"), which logs out.
export async function call(method, path, { query, body, tokenValue } = {}) {
  const url = new URL(BASE + path, location.origin);
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  const headers = authHeaders(tokenValue ?? token());
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, "network", `The server did not answer (${err.message}).`);
  }
  if (resp.status === 204) return null;
  const text = await resp.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!resp.ok) {
    const error = new ApiError(resp.status, json?.code ?? "http", json?.message ?? `${resp.status} ${resp.statusText}`);
    if (resp.status === 401 && tokenValue === undefined) window.dispatchEvent(new CustomEvent("pm:unauthorized"));
    throw error;
  }
  return json;
}

export const get = (path, query) => call("GET", path, { query });
export const post = (path, body) => call("POST", path, { body });
export const patch = (path, body) => call("PATCH", path, { body });
export const del = (path, query) => call("DELETE", path, { query });

// Every item of a paged list (for the small lists: hosts, blueprints).
export async function all(path, query = {}) {
  const items = [];
  for (let offset = 0; ; offset += 1000) {
    const page = await get(path, { ...query, limit: 1000, offset });
    items.push(...page.items);
    if (items.length >= page.total || page.items.length === 0) return items;
  }
}

// Which field of a form an API error names, if any: messages say
// "invalid <field>: ..." or name the field first; a taken name is a 409 conflict.
export function fieldOf(error, fields) {
  const message = error.message.toLowerCase();
  const invalid = /invalid ([a-z_.]+)/.exec(message);
  if (invalid) {
    const name = invalid[1].split(".")[0];
    if (fields.includes(name)) return name;
  }
  for (const name of fields) {
    const spoken = name.replaceAll("_", " ");
    if (new RegExp(`\\b(${name}|${spoken})\\b`).test(message)) return name;
  }
  return null;
}
