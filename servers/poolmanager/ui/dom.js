// Small DOM helpers: elements built from data (never from HTML strings), dialogs,
// toasts and the formats every page shares.

const SVG_NS = "http://www.w3.org/2000/svg";

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

// h("button", {type: "button", onclick: f, class: "x"}, "text", child, ...)
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "value" || (key in el && typeof value !== "string")) el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, value);
  append(el, children);
  return el;
}

// Replaces the content of `parent`, giving focus back to the element with the same
// data-key as the one focused before: live updates must not steal the keyboard.
export function replace(parent, ...children) {
  const focused = document.activeElement;
  const key = focused && parent.contains(focused) ? focused.dataset.key : undefined;
  parent.replaceChildren();
  append(parent, children);
  if (key) parent.querySelector(`[data-key="${CSS.escape(key)}"]`)?.focus();
}

export function badge(value, title) {
  return h("span", { class: `badge s-${value}`, title }, value);
}

export function toast(message, kind = "ok") {
  const el = h("div", { class: `toast ${kind}` }, message);
  document.getElementById("toasts").append(el);
  setTimeout(() => el.remove(), kind === "error" ? 8000 : 4000);
}

// A modal dialog with `content`; resolves with what `onsubmit` returns, or null when
// cancelled (Esc, Cancel). `onsubmit` may throw to keep the dialog open.
export function modal(title, content, { submitLabel = "Save", danger = false, onsubmit } = {}) {
  return new Promise((resolve) => {
    const error = h("p", { class: "form-error", role: "alert" });
    const submit = h("button", { type: "submit", class: danger ? "danger" : "primary" }, submitLabel);
    const form = h("form", { method: "dialog", novalidate: true },
      h("h2", { id: "dialog-title" }, title), content, error,
      h("div", { class: "form-actions" },
        h("button", { type: "button", onclick: () => dialog.close() }, "Cancel"), submit));
    const dialog = h("dialog", { "aria-labelledby": "dialog-title" }, form);
    let result = null;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      submit.disabled = true;
      try {
        result = onsubmit ? await onsubmit(form) : true;
        dialog.close();
      } catch (err) {
        if (!err.shownAtField) error.textContent = err.message;
      } finally {
        submit.disabled = false;
      }
    });
    dialog.addEventListener("close", () => { dialog.remove(); resolve(result); });
    document.body.append(dialog);
    dialog.showModal();
    (form.querySelector("[autofocus]") ?? form.querySelector("input, select, textarea, button[type=submit]"))?.focus();
  });
}

export function confirmDialog(title, message, { confirmLabel = "Delete", extra = null } = {}) {
  return modal(title, h("div", {}, h("p", {}, message), extra), {
    submitLabel: confirmLabel, danger: true, onsubmit: (form) => form,
  });
}

// A labelled form field with room for its error; returns [label, field].
export function field(name, label, input, hint) {
  input.id ||= `f-${name}`;
  input.name = name;
  const error = h("span", { class: "field-error", id: `${input.id}-error` });
  input.setAttribute("aria-describedby", `${input.id}-error`);
  return [h("label", { for: input.id }, label), h("div", { class: "field" }, input, hint ? h("span", { class: "hint" }, hint) : null, error)];
}

export function setFieldError(form, name, message) {
  const input = form.elements.namedItem(name);
  if (!input) return false;
  input.setAttribute("aria-invalid", "true");
  document.getElementById(`${input.id}-error`).textContent = message;
  input.focus();
  return true;
}

export function clearFieldErrors(form) {
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
}

export function time(value) {
  if (!value) return "—";
  const date = new Date(value);
  return h("time", { datetime: value, title: date.toString() }, date.toLocaleString());
}

export function ago(value) {
  if (!value) return "—";
  const seconds = Math.round((Date.now() - new Date(value).getTime()) / 1000);
  const text = seconds < 0 ? `in ${duration(-seconds)}` : `${duration(seconds)} ago`;
  return h("time", { datetime: value, title: new Date(value).toLocaleString() }, text);
}

export function duration(seconds) {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(seconds / 86400)}d ${Math.floor((seconds % 86400) / 3600)}h`;
}

export function pager(page, go) {
  const { total, limit, offset } = page;
  const first = total === 0 ? 0 : offset + 1;
  const last = Math.min(offset + limit, total);
  return h("div", { class: "pager" },
    h("span", { class: "muted", "aria-live": "polite" }, `${first}–${last} of ${total}`),
    h("button", { type: "button", "data-key": "prev", disabled: offset === 0, onclick: () => go(Math.max(0, offset - limit)) }, "← Previous"),
    h("button", { type: "button", "data-key": "next", disabled: last >= total, onclick: () => go(offset + limit) }, "Next →"));
}

// A table header cell that sorts: `sort` is {key, dir}, `set(key)` changes it.
export function sortHeader(label, key, sort, set, cls) {
  const state = sort.key === key ? (sort.dir > 0 ? "ascending" : "descending") : null;
  return h("th", { class: cls, "aria-sort": state },
    h("button", { type: "button", class: "sort", "data-key": `sort-${key}`, onclick: () => set(key) }, label));
}

export function sorted(items, sort, value = (item, key) => item[key]) {
  if (!sort.key) return items;
  return [...items].sort((a, b) => {
    const x = value(a, sort.key) ?? "", y = value(b, sort.key) ?? "";
    return (x < y ? -1 : x > y ? 1 : 0) * sort.dir;
  });
}

// Labels typed one per line as `key=value`.
export function parseLabels(text) {
  const labels = {};
  for (const [n, line] of text.split("\n").entries()) {
    const trimmed = line.trim();
    if (!trimmed) continue;
    const at = trimmed.indexOf("=");
    if (at < 1) throw new Error(`line ${n + 1}: write key=value`);
    labels[trimmed.slice(0, at).trim()] = trimmed.slice(at + 1).trim();
  }
  return labels;
}

export function formatLabels(labels) {
  return Object.entries(labels ?? {}).map(([k, v]) => `${k}=${v}`).join("\n");
}
