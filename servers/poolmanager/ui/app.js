// The dashboard's shell: login, navigation (hash routes), theme, and the event
// stream that keeps the open page up to date.

import { ApiError, call, clearToken, setToken, token } from "./api.js";
import { connect } from "./events.js";
import { h, replace } from "./dom.js";
import * as overview from "./overview.js";
import * as hosts from "./hosts.js";
import * as clusters from "./clusters.js";
import * as blueprints from "./blueprints.js";

const PAGES = { overview, hosts, clusters, blueprints };
const main = document.getElementById("main");
const nav = document.getElementById("nav");
const live = document.getElementById("live");
const banner = document.getElementById("reconnecting");
const logoutButton = document.getElementById("logout");

let view = null; // the mounted page: {onEvent, refresh, dispose}
let stream = null;
let refreshTimer = null;

// "#/clusters/ID?view=free" → {page: "clusters", rest: ["ID"], query}
function route() {
  const [path, search] = location.hash.replace(/^#\/?/, "").split("?");
  const [page, ...rest] = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { page: PAGES[page] ? page : "overview", rest, query: new URLSearchParams(search ?? "") };
}

export function navigate(hash) {
  if (location.hash === hash) show();
  else location.hash = hash;
}

function show() {
  if (!token()) return showLogin();
  const { page, rest, query } = route();
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  view?.dispose?.();
  main.replaceChildren();
  document.title = `${page[0].toUpperCase()}${page.slice(1)} · PoolManager`;
  view = PAGES[page].mount(main, { rest, query, navigate });
  // A link that led here may be gone with the old page: keep the keyboard in the page.
  if (!document.activeElement || document.activeElement === document.body) main.focus({ preventScroll: true });
  startStream();
}

// Live updates: each event goes to the page; after a reconnect the page reads
// everything again, since events may have been missed meanwhile.
function startStream() {
  if (stream) return;
  live.hidden = false;
  live.textContent = "Connecting…";
  stream = connect({
    onEvent(event) {
      if (event.kind === "lagged") return refreshView();
      view?.onEvent?.(event);
    },
    onState(state, seconds, why) {
      if (state === "live") {
        const wasDown = !banner.hidden;
        banner.hidden = true;
        live.className = "live";
        live.textContent = "Live";
        if (wasDown) refreshView();
      } else if (state === "reconnecting") {
        live.className = "live down";
        live.textContent = "Offline";
        banner.hidden = false;
        banner.textContent = `Live updates lost (${why}): reconnecting… next try in ${seconds}s. The page shows what it last knew.`;
      } else if (state === "unauthorized") {
        logout("The server no longer accepts this token. Log in again.");
      }
    },
  });
}

function refreshView() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => view?.refresh?.(), 200);
}

function stopStream() {
  stream?.close();
  stream = null;
  live.hidden = true;
  banner.hidden = true;
}

function showLogin(message = "") {
  stopStream();
  view?.dispose?.();
  view = null;
  nav.hidden = true;
  logoutButton.hidden = true;
  document.title = "Log in · PoolManager";
  const input = h("input", { type: "password", id: "token", name: "token", required: true, autocomplete: "current-password", "aria-describedby": "login-error" });
  const error = h("p", { id: "login-error", class: "form-error", role: "alert" }, message);
  const submit = h("button", { type: "submit", class: "primary" }, "Log in");
  const form = h("form", {
    async onsubmit(event) {
      event.preventDefault();
      const value = input.value.trim();
      if (!value) {
        error.textContent = "Enter the admin token.";
        return input.focus();
      }
      submit.disabled = true;
      error.textContent = "";
      try {
        // Any admin operation tells whether the token opens the dashboard.
        await call("GET", "/stats", { tokenValue: value });
        setToken(value);
        nav.hidden = false;
        logoutButton.hidden = false;
        show();
      } catch (err) {
        input.setAttribute("aria-invalid", "true");
        error.textContent = err instanceof ApiError && err.status === 401
          ? "Wrong token: the server refused it. Check the admin token (POOLMANAGER_ADMIN_TOKEN, or the token file beside the database)."
          : err instanceof ApiError && err.status === 403
            ? "This is the user token; the dashboard needs the admin token."
            : `Could not log in: ${err.message}`;
        input.select();
      } finally {
        submit.disabled = false;
      }
    },
  },
  h("label", { for: "token" }, "Admin token"), input, error, submit);
  replace(main, h("section", { class: "login card" },
    h("h1", {}, "Log in to PoolManager"),
    h("p", { class: "muted" }, "The admin token is kept in this browser tab only, until you log out or close it."),
    form));
  input.focus();
}

function logout(message) {
  clearToken();
  showLogin(message);
}

// Theme: the system's (auto), or light or dark as chosen, remembered.
const THEMES = ["auto", "light", "dark"];
const themeButton = document.getElementById("theme");
function applyTheme(theme) {
  if (theme === "auto") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  themeButton.textContent = `Theme: ${theme}`;
  localStorage.setItem("poolmanager.theme", theme);
}
themeButton.addEventListener("click", () => {
  const current = localStorage.getItem("poolmanager.theme") ?? "auto";
  applyTheme(THEMES[(THEMES.indexOf(current) + 1) % THEMES.length]);
});
applyTheme(localStorage.getItem("poolmanager.theme") ?? "auto");

logoutButton.addEventListener("click", () => logout("Logged out."));
window.addEventListener("pm:unauthorized", () => logout("The server refused the token (401). Log in again."));
window.addEventListener("hashchange", show);
if (token()) {
  nav.hidden = false;
  logoutButton.hidden = false;
}
show();
