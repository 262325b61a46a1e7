// Blueprints: the list, one blueprint's detail, creating one from JSON, deleting.

import { ApiError, all, del, fieldOf, get, patch, post } from "./api.js";
import { clearFieldErrors, confirmDialog, field, h, modal, replace, setFieldError, time, toast } from "./dom.js";

const TEMPLATE = {
  name: "demo",
  labels: { consensus_plugin: "pbft", size: "2" },
  nodes: [
    { name: "vp0", image: "poolmanager/testnode:latest", ports: { rest: "80/tcp" } },
    { name: "vp1", image: "poolmanager/testnode:latest", ports: { rest: "80/tcp" } },
  ],
  api_port: "vp0.rest",
  max_applied: 10,
  min_ready: 2,
};

// The policies an operator may change on a blueprint, with their form labels.
const POLICIES = [
  ["min_ready", "Keep ready", "Free clusters kept ready, at least; empty for no buffer.", 1000000],
  ["min_ready_percent", "Keep ready, % of applied", "Free clusters as a share of the applied ones, when more.", 1000],
  ["max_total", "Most in all", "Clusters of this blueprint, free and applied; empty for no limit.", 1000000],
  ["max_applied", "Most applied at once", "Its quota over all users; empty for no limit.", 1000000],
];

// The ready buffer in words: "2, or 50% of applied" or "none".
function bufferText(bp) {
  const parts = [];
  if (bp.min_ready != null) parts.push(String(bp.min_ready));
  if (bp.min_ready_percent != null) parts.push(`${bp.min_ready_percent}% of applied`);
  return parts.length ? parts.join(", or ") : "none: takes the room autofill hosts have";
}

// Labels as "k=v, k=v"; `none` when there are none.
function labelsText(labels, none = "—") {
  return Object.entries(labels ?? {}).map(([k, v]) => `${k}=${v}`).join(", ") || none;
}

// "k=v, k=v" back into labels; throws naming the part that is not KEY=VALUE.
export function parseLabels(text) {
  const labels = {};
  for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const at = part.indexOf("=");
    if (at <= 0) throw new Error(`"${part}" is not KEY=VALUE`);
    labels[part.slice(0, at).trim()] = part.slice(at + 1).trim();
  }
  return labels;
}

// A readiness probe in words: "GET /health on web, every 1 s" or "—".
function probeText(probe) {
  if (!probe) return "—";
  const what = probe.http ? `GET ${probe.http.path ?? "/"} on ${probe.http.port}`
    : probe.tcp ? `connect to ${probe.tcp.port}` : `exec ${probe.exec.command.join(" ")}`;
  return `${what}, every ${probe.period_seconds} s, ${probe.start_seconds} s to start`;
}

// Buffer windows in words: "mon, fri 08:00–18:30 UTC: keep 5, most 20"; "none".
function windowsText(windows) {
  if (!windows?.length) return "none";
  return windows.map((w) => {
    const values = [w.min_ready != null ? `keep ${w.min_ready}` : null,
      w.min_ready_percent != null ? `keep ${w.min_ready_percent}% of applied` : null,
      w.max_total != null ? `most ${w.max_total}` : null].filter(Boolean).join(", ");
    return `${w.days?.length ? w.days.join(", ") : "every day"} ${w.from}–${w.until} UTC: ${values || "the base values"}`;
  }).join("; ");
}

// The rollout policy in words: "recreate, at most 30 a minute" or "on release".
function rolloutText(bp) {
  return bp.rollout === "on_release"
    ? "on release: free clusters of earlier versions stay until used"
    : `recreate: free clusters of earlier versions made anew, at most ${bp.rollout_per_minute} a minute`;
}

// The clusters of a version by status, in words: "3 ready, 1 applied, 2 creating".
function versionClustersText(counts) {
  const parts = Object.entries(counts).filter(([, n]) => n > 0).map(([status, n]) => `${n} ${status}`);
  return parts.join(", ") || "none";
}

// The rollout section: each version with its clusters, newest first.
function rolloutSection(bp, status) {
  const summary = status.complete
    ? `Every cluster runs version ${status.version}.`
    : `${status.outdated} cluster${status.outdated === 1 ? "" : "s"} of earlier versions left: ${bp.rollout === "on_release" ? "each is made anew after its next release" : `free ones are made anew at most ${bp.rollout_per_minute} a minute, applied ones after release`}.`;
  return [h("h2", {}, "Versions"),
    h("p", { id: "rollout-summary", class: status.complete ? "muted" : "" }, summary),
    h("div", { class: "table-wrap" }, h("table", { id: "versions" },
      h("thead", {}, h("tr", {}, h("th", {}, "Version"), h("th", {}, "Made"), h("th", {}, "Replaced"), h("th", {}, "Clusters"), h("th", { class: "num" }, "In all"))),
      h("tbody", {}, status.versions.map((v) => h("tr", { "data-version": String(v.version) },
        h("td", {}, v.version === status.version ? `${v.version} (current)` : String(v.version)),
        h("td", {}, v.created_at ? time(v.created_at) : "—"),
        h("td", {}, v.superseded_at ? time(v.superseded_at) : "—"),
        h("td", { "data-key": "clusters" }, versionClustersText(v.clusters)),
        h("td", { class: "num", "data-key": "total" }, v.total))))))];
}

// Applied clusters, with the blueprint's quota when it has one: "3 / 10".
function quotaText(applied, max) {
  return max === undefined || max === null ? String(applied) : `${applied} / ${max}`;
}

export function mount(main, ctx) {
  return ctx.rest[0] ? detail(main, ctx.rest[0], ctx) : list(main, ctx);
}

function list(main) {
  const body = h("div", { "aria-busy": "true" }, h("p", { class: "muted" }, "Loading…"));
  main.append(h("div", { class: "row spread" }, h("h1", {}, "Blueprints"),
    h("button", { type: "button", class: "primary", id: "new-blueprint", onclick: () => create(refresh) }, "New blueprint")), body);
  let timer = null;

  async function refresh() {
    try {
      const [items, stats] = await Promise.all([all("/blueprints"), get("/stats")]);
      const counts = new Map(stats.blueprints.map((b) => [b.name, b.clusters]));
      body.removeAttribute("aria-busy");
      replace(body, items.length === 0
        ? h("p", { class: "empty card" }, "No blueprints yet: a blueprint says which containers make a cluster.")
        : h("div", { class: "table-wrap" }, h("table", { id: "blueprints" },
          h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", { class: "num" }, "Version"), h("th", {}, "Labels"), h("th", {}, "Nodes"), h("th", {}, "API port"), h("th", { class: "num" }, "Ready"), h("th", { class: "num", title: "applied, and the most the blueprint allows at once" }, "In use / quota"), h("th", {}, "Created"), h("th", {}, "Actions"))),
          h("tbody", {}, items.map((bp) => {
            const c = counts.get(bp.name);
            return h("tr", { "data-blueprint": bp.name },
              h("td", {}, h("a", { href: `#/blueprints/${encodeURIComponent(bp.name)}` }, bp.name)),
              h("td", { class: "num", "data-key": "version" }, bp.version),
              h("td", { class: "mono" }, Object.entries(bp.labels).map(([k, v]) => `${k}=${v}`).join(", ") || "—"),
              h("td", {}, bp.nodes.map((n) => n.name).join(", ")),
              h("td", { class: "mono" }, bp.api_port ?? "—"),
              h("td", { class: "num" }, c?.ready ?? 0),
              h("td", { class: "num", "data-key": "in-use" }, quotaText(c?.applied ?? 0, bp.max_applied)),
              h("td", {}, time(bp.created_at)),
              h("td", { class: "actions" }, h("button", { type: "button", class: "small danger", "aria-label": `Delete ${bp.name}`, "data-key": `delete-${bp.name}`, onclick: () => remove(bp.name, refresh) }, "Delete")));
          })))));
    } catch (err) {
      replace(body, h("p", { class: "form-error", role: "alert" }, `Could not read the blueprints: ${err.message}`));
    }
  }

  refresh();
  return {
    refresh,
    onEvent(event) {
      if (event.kind !== "cluster" && event.kind !== "cluster_deleted" && event.kind !== "applied" && event.kind !== "released") return;
      clearTimeout(timer);
      timer = setTimeout(refresh, 500);
    },
    dispose() { clearTimeout(timer); },
  };
}

function detail(main, name, { navigate }) {
  const body = h("div", { "aria-busy": "true" }, h("p", { class: "muted" }, "Loading…"));
  main.append(h("p", {}, h("a", { href: "#/blueprints" }, "← Blueprints")), body);
  let timer = null;

  async function refresh() {
    try {
      const path = `/blueprints/${encodeURIComponent(name)}`;
      const [bp, rollout] = await Promise.all([get(path), get(`${path}/rollout`)]);
      body.removeAttribute("aria-busy");
      replace(body,
        h("div", { class: "row spread" }, h("h1", {}, bp.name),
          h("div", { class: "row" },
            h("a", { class: "button", href: `#/clusters?view=all&blueprint=${encodeURIComponent(bp.name)}` }, "Its clusters"),
            h("button", { type: "button", id: "edit-policies", onclick: () => editPolicies(bp, refresh) }, "Policies"),
            h("button", { type: "button", id: "new-version", onclick: () => newVersion(bp, refresh) }, "New version"),
            h("button", { type: "button", class: "danger", onclick: () => remove(bp.name, () => navigate("#/blueprints")) }, "Delete"))),
        h("section", { class: "card" }, h("dl", { class: "facts" },
          h("dt", {}, "Labels"), h("dd", { class: "mono" }, labelsText(bp.labels)),
          h("dt", {}, "API port"), h("dd", { class: "mono" }, bp.api_port ?? "the first named port"),
          h("dt", {}, "Most applied at once"), h("dd", { id: "max-applied" }, bp.max_applied ?? "no limit"),
          h("dt", {}, "Ready buffer"), h("dd", { id: "ready-buffer" }, bufferText(bp)),
          h("dt", {}, "Most in all"), h("dd", { id: "max-total" }, bp.max_total ?? "no limit"),
          h("dt", {}, "Time windows"), h("dd", { id: "buffer-windows" }, windowsText(bp.buffer_windows)),
          h("dt", {}, "Hosts"), h("dd", { class: "mono", id: "host-selector" }, labelsText(bp.host_selector, "any host")),
          h("dt", {}, "Placement"), h("dd", { id: "placement" }, bp.placement === "packed" ? "packed: the fullest host first" : "spread: evenly over the hosts"),
          h("dt", {}, "On release"), h("dd", { id: "release-mode" }, bp.release_mode === "reset" ? "reset: restarted in place" : "recreate: destroyed and made anew"),
          h("dt", {}, "Version"), h("dd", { id: "version" }, `${bp.version}, made ${time(bp.version_created_at)}`),
          h("dt", {}, "New versions"), h("dd", { id: "rollout" }, rolloutText(bp)),
          h("dt", {}, "Created"), h("dd", {}, time(bp.created_at)))),
        h("h2", {}, "Nodes"),
        h("div", { class: "table-wrap" }, h("table", {},
          h("thead", {}, h("tr", {}, h("th", {}, "Node"), h("th", {}, "Image"), h("th", {}, "Command"), h("th", {}, "Ports"), h("th", {}, "Env"), h("th", {}, "Health check"), h("th", {}, "Readiness"))),
          h("tbody", {}, bp.nodes.map((n) => h("tr", {},
            h("td", {}, n.name), h("td", { class: "mono" }, n.image),
            h("td", { class: "mono" }, n.command?.length ? n.command.join(" ") : "image default"),
            h("td", { class: "mono" }, Object.entries(n.ports ?? {}).map(([k, v]) => `${k}: ${v}`).join(", ") || "—"),
            h("td", { class: "mono" }, Object.keys(n.env ?? {}).join(", ") || "—"),
            h("td", { class: "mono" }, n.health ? n.health.command : "—"),
            h("td", { class: "mono", "data-key": `readiness-${n.name}` }, probeText(n.readiness))))))),
        ...rolloutSection(bp, rollout),
        h("h2", {}, "As JSON"),
        h("pre", { class: "json" }, JSON.stringify(bp, null, 2)));
    } catch (err) {
      replace(body, h("p", { class: "form-error", role: "alert" },
        err.status === 404 ? `There is no blueprint ${name}.` : `Could not read the blueprint: ${err.message}`));
    }
  }

  refresh();
  return {
    refresh,
    // Clusters moving between versions change the rollout.
    onEvent(event) {
      if (event.kind !== "cluster" && event.kind !== "cluster_deleted" && event.kind !== "released") return;
      clearTimeout(timer);
      timer = setTimeout(refresh, 500);
    },
    dispose() { clearTimeout(timer); },
  };
}

// The form for a new version: the nodes and API port as JSON, the current ones to
// start from.
async function newVersion(bp, refresh) {
  const editor = h("textarea", {
    class: "json", id: "version-json", name: "json", spellcheck: false, autocomplete: "off",
    "aria-describedby": "version-json-error", value: JSON.stringify({ nodes: bp.nodes, ...(bp.api_port ? { api_port: bp.api_port } : {}) }, null, 2),
  });
  const error = h("p", { class: "field-error", id: "version-json-error", role: "alert" });
  const fail = (message) => {
    error.textContent = message;
    editor.setAttribute("aria-invalid", "true");
    editor.focus();
    return Object.assign(new Error(message), { shownAtField: true });
  };
  const saved = await modal(`New version of ${bp.name}`, h("div", {},
    h("label", { for: "version-json" }, `Version ${bp.version + 1} (JSON: nodes and api_port)`), editor,
    h("p", { class: "hint" }, bp.rollout === "on_release"
      ? "Clusters made from now on are of it; free ones of earlier versions stay until used, applied ones are made anew after release."
      : `Clusters made from now on are of it; free ones of earlier versions are made anew, at most ${bp.rollout_per_minute} a minute; applied ones after release.`),
    error), {
    submitLabel: "Make the version",
    async onsubmit() {
      let value;
      try {
        value = JSON.parse(editor.value);
        check(JSON.stringify({ name: bp.name, ...value }));
      } catch (err) {
        throw fail(err.message);
      }
      try {
        return await post(`/blueprints/${encodeURIComponent(bp.name)}/versions`, value);
      } catch (err) {
        throw fail(`The server refused it: ${err.message} (${err.status} ${err.code})`);
      }
    },
  });
  if (saved) {
    toast(`${saved.name} is at version ${saved.version}`);
    refresh();
  }
}

// The form for a blueprint's policies: quota, ready buffer, placement, release mode
// and rollout; an empty number removes a limit, an empty selector admits every host.
async function editPolicies(bp, refresh) {
  const names = POLICIES.map(([name]) => name);
  const fields = POLICIES.map(([name, label, hint, max]) =>
    field(name, label, h("input", { type: "number", min: 0, max, step: 1, value: bp[name] ?? "", placeholder: "none" }), hint));
  const choice = (value, options) => h("select", {}, options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
  fields.push(
    field("host_selector", "Hosts labelled", h("input", { type: "text", value: labelsText(bp.host_selector, ""), placeholder: "any host", autocomplete: "off" }), "KEY=VALUE, comma-separated: only hosts with all of these hold its clusters."),
    field("placement", "Placement", choice(bp.placement, [["spread", "spread: evenly over the hosts"], ["packed", "packed: the fullest host first"]]), "How new clusters are laid out."),
    field("buffer_windows", "Time windows", h("textarea", { class: "json", rows: 3, spellcheck: false, value: JSON.stringify(bp.buffer_windows ?? []) }), 'JSON list, e.g. [{"days": ["mon"], "from": "08:00", "until": "18:00", "min_ready": 5}] (UTC); [] for none.'),
    field("release_mode", "On release", choice(bp.release_mode, [["recreate", "recreate: destroy and make anew"], ["reset", "reset: restart in place"]]), "Reset is faster; what the containers wrote survives."),
    field("rollout", "New versions", choice(bp.rollout, [["recreate", "recreate: replace free clusters now"], ["on_release", "on release: replace each after its next use"]]), "How free clusters of earlier versions give way."),
    field("rollout_per_minute", "Replaced a minute, at most", h("input", { type: "number", min: 1, max: 100000, step: 1, value: bp.rollout_per_minute, required: true }), "With recreate: free clusters of earlier versions made anew in a minute."));
  const saved = await modal(`Policies of ${bp.name}`, h("div", { class: "grid-fields" }, ...fields.flat()), {
    async onsubmit(form) {
      clearFieldErrors(form);
      const body = { unset: [] };
      for (const name of names) {
        const el = form.elements.namedItem(name);
        if (!el.checkValidity()) {
          setFieldError(form, name, el.validationMessage);
          throw Object.assign(new Error(`Check ${name.replaceAll("_", " ")}.`), { shownAtField: true });
        }
        if (el.value === "") body.unset.push(name);
        else body[name] = Number(el.value);
      }
      try {
        body.host_selector = parseLabels(form.elements.namedItem("host_selector").value);
      } catch (err) {
        setFieldError(form, "host_selector", err.message);
        throw Object.assign(new Error("Check hosts labelled."), { shownAtField: true });
      }
      try {
        body.buffer_windows = JSON.parse(form.elements.namedItem("buffer_windows").value || "[]");
        if (!Array.isArray(body.buffer_windows)) throw new Error("a JSON list is wanted");
      } catch (err) {
        setFieldError(form, "buffer_windows", `Not a JSON list of windows: ${err.message}`);
        throw Object.assign(new Error("Check the time windows."), { shownAtField: true });
      }
      body.placement = form.elements.namedItem("placement").value;
      body.release_mode = form.elements.namedItem("release_mode").value;
      body.rollout = form.elements.namedItem("rollout").value;
      const rate = form.elements.namedItem("rollout_per_minute");
      if (!rate.checkValidity()) {
        setFieldError(form, "rollout_per_minute", rate.validationMessage);
        throw Object.assign(new Error("Check replaced a minute."), { shownAtField: true });
      }
      body.rollout_per_minute = Number(rate.value);
      const all = [...names, "buffer_windows", "host_selector", "placement", "release_mode", "rollout", "rollout_per_minute"];
      try {
        return await patch(`/blueprints/${encodeURIComponent(bp.name)}`, body);
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        const name = fieldOf(err, all);
        if (name && setFieldError(form, name, `${err.message} (${err.status} ${err.code})`)) err.shownAtField = true;
        else err.message = `${err.message} (${err.status} ${err.code})`;
        throw err;
      }
    },
  });
  if (saved) {
    toast(`Policies of ${saved.name} saved`);
    refresh();
  }
}

// Checks what the browser can before the server does: JSON syntax (with where),
// and the shape of a NewBlueprint.
export function check(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`Not valid JSON: ${err.message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error("The blueprint is a JSON object: {\"name\": ..., \"nodes\": [...]}.");
  if (typeof value.name !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(value.name)) throw new Error("\"name\" is required: 1-63 letters, digits, '.', '_' or '-'.");
  if (!Array.isArray(value.nodes) || value.nodes.length === 0) throw new Error("\"nodes\" is required: a list of at least one node.");
  const seen = new Set();
  value.nodes.forEach((node, i) => {
    if (typeof node !== "object" || node === null) throw new Error(`nodes[${i}] is not an object.`);
    if (typeof node.name !== "string" || !node.name) throw new Error(`nodes[${i}] needs a "name".`);
    if (typeof node.image !== "string" || !node.image) throw new Error(`nodes[${i}] (${node.name}) needs an "image".`);
    if (seen.has(node.name)) throw new Error(`Two nodes are named ${node.name}: node names are unique.`);
    seen.add(node.name);
  });
  return value;
}

async function create(refresh) {
  const editor = h("textarea", {
    class: "json", id: "blueprint-json", name: "json", spellcheck: false, autocomplete: "off",
    "aria-describedby": "blueprint-json-error blueprint-json-hint", value: JSON.stringify(TEMPLATE, null, 2),
  });
  // Ctrl+Enter saves; Tab still moves on and Esc closes the dialog.
  editor.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      editor.form.requestSubmit();
    }
  });
  editor.addEventListener("focus", () => { editor.setSelectionRange(0, 0); editor.scrollTop = 0; }, { once: true });
  const error = h("p", { class: "field-error", id: "blueprint-json-error", role: "alert" });
  editor.addEventListener("input", () => {
    try { check(editor.value); error.textContent = ""; editor.removeAttribute("aria-invalid"); } catch (err) { error.textContent = err.message; editor.setAttribute("aria-invalid", "true"); }
  });
  const saved = await modal("New blueprint", h("div", {},
    h("label", { for: "blueprint-json" }, "Blueprint (JSON, a NewBlueprint of the API)"), editor,
    h("p", { class: "hint", id: "blueprint-json-hint" }, "Each node: name, image, and optionally command (list), env, ports ({\"rest\": \"7050/tcp\"}), health. Ctrl+Enter saves."),
    error), {
    submitLabel: "Create blueprint",
    async onsubmit() {
      let value;
      try {
        value = check(editor.value);
      } catch (err) {
        error.textContent = err.message;
        editor.setAttribute("aria-invalid", "true");
        editor.focus();
        throw Object.assign(err, { shownAtField: true });
      }
      try {
        return await post("/blueprints", value);
      } catch (err) {
        error.textContent = `The server refused it: ${err.message} (${err.status} ${err.code})`;
        editor.setAttribute("aria-invalid", "true");
        editor.focus();
        throw Object.assign(err, { shownAtField: true });
      }
    },
  });
  if (saved) {
    toast(`Blueprint ${saved.name} created`);
    refresh();
  }
}

async function remove(name, then) {
  if (!await confirmDialog(`Delete blueprint ${name}?`, "Refused while clusters use it: clean or delete them first.")) return;
  try {
    await del(`/blueprints/${encodeURIComponent(name)}`);
    toast(`Blueprint ${name} deleted`);
    then();
  } catch (err) {
    toast(`Could not delete ${name}: ${err.message}`, "error");
  }
}
