// voicebot ops dashboard. Plain JS, no libraries, works offline.
// Every piece of data reaches the page through textContent or setAttribute, never as HTML:
// transcripts are whatever callers said (or a recogniser made of it).
"use strict";

(function () {
  const base = document.body.dataset.base || "./";
  const SVG = "http://www.w3.org/2000/svg";
  const KINDS = [
    ["transferred", "Transferred"],
    ["shed", "To a person: bot too busy"],
    ["solved", "Solved by the robot"],
    ["hung_up", "Hung up"],
    ["other", "Other"],
    ["unfinished", "Unfinished"],
  ];
  const RATES = [
    ["no_match", "no_match_rate", "No match"],
    ["clarification", "clarification_rate", "Clarification"],
  ];

  // ------------------------------------------------------------------------------------------
  // DOM helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    setAttrs(node, attrs);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(name, String(value));
    }
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function $(id) {
    return document.getElementById(id);
  }

  function pct(share) {
    return share === null || share === undefined ? "–" : (100 * share).toFixed(1) + " %";
  }

  function secs(s) {
    return s === null || s === undefined ? "–" : s.toFixed(1) + " s";
  }

  // Times are the line's clock (its timezone, as the days are), not the browser's.
  let lineZone;

  function when(iso) {
    if (!iso) return "";
    const style = { dateStyle: "short", timeStyle: "short", timeZone: lineZone };
    return new Date(iso).toLocaleString(undefined, style);
  }

  function status(message) {
    $("status").textContent = message || "";
  }

  // ------------------------------------------------------------------------------------------
  // API

  function range() {
    const params = {};
    for (const name of ["since", "until", "language"]) {
      if ($(name).value) params[name] = $(name).value;
    }
    return params;
  }

  // The languages the lines answer in (each line answers in its own), after "all languages".
  function languages(select, codes, chosen) {
    while (select.options.length > 1) select.remove(1);
    for (const code of codes) select.append(el("option", { value: code }, code));
    select.value = chosen || "";
  }

  async function api(path, params) {
    const url = new URL(base + path, window.location.href);
    for (const [k, v] of Object.entries(params || {})) url.searchParams.set(k, v);
    const response = await fetch(url, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (response.status === 401) {
      window.location.assign(base);
      throw new Error("logged out");
    }
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }

  // ------------------------------------------------------------------------------------------
  // Charts (inline SVG)

  function niceMax(value) {
    if (value <= 10) return Math.max(2, 2 * Math.ceil(value / 2)); // whole-number mid tick
    const step = Math.pow(10, Math.floor(Math.log10(value)));
    for (const m of [1, 1.2, 1.6, 2, 3, 4, 5, 6, 8, 10]) {
      if (m * step >= value) return m * step;
    }
    return value;
  }

  function frame(width, height) {
    return svg("svg", {
      viewBox: `0 0 ${width} ${height}`,
      width: width,
      height: height,
      role: "img",
    });
  }

  function yAxis(chart, left, top, plotH, width, max, format) {
    for (const f of [0, 0.5, 1]) {
      const y = top + plotH - f * plotH;
      chart.appendChild(svg("line", { x1: left, x2: width - 8, y1: y, y2: y, class: "axis" }));
      chart.appendChild(
        svg("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, format(f * max))
      );
    }
  }

  function xLabels(chart, days, x, band, y) {
    const every = Math.max(1, Math.ceil(days.length / 12));
    days.forEach((d, i) => {
      if (i % every !== 0 && i !== days.length - 1) return;
      const label = d.day.slice(5);
      chart.appendChild(svg("text", { x: x(i) + band / 2, y: y, "text-anchor": "middle" }, label));
    });
  }

  function legend(container, entries) {
    clear(container);
    for (const [key, label] of entries) container.appendChild(el("span", { class: "k-" + key }, label));
  }

  function callsChart(container, series) {
    clear(container);
    const width = 900, height = 240, left = 40, top = 10, bottom = 26;
    const plotW = width - left - 8, plotH = height - top - bottom;
    const chart = frame(width, height);
    chart.setAttribute("aria-label", "Calls per day by outcome");
    const max = niceMax(Math.max(0, ...series.map((d) => d.calls)));
    const band = plotW / Math.max(1, series.length);
    const x = (i) => left + i * band;
    yAxis(chart, left, top, plotH, width, max, (v) => String(Math.round(v)));
    series.forEach((d, i) => {
      let y = top + plotH;
      for (const [kind, label] of KINDS) {
        const count = d[kind];
        if (!count) continue;
        const h = (count / max) * plotH;
        y -= h;
        const bar = svg("rect", {
          x: (x(i) + band * 0.12).toFixed(1),
          y: y.toFixed(1),
          width: (band * 0.76).toFixed(1),
          height: h.toFixed(1),
          class: "bar k-" + kind,
          "data-day": d.day,
          "data-kind": kind,
          "data-count": count,
        });
        bar.appendChild(svg("title", {}, `${d.day}: ${count} ${label.toLowerCase()}`));
        chart.appendChild(bar);
      }
    });
    xLabels(chart, series, x, band, height - 8);
    container.appendChild(chart);
  }

  function ratesChart(container, series) {
    clear(container);
    const width = 900, height = 200, left = 40, top = 10, bottom = 26;
    const plotW = width - left - 8, plotH = height - top - bottom;
    const chart = frame(width, height);
    chart.setAttribute("aria-label", "No-match and clarification rate per day");
    const band = plotW / Math.max(1, series.length);
    const x = (i) => left + i * band;
    const max = niceMax(
      100 * Math.max(0.05, ...series.flatMap((d) => RATES.map(([, f]) => d[f] || 0)))
    ) / 100;
    const y = (rate) => top + plotH - (rate / max) * plotH;
    yAxis(chart, left, top, plotH, width, max, (v) => Math.round(100 * v) + " %");
    for (const [key, field, label] of RATES) {
      let run = [];
      const flush = () => {
        if (run.length > 1) {
          chart.appendChild(svg("polyline", { points: run.join(" "), class: "line k-" + key }));
        }
        run = [];
      };
      series.forEach((d, i) => {
        const rate = d[field];
        if (rate === null || rate === undefined) {
          flush();
          return;
        }
        const cx = (x(i) + band / 2).toFixed(1), cy = y(rate).toFixed(1);
        run.push(`${cx},${cy}`);
        const dot = svg("circle", {
          cx: cx,
          cy: cy,
          r: 3,
          class: "point k-" + key,
          "data-day": d.day,
          "data-series": key,
          "data-rate": rate.toFixed(4),
        });
        dot.appendChild(svg("title", {}, `${d.day}: ${label.toLowerCase()} ${pct(rate)}`));
        chart.appendChild(dot);
      });
      flush();
    }
    xLabels(chart, series, x, band, height - 8);
    container.appendChild(chart);
  }

  function barsChart(container, counts, what) {
    clear(container);
    const entries = Object.entries(counts || {});
    if (!entries.length) {
      container.appendChild(el("p", { class: "empty" }, "None in this period."));
      return;
    }
    const row = 22, labelW = 170, width = 440, countW = 40;
    const chart = frame(width, entries.length * row + 4);
    chart.setAttribute("aria-label", what);
    const max = Math.max(...entries.map(([, n]) => n));
    entries.forEach(([name, n], i) => {
      const y = 2 + i * row;
      chart.appendChild(svg("text", { x: labelW - 6, y: y + 15, "text-anchor": "end" }, name));
      const bar = svg("rect", {
        x: labelW,
        y: y + 3,
        height: row - 6,
        width: Math.max(1, ((width - labelW - countW) * n) / max).toFixed(1),
        class: "hbar",
        "data-name": name,
        "data-count": n,
      });
      bar.appendChild(svg("title", {}, `${name}: ${n}`));
      chart.appendChild(bar);
      chart.appendChild(
        svg("text", { x: labelW + ((width - labelW - countW) * n) / max + 4, y: y + 15 }, n)
      );
    });
    container.appendChild(chart);
  }

  function kpis(container, r) {
    clear(container);
    const transfers = Object.values(r.transfers_by_group).reduce((a, b) => a + b, 0);
    const tiles = [
      ["Calls", r.calls],
      [`Solved by the robot (${r.solved_by_robot} calls)`, pct(r.solved_share)],
      ["Transferred", transfers],
      ["Of which the bot was too busy (shed)", r.shed],
      ["Hang-ups after an announcement", r.hangups_after_announcement],
      ["No-match rate", pct(r.no_match_rate)],
      ["Clarification rate", pct(r.clarification_rate)],
      ["Median time to a decision", secs(r.median_decision_s)],
    ];
    for (const [label, value] of tiles) {
      container.appendChild(
        el("div", { class: "kpi" }, el("div", { class: "value" }, value), el("div", { class: "label" }, label))
      );
    }
  }

  // ------------------------------------------------------------------------------------------
  // Recent calls

  function decision(c) {
    if (!c.outcome) return "still running";
    const parts = [c.outcome.replace(/_/g, " ")];
    if (c.group) parts.push("→ " + c.group);
    if (c.reason) parts.push(`(${c.reason.replace(/_/g, " ")})`);
    if (c.served.length) parts.push("served: " + c.served.join(", "));
    return parts.join(" ");
  }

  // Two counts per intent (report.lookups, report.recalled), the busiest intent first.
  function perIntentTable(tbody, counts, keys, empty) {
    clear(tbody);
    const intents = Object.keys(counts || {});
    if (!intents.length) {
      tbody.appendChild(el("tr", {}, el("td", { colspan: keys.length + 1, class: "empty" }, empty)));
      return;
    }
    for (const intent of intents) {
      const cells = keys.map((k) => el("td", { class: "num" }, String(counts[intent][k])));
      tbody.appendChild(el("tr", { "data-intent": intent }, el("td", {}, intent), ...cells));
    }
  }

  function callsTable(tbody, calls) {
    clear(tbody);
    if (!calls.length) {
      tbody.appendChild(el("tr", {}, el("td", { colspan: 6, class: "empty" }, "No calls in this period.")));
      return;
    }
    for (const c of calls) {
      const said = el("td", { class: "said" });
      for (const u of c.utterances) {
        const line = el("span", { class: "utt" }, u.transcript === null ? "(purged)" : u.transcript);
        if (u.verdict) line.appendChild(el("span", { class: "verdict " + u.verdict }, u.verdict));
        said.appendChild(line);
      }
      const row = el(
        "tr",
        { class: "call", "data-call-id": c.call_id, "data-outcome": c.outcome || "" },
        el("td", {}, when(c.started_at)),
        el("td", {}, c.language || ""),
        el("td", { class: "caller" }, c.caller || "hidden"),
        said,
        el("td", {}, c.intent || ""),
        el("td", {}, decision(c))
      );
      row.addEventListener("click", () => toggleTimeline(row, c.call_id));
      tbody.appendChild(row);
    }
  }

  async function toggleTimeline(row, callId) {
    const next = row.nextElementSibling;
    if (next && next.classList.contains("timeline-row")) {
      next.remove();
      return;
    }
    const pre = el("pre", { class: "timeline" }, "loading…");
    row.after(el("tr", { class: "timeline-row" }, el("td", { colspan: 6 }, pre)));
    try {
      const body = await api("api/calls/" + encodeURIComponent(callId));
      pre.textContent = body.timeline
        .map((e) => {
          const t = new Date(e.at).toLocaleTimeString([], { hour12: false, timeZone: lineZone });
          return `${t}  ${e.kind.padEnd(6)} ${e.type.padEnd(16)} ${JSON.stringify(e.payload)}`;
        })
        .join("\n");
    } catch (error) {
      pre.textContent = "Could not load the timeline: " + error.message;
    }
  }

  // ------------------------------------------------------------------------------------------
  // Unmatched utterances and snippets

  function intentSelect(intents, chosen) {
    const select = el("select", { "aria-label": "intent" });
    select.appendChild(el("option", { value: "" }, "choose an intent…"));
    for (const i of intents || []) {
      select.appendChild(el("option", { value: i.name }, `${i.name} (${i.label})`));
    }
    if (chosen) select.value = chosen;
    return select;
  }

  // Groups of sentences that mean the same thing; the snippet adds the group's most typical
  // sentence to the chosen intent (preselected: the closest one).
  function groupsTable(tbody, body, intents) {
    clear(tbody);
    if (!body.groups.length) {
      tbody.appendChild(
        el("tr", {}, el("td", { colspan: 7, class: "empty" }, "No topic brought several callers."))
      );
      return;
    }
    for (const g of body.groups) {
      const select = intentSelect(intents[g.language], g.nearest_intent);
      const button = el("button", { type: "button" }, "Copy snippet");
      const note = el("span", { class: "note" });
      const typical = { language: g.language, text: g.examples[0] };
      button.addEventListener("click", () => copySnippet(typical, select.value, note));
      const examples = el("td", { class: "examples" });
      for (const text of g.examples) examples.appendChild(el("span", { class: "utt" }, text));
      const more = g.sentences - g.examples.length;
      if (more > 0) examples.appendChild(el("span", { class: "more" }, `and ${more} more ways`));
      const closest = g.nearest_intent
        ? `${g.nearest_intent} (${g.similarity.toFixed(2)})`
        : "";
      tbody.appendChild(
        el(
          "tr",
          { class: "suggested", "data-count": g.count, "data-name": g.name },
          el("td", { class: "num" }, g.count),
          el("td", {}, g.language),
          el("td", { class: "name" }, g.name),
          examples,
          el("td", {}, closest),
          el("td", {}, select),
          el("td", {}, button, " ", note)
        )
      );
    }
  }

  function unmatchedTable(tbody, body) {
    clear(tbody);
    if (!body.unmatched.length) {
      tbody.appendChild(el("tr", {}, el("td", { colspan: 5, class: "empty" }, "Nothing went unmatched.")));
      return;
    }
    for (const u of body.unmatched) {
      const select = intentSelect(body.intents[u.language]);
      const button = el("button", { type: "button" }, "Copy snippet");
      const note = el("span", { class: "note" });
      button.addEventListener("click", () => copySnippet(u, select.value, note));
      tbody.appendChild(
        el(
          "tr",
          { class: "unmatched", "data-count": u.count },
          el("td", { class: "num" }, u.count),
          el("td", {}, u.language),
          el("td", { class: "text" }, u.text),
          el("td", {}, select),
          el("td", {}, button, " ", note)
        )
      );
    }
  }

  async function copySnippet(u, intent, note) {
    note.className = "note";
    note.textContent = "";
    if (!intent) {
      note.textContent = "Choose an intent first.";
      return;
    }
    let s;
    try {
      s = await api("api/snippet", { language: u.language, intent: intent, text: u.text });
    } catch (error) {
      note.textContent = error.message;
      return;
    }
    let where = `Add to the phrases of ${s.intent} in ${s.file}:${s.line} by hand (they are shared with other intents there).`;
    if (s.insert_after) {
      where = `Paste below line ${s.insert_after} of ${s.file} (the phrases of ${s.intent}, line ${s.line}).`;
    } else if (s.insert_at) {
      where = `Type at line ${s.insert_at[0]}, column ${s.insert_at[1]} of ${s.file}, just before the "]" that closes the phrases of ${s.intent}.`;
    }
    const dup = s.duplicate_of ? ` Note: already a phrase of ${s.duplicate_of}.` : "";
    const text = s.snippet || s.block;
    $("snippet-where").textContent = where + dup;
    $("snippet-text").value = text;
    $("snippet-box").hidden = false;
    try {
      await navigator.clipboard.writeText(text);
      note.textContent = "Copied.";
      note.className = "note done";
    } catch (_) {
      // No clipboard API (plain http, or permission refused): select the text for Ctrl+C.
      const area = $("snippet-text");
      area.focus();
      area.select();
      let copied = false;
      try {
        copied = document.execCommand("copy");
      } catch (_) {
        copied = false;
      }
      note.textContent = copied ? "Copied." : "Press Ctrl+C to copy the selected snippet.";
    }
  }

  // ------------------------------------------------------------------------------------------
  // Loading

  async function load() {
    status("");
    const params = range();
    try {
      const [summary, calls, unmatched] = await Promise.all([
        api("api/summary", params),
        api("api/calls", Object.assign({ limit: 50 }, params)),
        api("api/unmatched", params),
      ]);
      lineZone = summary.tz;
      $("since").value = summary.since;
      $("until").value = summary.until;
      languages($("language"), summary.languages, summary.language);
      kpis($("kpis"), summary);
      legend($("legend-calls"), KINDS);
      callsChart($("chart-calls"), summary.series);
      legend($("legend-rates"), RATES.map(([key, , label]) => [key, label]));
      ratesChart($("chart-rates"), summary.series);
      barsChart($("chart-groups"), summary.transfers_by_group, "Transfers per group");
      barsChart($("chart-intents"), summary.intents, "Calls per intent");
      perIntentTable($("lookups").tBodies[0], summary.lookups, ["answered", "handed_over"], "No lookups in this period.");
      perIntentTable($("recalled").tBodies[0], summary.recalled, ["asked", "yes"], "No repeat callers recalled in this period.");
      callsTable($("calls").tBodies[0], calls.calls);
      unmatchedTable($("unmatched").tBodies[0], unmatched);
      // Grouping may first have to encode hundreds of sentences: the rest is drawn already.
      const groups = $("suggested").tBodies[0];
      clear(groups).appendChild(
        el("tr", {}, el("td", { colspan: 7, class: "empty" }, "Grouping what callers said…"))
      );
      try {
        groupsTable(groups, await api("api/suggested", params), unmatched.intents);
      } catch (error) {
        clear(groups).appendChild(
          el("tr", {}, el("td", { colspan: 7, class: "empty" }, "Could not group: " + error.message))
        );
      }
      document.body.dataset.loaded = "true";
    } catch (error) {
      status("Could not load the dashboard: " + error.message);
    }
  }

  const query = new URLSearchParams(window.location.search);
  for (const name of ["since", "until"]) {
    if (query.get(name)) $(name).value = query.get(name);
  }
  if (query.get("language")) {
    // not an option until the summary lists the languages: keep it for the first load
    $("language").append(el("option", { value: query.get("language") }, query.get("language")));
    $("language").value = query.get("language");
  }
  $("range").addEventListener("submit", (event) => {
    event.preventDefault();
    const url = new URL(window.location.href);
    for (const [name, value] of Object.entries(range())) url.searchParams.set(name, value);
    window.history.replaceState(null, "", url);
    load();
  });
  load();
})();
