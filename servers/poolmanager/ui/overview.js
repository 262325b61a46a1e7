// Overview: the whole pool at a glance, and applies/releases over time.

import { get } from "./api.js";
import { badge, h, replace, s } from "./dom.js";

const STATUSES = ["creating", "ready", "applied", "releasing", "stopped", "failed", "deleting"];
const RANGES = {
  hour: { label: "Last hour", seconds: 3600, bucket: 60 },
  day: { label: "Last 24 hours", seconds: 86400, bucket: 3600 },
  week: { label: "Last 7 days", seconds: 7 * 86400, bucket: 6 * 3600 },
};

export function mount(main, { query, navigate }) {
  const range = RANGES[query.get("range")] ? query.get("range") : "day";
  const body = h("div", { "aria-busy": "true" }, h("p", { class: "muted" }, "Loading…"));
  main.append(h("h1", {}, "Overview"), body);
  let timer = null;

  async function refresh() {
    try {
      const { seconds, bucket } = RANGES[range];
      const since = new Date(Date.now() - seconds * 1000).toISOString();
      const [stats, history] = await Promise.all([get("/stats"), get("/stats/history", { since, bucket })]);
      replace(body, render(stats, history, range, navigate));
      body.removeAttribute("aria-busy");
    } catch (err) {
      replace(body, h("p", { class: "form-error", role: "alert" }, `Could not read the stats: ${err.message}`));
    }
  }

  refresh();
  return {
    refresh,
    onEvent(event) {
      if (event.kind === "operation") return;
      clearTimeout(timer);
      timer = setTimeout(refresh, 500);
    },
    dispose() { clearTimeout(timer); },
  };
}

const total = (counts) => STATUSES.reduce((sum, status) => sum + counts[status], 0);

function render(stats, history, range, navigate) {
  const hostTotal = stats.hosts_by_status.active + stats.hosts_by_status.inactive;
  return [
    h("div", { class: "cards" },
      h("section", { class: "card", "aria-labelledby": "c-hosts" },
        h("h2", { id: "c-hosts" }, "Hosts"),
        h("div", { class: "big" }, hostTotal),
        h("ul", { class: "legend" },
          h("li", {}, badge("active"), " ", stats.hosts_by_status.active),
          h("li", {}, badge("inactive"), " ", stats.hosts_by_status.inactive))),
      h("section", { class: "card", "aria-labelledby": "c-clusters" },
        h("h2", { id: "c-clusters" }, "Clusters"),
        h("div", { class: "big" }, total(stats.clusters)),
        stack(stats.clusters), legend(stats.clusters)),
      h("section", { class: "card", "aria-labelledby": "c-free" },
        h("h2", { id: "c-free" }, "Free · in use"),
        h("div", { class: "big" }, `${stats.clusters.ready} · ${stats.clusters.applied}`),
        h("p", { class: "muted" }, "Ready to hand out · applied to users")),
      h("section", { class: "card", "aria-labelledby": "c-waiting" },
        h("h2", { id: "c-waiting" }, "Waiting"),
        h("div", { class: "big", "data-key": "waiting" }, stats.waiting),
        h("p", { class: "muted" }, "Applies waiting in line for a cluster on this server"))),
    h("h2", {}, "Applies and releases"),
    h("section", { class: "card" },
      h("div", { class: "row spread" },
        h("ul", { class: "legend" },
          h("li", {}, h("span", { class: "swatch applied" }), "applied"),
          h("li", {}, h("span", { class: "swatch released" }), "released")),
        h("label", {}, "Range ",
          h("select", { "data-key": "range", onchange: (e) => navigate(`#/overview?range=${e.target.value}`) },
            Object.entries(RANGES).map(([key, r]) => h("option", { value: key, selected: key === range }, r.label))))),
      chart(history, RANGES[range])),
    h("h2", {}, "Capacity per host"),
    stats.hosts.length === 0
      ? h("p", { class: "empty card" }, "No hosts yet. ", h("a", { href: "#/hosts" }, "Add one."))
      : h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, "Host"), h("th", {}, "Status"), h("th", {}, "Use"), h("th", { class: "num" }, "Clusters"), h("th", { class: "num" }, "Capacity"), h("th", {}, "By status"))),
        h("tbody", {}, stats.hosts.map((host) => {
          const used = total(host.clusters);
          const share = host.capacity ? Math.min(1, used / host.capacity) : 0;
          return h("tr", {},
            h("td", {}, h("a", { href: `#/clusters?view=all&host_id=${encodeURIComponent(host.id)}` }, host.name)),
            h("td", {}, badge(host.status)),
            h("td", {}, meter(share), `${Math.round(share * 100)}%`),
            h("td", { class: "num" }, used),
            h("td", { class: "num" }, host.capacity),
            h("td", {}, legend(host.clusters)));
        })))),
    h("h2", {}, "Clusters per blueprint"),
    stats.blueprints.length === 0
      ? h("p", { class: "empty card" }, "No blueprints yet. ", h("a", { href: "#/blueprints" }, "Create one."))
      : h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, "Blueprint"), h("th", { class: "num", title: "Ready clusters against the ready buffer's target" }, "ready / target"), STATUSES.map((st) => h("th", { class: "num" }, st)), h("th", { class: "num" }, "total"))),
        h("tbody", {}, stats.blueprints.map((bp) => h("tr", { "data-blueprint": bp.name },
          h("td", {}, h("a", { href: `#/blueprints/${encodeURIComponent(bp.name)}` }, bp.name),
            bp.backoff ? [" ", backoffBadge(bp.backoff)] : null),
          h("td", { class: bp.ready_target != null && bp.clusters.ready < bp.ready_target ? "num short" : "num", "data-key": "ready-target" },
            bp.ready_target == null ? h("span", { class: "muted", title: "No ready buffer: it takes the room autofill hosts have" }, "no buffer") : `${bp.clusters.ready} / ${bp.ready_target}`),
          STATUSES.map((st) => h("td", { class: "num" }, bp.clusters[st] || h("span", { class: "muted" }, "0"))),
          h("td", { class: "num" }, total(bp.clusters))))))),
  ];
}

// A blueprint whose creations keep failing: when it is tried again, and why.
function backoffBadge(backoff) {
  const next = new Date(backoff.until).toLocaleTimeString();
  const title = `${backoff.failures} creations failed in a row; the next is tried at ${next}. Last: ${backoff.reason}`;
  return h("span", { class: "badge s-failed", "data-key": "backoff", title }, `backing off: ${backoff.failures} failed`);
}

export function meter(share) {
  const bar = h("span");
  bar.style.width = `${Math.round(share * 100)}%`;
  return h("span", { class: share >= 1 ? "meter full" : "meter", role: "img", "aria-label": `${Math.round(share * 100)}% used` }, bar);
}

function stack(counts) {
  const sum = total(counts);
  const bar = h("div", { class: "stack", role: "img", "aria-label": STATUSES.map((st) => `${counts[st]} ${st}`).join(", ") });
  for (const status of STATUSES) {
    if (!counts[status]) continue;
    const part = h("span", { class: `s-${status}`, title: `${counts[status]} ${status}` });
    part.style.width = `${(100 * counts[status]) / sum}%`;
    bar.append(part);
  }
  return bar;
}

function legend(counts) {
  const shown = STATUSES.filter((st) => counts[st]);
  if (shown.length === 0) return h("span", { class: "muted" }, "none");
  return h("ul", { class: "legend" }, shown.map((st) =>
    h("li", { class: `s-${st}` }, h("span", { class: "swatch" }), `${st} ${counts[st]}`)));
}

// Grouped bars per bucket, drawn in SVG; buckets the API leaves out had no activity.
function chart(history, range) {
  const bucketMs = history.bucket_seconds * 1000;
  const start = Math.floor(new Date(history.since).getTime() / bucketMs) * bucketMs;
  const count = Math.max(1, Math.ceil((Date.now() - start) / bucketMs));
  const byStart = new Map(history.buckets.map((b) => [Math.floor(new Date(b.start).getTime() / bucketMs) * bucketMs, b]));
  const buckets = Array.from({ length: count }, (_, i) => {
    const at = start + i * bucketMs;
    const b = byStart.get(at);
    return { at, applied: b?.applied ?? 0, released: b?.released ?? 0 };
  });
  const applied = buckets.reduce((n, b) => n + b.applied, 0);
  const released = buckets.reduce((n, b) => n + b.released, 0);
  const max = Math.max(1, ...buckets.map((b) => Math.max(b.applied, b.released)));
  const top = niceCeil(max);
  const W = 800, H = 240, left = 36, bottom = 22, plotH = H - bottom - 10, plotW = W - left - 8;
  const slot = plotW / count, bar = Math.max(1, slot * 0.38);
  const y = (v) => 10 + plotH - (v / top) * plotH;
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${applied} applies and ${released} releases, ${range.label.toLowerCase()}` });
  for (const tick of [0, top / 2, top]) {
    svg.append(s("line", { class: "grid", x1: left, x2: W - 8, y1: y(tick), y2: y(tick) }),
      s("text", { x: left - 6, y: y(tick) + 4, "text-anchor": "end" }, Number.isInteger(tick) ? tick : tick.toFixed(1)));
  }
  const every = Math.ceil(count / 8);
  buckets.forEach((b, i) => {
    const x = left + i * slot + slot * 0.1;
    const when = new Date(b.at);
    const label = range.bucket >= 86400 / 4 ? when.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit" }) : when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    for (const [kind, value, dx] of [["applied", b.applied, 0], ["released", b.released, bar]]) {
      if (!value) continue;
      svg.append(s("rect", { class: kind, x: x + dx, y: y(value), width: bar, height: Math.max(1, y(0) - y(value)) },
        s("title", {}, `${label}: ${value} ${kind}`)));
    }
    if (i % every === 0) svg.append(s("text", { x: x + bar, y: H - 6, "text-anchor": "middle" }, label));
  });
  return h("figure", { class: "figure" }, svg,
    h("figcaption", { class: "muted" }, `${applied} applied, ${released} released — ${range.label.toLowerCase()}, per ${range.bucket >= 3600 ? `${range.bucket / 3600} h` : `${range.bucket / 60} min`}.`));
}

function niceCeil(value) {
  const step = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 5, 10]) if (m * step >= value) return m * step;
  return value;
}
