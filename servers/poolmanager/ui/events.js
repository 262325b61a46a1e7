// The server's event stream (GET /api/v1/events, Server-Sent Events) read with
// fetch(): EventSource cannot send the Authorization header, and the token never
// goes into a URL. A lost stream is opened again with backoff.

import { authHeaders } from "./api.js";

const SILENCE_MS = 40_000; // the server sends a comment every 15 s
const MAX_BACKOFF_MS = 15_000;

// onEvent(event) gets each Event; onState(state, detail) gets "live",
// "reconnecting" (detail: seconds until the next try), or "unauthorized".
export function connect({ onEvent, onState }) {
  let stopped = false;
  let controller = null;
  let failures = 0;
  let timer = null;

  async function open() {
    controller = new AbortController();
    let watchdog = setTimeout(() => controller.abort(), SILENCE_MS);
    const alive = () => { clearTimeout(watchdog); watchdog = setTimeout(() => controller.abort(), SILENCE_MS); };
    try {
      const resp = await fetch("/api/v1/events", {
        headers: { ...authHeaders(), Accept: "text/event-stream" },
        signal: controller.signal,
        cache: "no-store",
      });
      if (resp.status === 401 || resp.status === 403) {
        stopped = true;
        onState("unauthorized");
        return;
      }
      if (!resp.ok || !resp.body) throw new Error(`the event stream answered ${resp.status}`);
      failures = 0;
      onState("live");
      await read(resp.body, alive, onEvent);
      throw new Error("the event stream ended");
    } catch (err) {
      if (stopped) return;
      const wait = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** failures) * (0.75 + Math.random() * 0.5);
      failures += 1;
      onState("reconnecting", Math.round(wait / 1000), err.message);
      timer = setTimeout(open, wait);
    } finally {
      clearTimeout(watchdog);
    }
  }

  open();
  return {
    close() {
      stopped = true;
      clearTimeout(timer);
      controller?.abort();
    },
  };
}

// Parses the text/event-stream body: blank-line separated blocks of `event:` and
// `data:` lines; lines starting with ':' are comments (keep-alives).
async function read(body, alive, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    alive();
    buffer += value.replaceAll("\r\n", "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n");
      if (!data) continue;
      try {
        onEvent(JSON.parse(data));
      } catch (err) {
        console.warn("unreadable event", err, data);
      }
    }
  }
}
