// Hosts: the table, add and edit forms, fill/clean/reset with their progress, delete.

import { ApiError, all, del, fieldOf, get, patch, post } from "./api.js";
import { ago, badge, clearFieldErrors, confirmDialog, field, formatLabels, h, modal, pager, parseLabels, replace, setFieldError, toast } from "./dom.js";
import { meter } from "./overview.js";

const PAGE = 50;
const NAME = "[A-Za-z0-9][A-Za-z0-9._\\-]{0,62}";
const FIELDS = ["name", "kind", "endpoint", "capacity", "public_address", "labels", "autofill", "schedulable"];
// Operations followed on this page, by host id; finished ones stay shown a while.
const operations = new Map();

export function mount(main, { query, navigate }) {
  const offset = Number(query.get("offset") ?? 0);
  const body = h("div", { "aria-busy": "true" }, h("p", { class: "muted" }, "Loading…"));
  main.append(
    h("div", { class: "row spread" }, h("h1", {}, "Hosts"),
      h("button", { type: "button", class: "primary", id: "add-host", onclick: () => edit(null, refresh) }, "Add host")),
    body);
  let data = null;
  let timer = null;
  let disposed = false;

  async function refresh() {
    try {
      const [page, stats, recent] = await Promise.all([
        get("/hosts", { limit: PAGE, offset }),
        get("/stats"),
        get("/operations", { limit: 10 }),
      ]);
      for (const op of recent.items) {
        if (op.status === "running" && operations.get(op.host_id)?.id !== op.id) follow(op);
      }
      data = { page, used: new Map(stats.hosts.map((s) => [s.id, s.clusters])), recent: recent.items, names: new Map(stats.hosts.map((s) => [s.id, s.name])) };
      draw();
    } catch (err) {
      replace(body, h("p", { class: "form-error", role: "alert" }, `Could not read the hosts: ${err.message}`));
    }
  }

  function draw() {
    if (disposed || !data) return;
    body.removeAttribute("aria-busy");
    const { page, used } = data;
    replace(body, page.items.length === 0
      ? h("p", { class: "empty card" }, "No hosts yet: add a Docker engine or a Swarm manager.")
      : [h("div", { class: "table-wrap" }, h("table", { id: "hosts" },
        h("thead", {}, h("tr", {},
          h("th", {}, "Name"), h("th", {}, "Status"), h("th", {}, "Use"), h("th", {}, "Flags"), h("th", {}, "Last error"), h("th", {}, "Actions"))),
        h("tbody", {}, page.items.map((host) => rows(host, used.get(host.id)))))),
      pager(page, (o) => navigate(`#/hosts?offset=${o}`)),
      history(data.recent, data.names)]);
  }

  function history(recent, names) {
    if (recent.length === 0) return null;
    return [h("h2", {}, "Recent operations"),
      h("div", { class: "table-wrap" }, h("table", { id: "operations" },
        h("thead", {}, h("tr", {}, h("th", {}, "Operation"), h("th", {}, "Host"), h("th", {}, "Status"), h("th", { class: "num" }, "Done"), h("th", {}, "Started"), h("th", {}, "Finished"), h("th", {}, "Error"))),
        h("tbody", {}, recent.map((op) => h("tr", {},
          h("td", {}, op.kind), h("td", {}, names.get(op.host_id) ?? h("span", { class: "muted" }, "deleted host")),
          h("td", {}, badge(op.status)), h("td", { class: "num" }, `${op.done} / ${op.total}`),
          h("td", {}, ago(op.created_at)), h("td", {}, op.finished_at ? ago(op.finished_at) : "—"),
          h("td", { class: "error" }, op.error ?? ""))))))];
  }

  function rows(host, counts) {
    const inUse = counts ? Object.values(counts).reduce((a, b) => a + b, 0) : 0;
    const share = host.capacity ? Math.min(1, inUse / host.capacity) : 0;
    const act = (label, run, cls) => h("button", { type: "button", class: `small ${cls ?? ""}`, "data-key": `${label}-${host.id}`, "aria-label": `${label} ${host.name}`, onclick: run }, label);
    const row = h("tr", { "data-host": host.name },
      h("td", {}, h("strong", {}, host.name), h("div", { class: "muted mono" }, `${host.kind} · ${host.endpoint}`),
        h("div", { class: "muted" }, facts(host))),
      h("td", { class: "nowrap" }, badge(host.status), h("div", { class: "muted" }, host.last_seen ? ["seen ", ago(host.last_seen)] : "never seen")),
      h("td", { class: "nowrap" }, meter(share), `${inUse} / ${host.capacity}`,
        counts ? h("div", { class: "muted" }, `${counts.ready} ready · ${counts.applied} in use`) : null),
      h("td", {}, [host.autofill ? "autofill" : null, host.schedulable ? "schedulable" : "not schedulable"].filter(Boolean).join(" · ")),
      h("td", { class: "error" }, host.last_error ?? ""),
      h("td", { class: "actions" },
        act("Edit", () => edit(host, refresh)),
        act("Fill", () => start(host, "fill")),
        act("Clean", () => start(host, "clean")),
        act("Reset", () => start(host, "reset")),
        h("a", { class: "button small", href: `#/clusters?view=all&host_id=${encodeURIComponent(host.id)}` }, "Clusters"),
        act("Delete", () => remove(host, refresh), "danger")));
    const op = operations.get(host.id);
    return op ? [row, progressRow(host, op)] : row;
  }

  function progressRow(host, op) {
    const done = op.status !== "running";
    const max = Math.max(op.total, 1);
    const label = `${op.kind} ${op.status}: ${op.done} of ${op.total}${op.error ? ` — ${op.error}` : ""}`;
    return h("tr", { class: "progress", "data-operation": op.id },
      h("td", { colspan: 6 },
        h("div", { class: "row" },
          h("progress", { max, value: done && op.status === "succeeded" ? max : op.done, "aria-label": `${op.kind} of ${host.name}` }),
          h("span", { class: op.status === "failed" ? "form-error" : "", role: "status" }, label),
          done ? h("button", { type: "button", class: "small ghost", onclick: () => { operations.delete(host.id); draw(); } }, "Dismiss") : null)));
  }

  async function start(host, kind) {
    if (kind === "reset") {
      const ok = await confirmDialog(`Reset ${host.name}?`, "Every cluster PoolManager made on this host is removed and made again. Refused while clusters are in use.", { confirmLabel: "Reset" });
      if (!ok) return;
    }
    try {
      const ref = await post(`/hosts/${encodeURIComponent(host.id)}/${kind}`);
      follow({ id: ref.operation_id, kind, host_id: host.id, status: "running", done: 0, total: 0 });
      draw();
      toast(`${kind} of ${host.name} started`);
    } catch (err) {
      toast(`${kind} of ${host.name}: ${err.message}`, "error");
    }
  }

  // Follows an operation: from the events, and by asking now and then in case
  // events were missed.
  function follow(op) {
    operations.set(op.host_id, op);
    const poll = async () => {
      if (disposed || operations.get(op.host_id)?.id !== op.id) return;
      try {
        update(await get(`/operations/${encodeURIComponent(op.id)}`));
      } catch { /* the next event or poll tells */ }
      if (operations.get(op.host_id)?.status === "running") setTimeout(poll, 1500);
    };
    setTimeout(poll, 300);
  }

  function update(op) {
    const known = operations.get(op.host_id);
    if (!known || known.id !== op.id) {
      if (op.status !== "running") return;
    } else if (known.status !== "running" && op.status === "running") {
      return; // an older event
    }
    operations.set(op.host_id, op);
    draw();
  }

  refresh();
  return {
    refresh,
    onEvent(event) {
      if (event.kind === "operation") {
        update(event.operation);
        if (event.operation.status !== "running") schedule();
        return;
      }
      schedule();
    },
    dispose() { disposed = true; clearTimeout(timer); },
  };

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 400);
  }
}

function facts(host) {
  const f = host.facts;
  if (!f?.version) return "";
  const gib = (f.memory_bytes / 2 ** 30).toFixed(f.memory_bytes < 10 * 2 ** 30 ? 1 : 0);
  const labels = Object.entries(host.labels).map(([k, v]) => `${k}=${v}`).join(", ");
  return [`engine ${f.version} · ${f.cpus} CPUs · ${gib} GiB · ${f.containers} containers`, f.swarm_manager ? " · swarm manager" : "", labels ? ` · ${labels}` : ""].join("");
}

// The add (host null) or edit form.
async function edit(host, refresh) {
  const adding = host === null;
  const input = (props) => h("input", props);
  const kind = h("select", { disabled: !adding }, ["docker", "swarm", "sim"].map((k) => h("option", { value: k, selected: host?.kind === k }, k)));
  const fields = [
    field("name", "Name", input({ required: true, pattern: NAME, maxLength: 63, value: host?.name ?? "", autofocus: true, autocomplete: "off" }), "Unique: letters, digits, '.', '_' and '-'."),
    field("kind", "Kind", kind),
    field("endpoint", "Endpoint", input({ required: adding, disabled: !adding, pattern: "(unix|tcp|http|https|sim)://[!-~]{1,500}", maxLength: 512, value: host?.endpoint ?? "", placeholder: "unix:///var/run/docker.sock", autocomplete: "off" }),
      adding ? "unix://, tcp://, http(s):// or sim://. The engine is probed before the host is added." : "The endpoint cannot change; delete and add the host again."),
    field("capacity", "Capacity", input({ type: "number", required: true, min: 0, max: 10000, step: 1, value: host?.capacity ?? 2 }), "Most clusters it may hold."),
    field("public_address", "Public address", input({ pattern: "[A-Za-z0-9.:\\-]{1,253}", maxLength: 253, value: host?.public_address ?? "", placeholder: "10.0.0.1" }), "Put in service URLs; the endpoint's host when empty."),
    field("autofill", "Autofill", input({ type: "checkbox", checked: host?.autofill ?? true }), "Keep it filled to capacity."),
    field("schedulable", "Schedulable", input({ type: "checkbox", checked: host?.schedulable ?? true }), "Hand its clusters to users."),
    field("labels", "Labels", h("textarea", { rows: 3, value: formatLabels(host?.labels) }), "One key=value a line, for placement."),
  ];
  const wrapper = h("div", { class: "grid-fields" }, ...fields.flat());
  const saved = await modal(adding ? "Add host" : `Edit ${host.name}`, wrapper, {
    submitLabel: adding ? "Add host" : "Save",
    async onsubmit(form) {
      clearFieldErrors(form);
      const body = read(form, host);
      try {
        return adding ? await post("/hosts", body) : await patch(`/hosts/${encodeURIComponent(host.id)}`, body);
      } catch (err) {
        throw atField(form, err);
      }
    },
  });
  if (saved) {
    toast(adding ? `Host ${saved.name} added` : `Host ${saved.name} saved`);
    refresh();
  }
}

// The request body from the form; throws (shown at the field) what the browser
// can tell is wrong before asking the server.
function read(form, host) {
  const els = form.elements;
  for (const name of ["name", "endpoint", "capacity", "public_address"]) {
    const el = els.namedItem(name);
    if (!el.disabled && !el.checkValidity()) {
      setFieldError(form, name, el.validity.patternMismatch ? `${el.validationMessage} ${el.nextElementSibling?.textContent ?? ""}`.trim() : el.validationMessage);
      throw Object.assign(new Error(`Check the ${name.replace("_", " ")}.`), { shownAtField: true });
    }
  }
  let labels;
  try {
    labels = parseLabels(els.namedItem("labels").value);
  } catch (err) {
    setFieldError(form, "labels", err.message);
    throw Object.assign(err, { shownAtField: true });
  }
  const body = {
    name: els.namedItem("name").value.trim(),
    capacity: Number(els.namedItem("capacity").value),
    autofill: els.namedItem("autofill").checked,
    schedulable: els.namedItem("schedulable").checked,
    labels,
  };
  const address = els.namedItem("public_address").value.trim();
  if (address) body.public_address = address;
  if (host === null) {
    body.kind = els.namedItem("kind").value;
    body.endpoint = els.namedItem("endpoint").value.trim();
    return body;
  }
  // An edit sends what changed only.
  const changed = {};
  for (const [key, value] of Object.entries(body)) {
    if (JSON.stringify(value) !== JSON.stringify(host[key])) changed[key] = value;
  }
  return changed;
}

// Puts an API error at the field it names; an engine that does not answer is the
// endpoint's fault, a taken name the name's.
function atField(form, err) {
  if (!(err instanceof ApiError)) return err;
  let name = fieldOf(err, FIELDS);
  if (err.code === "unavailable" || err.code === "backend_failure") name = "endpoint";
  if (err.code === "conflict" && /name|exists|taken/i.test(err.message)) name = "name";
  const el = name && form.elements.namedItem(name);
  if (el && !el.disabled && setFieldError(form, name, `${err.message} (${err.status} ${err.code})`)) {
    err.shownAtField = true;
  } else {
    err.message = `${err.message} (${err.status} ${err.code})`;
  }
  return err;
}

async function remove(host, refresh) {
  const force = h("input", { type: "checkbox", id: "force", name: "force" });
  const form = await confirmDialog(`Delete ${host.name}?`,
    "Its clusters and everything PoolManager made on the engine are removed.",
    { extra: h("p", {}, force, " ", h("label", { for: "force" }, "Also when clusters are in use, or the engine does not answer (force)")) });
  if (!form) return;
  try {
    await del(`/hosts/${encodeURIComponent(host.id)}`, { force: force.checked ? "true" : undefined });
    operations.delete(host.id);
    toast(`Host ${host.name} deleted`);
    refresh();
  } catch (err) {
    toast(`Could not delete ${host.name}: ${err.message}`, "error");
  }
}
