"use strict";
// Follows the event stream at `url` as the hub's pages need it: read with
// fetch (so a page sees every event type, not only those an EventSource is
// told of in advance, and can send an Authorization header) and parsed as
// the HTML spec's event-stream parser does, reconnecting with the last id
// and the stream's `retry`. A refusal (4xx) stops it. Answers a function
// that stops it.
function followStream(url, { headers = {}, lastEventId = "", onEvent, onStatus = () => {} }) {
  const stop = new AbortController();
  (async () => {
    let retry = 3000;
    while (!stop.signal.aborted) {
      try {
        const sent = { ...headers };
        if (lastEventId) sent["Last-Event-ID"] = lastEventId;
        const response = await fetch(url, { headers: sent, signal: stop.signal });
        if (!response.ok) {
          const why = (await response.text()).trim();
          onStatus("refused: " + response.status + (why ? " " + why : ""), response.status);
          if (response.status < 500) return;
          throw new Error(String(response.status));
        }
        onStatus("connected", response.status, response.headers);
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "", type = "", data = [], first = true;
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          if (first) { buffer = buffer.replace(/^\uFEFF/, ""); first = false; }
          // A lone CR at the end may be the first half of a CRLF: wait for more.
          const lines = buffer.split(/\r\n|\r(?!$)|\n/);
          buffer = lines.pop();
          for (const line of lines) {
            if (line === "") {
              if (data.length) onEvent({ type: type || "message", data: data.join("\n"), lastEventId });
              type = ""; data = [];
              continue;
            }
            if (line.startsWith(":")) continue;
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            let text = colon < 0 ? "" : line.slice(colon + 1);
            if (text.startsWith(" ")) text = text.slice(1);
            if (field === "event") type = text;
            else if (field === "data") data.push(text);
            else if (field === "id" && !text.includes("\0")) lastEventId = text;
            else if (field === "retry" && /^\d+$/.test(text)) retry = Number(text);
          }
        }
      } catch (e) {
        if (stop.signal.aborted) return;
      }
      onStatus("reconnecting…");
      await new Promise(resolve => setTimeout(resolve, retry));
    }
  })();
  return () => stop.abort();
}
