// Clusters: free, in use, failing, all and released (lease history) views with
// filters, sorting and paging; and one cluster's detail with its nodes.

import { all, del, get, post } from "./api.js";
import { ago, badge, confirmDialog, duration, h, modal, pager, replace, sortHeader, sorted, time, toast } from "./dom.js";

const VIEWS = {
  free: { label: "Free", status: "ready", count: "ready" },
  inuse: { label: "In use", status: "applied", count: "applied" },
  failing: { label: "Failing" },
  all: { label: "All" },
  released: { label: "Released" },
};
const STATUSES = ["creating", "ready", "applied", "releasing", "stopped", "failed", "deleting"];

export function mount(main, ctx) {
  return ctx.rest[0] ? detail(main, ctx.rest[0], ctx) : list(main, ctx);
}

function list(main, { query, navigate }) {
  const viewName = VIEWS[query.get("view")] ? query.get("view") : "free";
  const view = VIEWS[viewName];
  const state = {
    host_id: query.get("host_id") ?? "",
    blueprint: query.get("blueprint") ?? "",
    user_id: query.get("user_id") ?? "",
    status: query.get("status") ?? "",
    problem: query.get("problem") === "failed" ? "failed" : "unhealthy",
    limit: Number(query.get("limit") ?? 25),
    offset: Number(query.get("offset") ?? 0),
  };
  const sort = { key: query.get("sort") ?? "", dir: query.get("dir") === "desc" ? -1 : 1 };
  const go = (changes) => {
    const next = { view: viewName, ...state, sort: sort.key, dir: sort.dir < 0 ? "desc" : "", ...changes };
    const params = new URLSearchParams(Object.entries(next).filter(([, v]) => v !== "" && v !== undefined && v !== null));
    navigate(`#/clusters?${params}`);
  };
  // Clusters are sorted by the server, so pages follow the order; a new order starts
  // at the first page. Leases are sorted within the page.
  const setSort = (key) => go({ sort: key, dir: sort.key === key && sort.dir > 0 ? "desc" : "", offset: 0 });

  const tabs = h("nav", { class: "tabs", "aria-label": "Cluster views" });
  const filters = h("form", { class: "filters", role: "search", onsubmit: (e) => { e.preventDefault(); applyFilters(); } });
  const body = h("div", { "aria-busy": "true" }, h("p", { class: "muted" }, "Loading…"));
  main.append(h("div", { class: "row spread" }, h("h1", {}, "Clusters"),
    h("button", { type: "button", id: "new-cluster", onclick: () => create(hosts, refresh) }, "New cluster")), tabs, filters, body);
  let hosts = [], blueprints = [], timer = null, filtersDrawn = false;

  function applyFilters() {
    const els = filters.elements;
    go({
      host_id: els.namedItem("host_id").value,
      blueprint: els.namedItem("blueprint")?.value ?? "",
      user_id: els.namedItem("user_id")?.value.trim() ?? "",
      status: els.namedItem("status")?.value ?? "",
      problem: els.namedItem("problem")?.value ?? "",
      limit: els.namedItem("limit").value,
      offset: 0,
    });
  }

  function drawFilters() {
    const select = (name, label, options) => h("label", {}, label,
      h("select", { name, onchange: applyFilters }, options.map(([value, text]) => h("option", { value, selected: state[name] === value }, text))));
    const released = viewName === "released";
    replace(filters,
      released ? null : select("host_id", "Host", [["", "any host"], ...hosts.map((x) => [x.id, x.name])]),
      released ? h("input", { type: "hidden", name: "host_id", value: "" }) : null,
      released ? null : select("blueprint", "Blueprint", [["", "any blueprint"], ...blueprints.map((b) => [b.name, b.name])]),
      viewName === "all" ? select("status", "Status", [["", "any status"], ...STATUSES.map((st) => [st, st])]) : null,
      viewName === "failing" ? select("problem", "Problem", [["unhealthy", "unhealthy (a node is down or failing)"], ["failed", "failed to create"]]) : null,
      viewName === "inuse" || released || viewName === "all"
        ? h("label", {}, "User", h("input", { name: "user_id", value: state.user_id, placeholder: "user id", size: 14 })) : null,
      h("label", {}, "Per page", h("select", { name: "limit", onchange: applyFilters },
        [25, 50, 100, 250].map((n) => h("option", { value: n, selected: state.limit === n }, n)))),
      h("button", { type: "submit" }, "Filter"));
    filtersDrawn = true;
  }

  async function refresh() {
    try {
      const failing = viewName !== "failing" ? {} : state.problem === "failed" ? { status: "failed" } : { health: "failing" };
      const [stats, unhealthy, page, hostList, blueprintList] = await Promise.all([
        get("/stats"),
        get("/clusters", { health: "failing", limit: 1 }),
        viewName === "released"
          ? get("/leases", { user_id: state.user_id, limit: state.limit, offset: state.offset })
          : get("/clusters", {
            status: view.status ?? state.status, host_id: state.host_id, blueprint: state.blueprint,
            user_id: state.user_id, ...failing, ...serverSort(sort), limit: state.limit, offset: state.offset,
          }),
        all("/hosts"),
        filtersDrawn ? Promise.resolve(blueprints) : all("/blueprints"),
      ]);
      hosts = hostList;
      blueprints = blueprintList;
      drawTabs(stats, unhealthy.total);
      if (!filtersDrawn) drawFilters();
      const names = new Map(hosts.map((x) => [x.id, x.name]));
      body.removeAttribute("aria-busy");
      replace(body, viewName === "released" ? leases(page, names) : clusters(page, names), pager(page, (offset) => go({ offset })));
    } catch (err) {
      replace(body, h("p", { class: "form-error", role: "alert" }, `Could not read the clusters: ${err.message}`));
    }
  }

  function drawTabs(stats, unhealthy) {
    const counts = {
      ...Object.fromEntries(Object.entries(VIEWS).filter(([, v]) => v.count).map(([name, v]) => [name, stats.clusters[v.count]])),
      failing: stats.clusters.failed + unhealthy,
      all: STATUSES.reduce((n, st) => n + stats.clusters[st], 0),
    };
    replace(tabs, Object.entries(VIEWS).map(([name, v]) => h("a", {
      href: `#/clusters?view=${name}`, "aria-current": name === viewName ? "page" : null, "data-key": `tab-${name}`, "data-view": name,
    }, v.label, name in counts ? h("span", { class: "count" }, counts[name]) : null)));
  }

  function clusters(page, names) {
    if (page.items.length === 0) return h("p", { class: "empty card" }, emptyText(viewName));
    const th = (label, key) => sortHeader(label, key, sort, setSort);
    return h("div", { class: "table-wrap" }, h("table", { id: "clusters" },
      h("thead", {}, h("tr", {}, th("Name", "name"), th("Blueprint", "blueprint"), th("Host", "host_id"), th("Status", "status"),
        th("Health", "health"), th("User", "user_id"), th("Applied", "applied_at"), th("Lease ends", "expires_at"), h("th", {}, "Actions"))),
      h("tbody", {}, page.items.map((c) => h("tr", { "data-cluster": c.name, "data-status": c.status },
        h("td", {}, h("a", { href: `#/clusters/${encodeURIComponent(c.id)}`, "data-key": `open-${c.id}` }, c.name)),
        h("td", {}, c.blueprint, h("span", { class: "muted", "data-key": "blueprint-version" }, ` v${c.blueprint_version}`)),
        h("td", {}, names.get(c.host_id) ?? c.host_id),
        h("td", {}, badge(c.status, c.status_reason)),
        h("td", {}, badge(c.health, c.health_reason), c.health_reason ? h("div", { class: "muted" }, c.health_reason) : null),
        h("td", {}, c.user_id ?? "—"),
        h("td", {}, c.applied_at ? ago(c.applied_at) : "—"),
        h("td", {}, c.expires_at ? ago(c.expires_at) : "—"),
        h("td", { class: "actions" }, actions(c, refresh, { compact: true })))))));
  }

  function leases(page, names) {
    if (page.items.length === 0) return h("p", { class: "empty card" }, "No lease history yet.");
    const items = sorted(page.items, sort);
    const th = (label, key, cls) => sortHeader(label, key, sort, setSort, cls);
    return h("div", { class: "table-wrap" }, h("table", { id: "leases" },
      h("caption", { class: "muted" }, sort.key ? "Sorted within this page; pages come newest first." : null),
      h("thead", {}, h("tr", {}, th("Cluster", "cluster_name"), th("Blueprint", "blueprint"), h("th", {}, "Host"), th("User", "user_id"),
        th("Applied", "applied_at"), th("Released", "released_at"), th("Duration", "duration_seconds", "num"), th("Reason", "release_reason"), h("th", {}, "Metadata"))),
      h("tbody", {}, items.map((l) => h("tr", { "data-lease": l.id, "data-cluster": l.cluster_name },
        h("td", {}, h("a", { href: `#/clusters/${encodeURIComponent(l.cluster_id)}` }, l.cluster_name)),
        h("td", {}, l.blueprint),
        h("td", {}, names.get(l.host_id) ?? h("span", { class: "muted" }, l.host_id)),
        h("td", {}, l.user_id),
        h("td", {}, time(l.applied_at)),
        h("td", {}, l.released_at ? time(l.released_at) : badge("applied", "still open")),
        h("td", { class: "num" }, duration(l.duration_seconds)),
        h("td", {}, l.release_reason ?? "—"),
        h("td", { class: "mono" }, Object.entries(l.metadata).map(([k, v]) => `${k}=${v}`).join(", ") || "—"))))));
  }

  refresh();
  return {
    refresh,
    onEvent(event) {
      if (event.kind === "operation" || event.kind.startsWith("host")) return;
      clearTimeout(timer);
      timer = setTimeout(refresh, 400);
    },
    dispose() { clearTimeout(timer); },
  };
}

// Makes one cluster of a blueprint on a chosen host (beside what fills make).
async function create(hosts, refresh) {
  const blueprints = await all("/blueprints");
  const host = h("select", { id: "c-host", name: "host_id", required: true }, hosts.map((x) => h("option", { value: x.id }, x.name)));
  const blueprint = h("select", { id: "c-blueprint", name: "blueprint", required: true }, blueprints.map((b) => h("option", { value: b.name }, b.name)));
  const name = h("input", { id: "c-name", name: "name", pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]{0,62}", maxLength: 63, placeholder: "made from the blueprint's name when empty" });
  const made = await modal("New cluster", h("div", { class: "grid-fields" },
    h("label", { for: "c-host" }, "Host"), host,
    h("label", { for: "c-blueprint" }, "Blueprint"), blueprint,
    h("label", { for: "c-name" }, "Name"), name), {
    submitLabel: "Create",
    async onsubmit() {
      if (!hosts.length || !blueprints.length) throw new Error("Add a host and a blueprint first.");
      if (!name.checkValidity()) throw new Error("A name is 1-63 letters, digits, '.', '_' or '-'.");
      const body = { host_id: host.value, blueprint: blueprint.value };
      if (name.value.trim()) body.name = name.value.trim();
      try {
        return await post("/clusters", body);
      } catch (err) {
        throw new Error(`${err.message} (${err.status} ${err.code})`);
      }
    },
  });
  if (made) {
    toast(`Cluster ${made.name} is being created`);
    refresh();
  }
}

// The `sort` and `order` of GET /clusters for a column's sort (none: by name).
const SERVER_SORTS = new Set(["name", "blueprint", "host_id", "status", "health", "user_id", "applied_at", "expires_at", "created_at"]);
function serverSort(sort) {
  return SERVER_SORTS.has(sort.key) ? { sort: sort.key, order: sort.dir < 0 ? "desc" : "asc" } : {};
}

function emptyText(view) {
  return {
    free: "No free clusters: fill a host, or wait for the reconciler to fill autofill hosts.",
    inuse: "No cluster is in use.",
    failing: "No cluster is failing.",
  }[view] ?? "No clusters match.";
}

// The buttons for what can be done to `cluster` (or one `node` of it) in its status.
function actions(cluster, refresh, { node, compact } = {}) {
  const id = encodeURIComponent(cluster.id);
  const what = node ? `${node} of ${cluster.name}` : cluster.name;
  const run = (label, fn) => h("button", {
    type: "button", class: `small${label === "Delete" ? " danger" : ""}`, "data-key": `${label}-${cluster.id}-${node ?? ""}`,
    "aria-label": `${label} ${what}`,
    async onclick(event) {
      event.currentTarget.disabled = true;
      try {
        if (await fn() !== false) refresh();
      } catch (err) {
        toast(`${label} ${what}: ${err.message}`, "error");
        refresh();
      }
    },
  }, label);
  const target = node ? { node } : undefined;
  const control = (verb) => run(verb[0].toUpperCase() + verb.slice(1), async () => {
    await post(`/clusters/${id}/${verb}`, target);
    toast(`${what}: ${verb} done`);
  });
  const { status } = cluster;
  const buttons = [];
  if (node) {
    const stopped = cluster.stopped_nodes.includes(node);
    if (["ready", "applied", "stopped"].includes(status)) buttons.push(stopped ? control("start") : control("stop"), control("restart"));
    return buttons;
  }
  if (status === "stopped") buttons.push(control("start"));
  if (status === "ready" || status === "applied") buttons.push(control("stop"), control("restart"));
  if (status === "applied" && !compact) buttons.push(run("Renew", () => renew(cluster)));
  if (status === "applied") buttons.push(run("Release", async () => {
    await post("/release", { cluster_id: cluster.id });
    toast(`${cluster.name} released: it is made fresh again`);
  }));
  if (!compact || status !== "applied") buttons.push(run("Delete", async () => {
    const applied = status === "applied";
    const ok = await confirmDialog(`Delete ${cluster.name}?`,
      applied ? `It is applied to ${cluster.user_id}: deleting closes the lease.` : "Its containers and network are removed.");
    if (!ok) return false;
    await del(`/clusters/${id}`, { force: applied ? "true" : undefined });
    toast(`${cluster.name} deleted`);
  }));
  return buttons;
}

// Moves the lease end of an applied cluster to a new length from now.
async function renew(cluster) {
  const ttl = h("input", { id: "r-ttl", type: "number", min: 1, step: 1, value: 3600, required: true });
  const renewed = await modal(`Renew the lease of ${cluster.name}`, h("div", { class: "grid-fields" },
    h("label", { for: "r-ttl" }, "Seconds from now"), ttl), {
    submitLabel: "Renew",
    async onsubmit() {
      if (!ttl.checkValidity()) throw new Error("A whole number of seconds, 1 or more.");
      try {
        return await post(`/clusters/${encodeURIComponent(cluster.id)}/renew`, { ttl_seconds: Number(ttl.value) });
      } catch (err) {
        throw new Error(`${err.message} (${err.status} ${err.code})`);
      }
    },
  });
  if (!renewed) return false;
  toast(`Lease of ${cluster.name} renewed`);
}

function detail(main, id) {
  const body = h("div", { "aria-busy": "true" }, h("p", { class: "muted" }, "Loading…"));
  main.append(h("p", {}, h("a", { href: "#/clusters" }, "← Clusters")), body);
  let cluster = null, blueprint = null, host = null, deleted = false, timer = null;

  async function refresh() {
    try {
      cluster = await get(`/clusters/${encodeURIComponent(id)}`);
      [blueprint, host] = await Promise.all([
        blueprint?.name === cluster.blueprint ? blueprint : get(`/blueprints/${encodeURIComponent(cluster.blueprint)}`).catch(() => null),
        host?.id === cluster.host_id ? host : get(`/hosts/${encodeURIComponent(cluster.host_id)}`).catch(() => null),
      ]);
      draw();
    } catch (err) {
      if (err.status === 404) {
        deleted = true;
        return draw();
      }
      replace(body, h("p", { class: "form-error", role: "alert" }, `Could not read the cluster: ${err.message}`));
    }
  }

  function draw() {
    body.removeAttribute("aria-busy");
    if (deleted || !cluster) {
      return replace(body, h("h1", {}, "Cluster gone"),
        h("p", { class: "card" }, "This cluster no longer exists. Its lease history stays under ", h("a", { href: "#/clusters?view=released" }, "Released"), "."));
    }
    document.title = `${cluster.name} · PoolManager`;
    const c = cluster;
    const nodes = blueprint?.nodes.map((n) => n.name) ?? Object.keys({ ...c.containers, ...c.service_urls });
    const meta = Object.entries(c.metadata);
    replace(body,
      h("div", { class: "row spread" }, h("h1", {}, c.name, " ", badge(c.status)), h("div", { class: "row" }, actions(c, refresh))),
      h("section", { class: "card" }, h("dl", { class: "facts" },
        h("dt", {}, "Status"), h("dd", { id: "status" }, badge(c.status), c.status_reason ? ` ${c.status_reason}` : ""),
        h("dt", {}, "Health"), h("dd", { id: "health" }, badge(c.health), c.health_reason ? ` ${c.health_reason}` : ""),
        h("dt", {}, "Owner"), h("dd", { id: "owner" }, c.user_id ?? "free"),
        h("dt", {}, "Applied"), h("dd", {}, time(c.applied_at)),
        h("dt", {}, "Lease ends"), h("dd", { id: "expires" }, c.expires_at ? [time(c.expires_at), " (", ago(c.expires_at), ")"] : c.user_id ? "never" : "—"),
        h("dt", {}, "Blueprint"), h("dd", {}, h("a", { href: `#/blueprints/${encodeURIComponent(c.blueprint)}` }, c.blueprint), ` version ${c.blueprint_version}`),
        h("dt", {}, "Host"), h("dd", {}, host ? h("a", { href: `#/clusters?view=all&host_id=${encodeURIComponent(host.id)}` }, host.name) : c.host_id),
        h("dt", {}, "Id"), h("dd", { class: "mono" }, c.id),
        h("dt", {}, "Created · updated"), h("dd", {}, time(c.created_at), " · ", ago(c.updated_at)))),
      h("h2", {}, "Metadata"),
      meta.length ? h("div", { class: "table-wrap" }, h("table", { id: "metadata" }, h("tbody", {}, meta.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v))))))
        : h("p", { class: "muted" }, "None."),
      h("h2", {}, "Nodes"),
      h("div", { class: "nodes" }, nodes.map((node) => {
        const stopped = c.stopped_nodes.includes(node);
        const urls = Object.entries(c.service_urls[node] ?? {});
        return h("section", { class: "card node", "data-node": node },
          h("h3", {}, node, badge(stopped ? "stopped" : c.status === "applied" || c.status === "ready" ? "running" : c.status)),
          c.containers[node] ? h("div", { class: "muted mono" }, `container ${c.containers[node].slice(0, 12)}`) : null,
          urls.length ? h("ul", {}, urls.map(([port, url]) => h("li", {}, `${port}: `, h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, url))))
            : h("p", { class: "muted" }, "No service URLs."),
          h("div", { class: "row" }, actions(c, refresh, { node })));
      })));
  }

  refresh();
  return {
    refresh,
    onEvent(event) {
      if (event.kind === "cluster_deleted" && event.id === id) {
        deleted = true;
        return draw();
      }
      if (event.cluster?.id === id) {
        clearTimeout(timer);
        timer = setTimeout(refresh, 150);
      }
    },
    dispose() { clearTimeout(timer); },
  };
}
