"""The HTML, styles and script of the report page (:mod:`etwtools.report`); ``{{DATA}}`` is its JSON data.

Plain SVG drawn by the script below: a timeline of a few lanes of a few hundred bars needs no plotting
library, and the page stays small and works offline.
"""

PAGE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{TITLE}}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d232b;background:#f6f7f9}
header{background:#1f3b57;color:#fff;padding:14px 24px}
header h1{font-size:20px;margin:0 0 4px}
header .sub{opacity:.85;font-size:13px}
main{padding:8px 24px 40px;max-width:1400px}
section{background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:12px 16px;margin:14px 0}
h2{font-size:16px;margin:0 0 8px}
.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px}
.kv b{font-weight:600;color:#46525f}.kv span{white-space:pre-line}
.note{color:#8a5a00}
.pill{display:inline-block;border-radius:10px;padding:0 8px;margin-right:6px;font-size:12px;background:#e9eef4}
.pill.high{background:#d5f0dc}.pill.medium{background:#e6f0c8}.pill.low{background:#f7e7c6}.pill.none{background:#eceff3}
svg text{font:12px system-ui,sans-serif;fill:#1d232b}
svg .axis text{fill:#56606b;font-size:11px}
.syn{fill:#d9534f;fill-opacity:.16;stroke:#d9534f;stroke-opacity:.5}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #edf0f3;vertical-align:top;white-space:nowrap}
td.num,th.num{text-align:right}
th{background:#f1f4f7;position:sticky;top:0}
tr.row{cursor:pointer}tr.row:hover{background:#f3f8fd}tr.sel{background:#e3effb}
td.reason{white-space:normal;min-width:280px;color:#46525f}
.talkers h3{font-size:14px;margin:12px 0 4px}
#search{font-size:14px;padding:5px 8px;width:360px;border:1px solid #b9c3ce;border-radius:4px}
#evidence{white-space:pre-wrap;font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f8fafc;
 border:1px solid #dde2e8;border-radius:4px;padding:10px;min-height:3em;margin:8px 0 0}
.scroll{max-height:420px;overflow:auto;border:1px solid #edf0f3}
.legend span{margin-right:14px}
.muted{color:#6b7580}
</style></head>
<body>
<header><h1>{{TITLE}}</h1><div class="sub" id="sub"></div></header>
<main>
<section id="clock"><h2>Clock offset between capture and trace</h2><div class="kv" id="clock-kv"></div><div id="notes"></div></section>
<section id="timeline-section"><h2>Traffic by process</h2>
<div class="legend"><label><input type="radio" name="measure" value="packets" checked> packets</label>
<label><input type="radio" name="measure" value="bytes"> bytes</label>
<span class="muted" id="timeline-caption"></span></div>
<div id="timeline"></div></section>
<section class="talkers" id="talkers-section"><h2>Top talkers per process</h2><div id="talkers"></div></section>
<section id="frames-section"><h2>Frames and their evidence</h2>
<div><input id="search" type="search" placeholder="frame number, process, PID or address" autocomplete="off">
<span class="muted" id="search-count"></span></div>
<p class="muted" id="listed-note"></p>
<div class="scroll"><table id="frames"><thead><tr><th class="num">frame</th><th>time (UTC)</th><th>dir</th><th>proto</th>
<th>source</th><th>destination</th><th class="num">payload</th><th class="num">PID</th><th>process</th><th>confidence</th>
<th>method</th></tr></thead><tbody></tbody></table></div>
<h3 style="font-size:14px;margin:12px 0 0">Evidence of the chosen frame</h3>
<pre id="evidence" class="muted">Search for a frame number, or click a frame above.</pre>
</section>
</main>
<script id="report-data" type="application/json">{{DATA}}</script>
<script>
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("report-data").textContent);
  const SVGNS = "http://www.w3.org/2000/svg";
  const fmt = (n) => (n === null || n === undefined) ? "" : Number(n).toLocaleString("en-US");
  const el = (tag, attrs, text) => {
    const e = tag.startsWith("svg:") ? document.createElementNS(SVGNS, tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  };
  const bytes = (n) => n >= 1e9 ? (n / 1e9).toFixed(1) + " GB" : n >= 1e6 ? (n / 1e6).toFixed(1) + " MB" :
    n >= 1e4 ? (n / 1e3).toFixed(0) + " kB" : fmt(n) + " bytes";
  const iso = (ms) => new Date(ms).toISOString().replace("T", " ").replace("Z", "");
  const C = D.confidence;

  document.getElementById("sub").textContent = (D.inputs.length ? "inputs: " + D.inputs.join(", ") + " | " : "") +
    fmt(D.frames) +
    " frames: " + fmt(C.high) + " high, " + fmt(C.medium) + " medium, " + fmt(C.low) + " low, " + fmt(C.none) +
    " none | generated " + D.generated;

  // clock
  const kv = document.getElementById("clock-kv");
  const O = D.offset;
  const rows = O.source === "event logs" ? [["offsets (capture - log)", O.text],
                ["traced host", D.local.slice(0, 8).join(", ") || "unknown"]] :
               [["offset (capture - trace)", O.offset_s === null ? "none could be established" :
                 (O.offset_s >= 0 ? "+" : "") + O.offset_s.toFixed(6) + " s"],
                ["how", O.source || "-"], ["support", fmt(O.support) + " matching frame/event pair(s)" +
                 (O.support === 1 ? ": a single match, check it" : "")],
                ["drift", O.drift_ppm ? O.drift_ppm.toFixed(1) + " ppm" : "none significant"],
                ["tolerance", O.tolerance_s + " s"],
                ["traced host", (D.local.length ? D.local.slice(0, 8).join(", ") + (D.local.length > 8 ? " ..." : "") : "unknown") +
                 (D.local_source ? " (" + D.local_source + ")" : "")],
                ["in words", O.text]];
  for (const [k, v] of rows) { kv.appendChild(el("b", {}, k)); kv.appendChild(el("span", {}, v)); }
  const notes = document.getElementById("notes");
  for (const n of D.notes) notes.appendChild(el("div", {class: "note"}, "note: " + n));

  // timeline
  const T = D.timeline;
  const palette = ["#2f6fad", "#e08a1e", "#3a9a5b", "#b5443f", "#7a5ab8", "#3c9bb0", "#b8659a", "#8c7a2b",
                   "#4f6d8a", "#c0622b"];
  function drawTimeline(measure) {
    const box = document.getElementById("timeline");
    box.textContent = "";
    if (!T.lanes.length || T.t0_ms === null) { box.appendChild(el("p", {class: "muted"}, "No frame has a time.")); return; }
    const labelW = 260, plotW = 1000, laneH = 34, gap = 6, top = 8, axisH = 26;
    const H = top + T.lanes.length * (laneH + gap) + axisH;
    const svg = el("svg:svg", {width: labelW + plotW + 20, height: H, viewBox: "0 0 " + (labelW + plotW + 20) + " " + H,
                                id: "timeline-svg", role: "img"});
    const bw = plotW / T.bins, t0 = T.t0_ms, span = T.bin_ms * T.bins;
    const x = (ms) => labelW + Math.max(0, Math.min(plotW, (ms - t0) / span * plotW));
    for (const s of D.syn) {
      const r = el("svg:rect", {class: "syn", x: x(s.start_ms), y: top - 4, width: Math.max(2, x(s.end_ms) - x(s.start_ms)),
                                height: T.lanes.length * (laneH + gap) + 4});
      r.appendChild(el("svg:title", {}, "SYN-attack resistance mode " + iso(s.start_ms) + " to " + iso(s.end_ms) +
                       (s.open_at_end ? " (still on at the end of the trace)" : "")));
      svg.appendChild(r);
    }
    T.lanes.forEach((L, i) => {
      const y = top + i * (laneH + gap);
      const g = el("svg:g", {class: "lane", "data-lane": L.lane, "data-packets": L.packets});
      const na = L.pid === null;
      const color = na ? "#9aa5b1" : palette[i % palette.length];
      g.appendChild(el("svg:rect", {x: labelW, y: y, width: plotW, height: laneH, fill: "#f4f6f8"}));
      const vals = measure === "bytes" ? L.bins_bytes : L.bins_packets;
      const peak = Math.max(1, ...vals);
      vals.forEach((v, k) => {
        if (!v) return;
        const h = Math.max(1.5, v / peak * (laneH - 2));
        g.appendChild(el("svg:rect", {x: labelW + k * bw, y: y + laneH - h, width: Math.max(1, bw - 0.3), height: h, fill: color}));
      });
      const label = el("svg:text", {x: labelW - 8, y: y + 14, "text-anchor": "end"}, L.lane);
      g.appendChild(label);
      g.appendChild(el("svg:text", {x: labelW - 8, y: y + 28, "text-anchor": "end", class: "muted", fill: "#6b7580"},
                       fmt(L.packets) + " packets, " + bytes(L.bytes)));
      g.appendChild(el("svg:title", {}, L.lane + (L.services ? " — services: " + L.services : "") + "; peak " +
                       fmt(peak) + (measure === "bytes" ? " bytes" : " packets") + " per bin"));
      svg.appendChild(g);
    });
    const ax = el("svg:g", {class: "axis"});
    const yA = top + T.lanes.length * (laneH + gap) + 14;
    for (let k = 0; k <= 4; k++) {
      const ms = t0 + span * k / 4;
      ax.appendChild(el("svg:text", {x: labelW + plotW * k / 4, y: yA, "text-anchor": k === 0 ? "start" : k === 4 ? "end" : "middle"},
                        iso(ms).slice(0, 23)));
    }
    svg.appendChild(ax);
    box.appendChild(svg);
    document.getElementById("timeline-caption").textContent = " one lane per process (high/medium confidence); " +
      "bins of " + (T.bin_ms >= 1000 ? (T.bin_ms / 1000).toFixed(3) + " s" : T.bin_ms >= 1 ? T.bin_ms.toFixed(3) + " ms" :
      (T.bin_ms * 1000).toFixed(3) + " µs") +
      ", each lane scaled to its own peak" + (D.syn.length ? "; shaded: SYN-attack resistance mode (" + D.syn.length +
      " interval" + (D.syn.length > 1 ? "s" : "") + ")" : "");
  }
  drawTimeline("packets");
  for (const r of document.querySelectorAll("input[name=measure]")) r.addEventListener("change", (e) => drawTimeline(e.target.value));

  // top talkers
  const tk = document.getElementById("talkers");
  for (const L of T.lanes) {
    const rowsT = D.talkers[L.lane] || [];
    if (!rowsT.length) continue;
    tk.appendChild(el("h3", {}, L.lane + (L.services ? " — " + L.services : "")));
    const t = el("table", {class: "talkers-table", "data-lane": L.lane});
    const h = el("tr");
    for (const c of ["remote address", "DNS name", "remote ports", "protocol", "packets", "bytes", "first (UTC)", "last (UTC)"])
      h.appendChild(el("th", {class: (c === "packets" || c === "bytes") ? "num" : ""}, c));
    t.appendChild(h);
    for (const r of rowsT) {
      const tr = el("tr");
      tr.appendChild(el("td", {}, r.remote));
      tr.appendChild(el("td", {}, r.name || ""));
      tr.appendChild(el("td", {}, (r.ports || []).join(", ")));
      tr.appendChild(el("td", {}, (r.protocols || []).join(", ")));
      tr.appendChild(el("td", {class: "num"}, fmt(r.packets)));
      tr.appendChild(el("td", {class: "num"}, fmt(r.bytes)));
      tr.appendChild(el("td", {}, r.first));
      tr.appendChild(el("td", {}, r.last));
      t.appendChild(tr);
    }
    tk.appendChild(t);
  }

  // frames: search and evidence
  const F = D.table, N = F.frame.length, SHOW = 300;
  document.getElementById("listed-note").textContent = D.listed === D.frames ?
    "All " + fmt(D.frames) + " frames are listed." :
    fmt(D.listed) + " of " + fmt(D.frames) + " frames are listed (an equal share of every lane, its most telling " +
    "frames first: strongest evidence, then TCP/UDP/ICMP); the whole table: etwtools attribute ... --format csv. The full chain of evidence is embedded for " +
    fmt(Object.keys(D.evidence).length) + " of them; for any frame: etwtools attribute ... --frame N.";
  const body = document.querySelector("#frames tbody");
  const evidence = document.getElementById("evidence");
  let selected = null;
  function show(i) {
    if (selected) selected.classList.remove("sel");
    const n = F.frame[i];
    const tr = body.querySelector('tr[data-frame="' + n + '"]');
    if (tr) { tr.classList.add("sel"); selected = tr; }
    evidence.classList.remove("muted");
    evidence.dataset.frame = n;
    const text = D.evidence[String(n)];
    evidence.textContent = text !== undefined ? text :
      "Frame " + n + ": " + (F.pid[i] === null ? "not attributed" : "PID " + F.pid[i] + " " + (F.process[i] || "(name unknown)")) +
      ", confidence " + F.confidence[i] + " (method " + F.method[i] + ").\nWhy: " + F.reason[i] +
      ".\n\nThe whole chain of evidence is not embedded for this frame: etwtools attribute ... --frame " + n;
  }
  function render(idx) {
    body.textContent = "";
    for (const i of idx.slice(0, SHOW)) {
      const tr = el("tr", {class: "row", "data-frame": F.frame[i]});
      const cells = [[F.frame[i], "num"], [F.time[i]], [F.direction[i]], [F.protocol[i]],
                     [F.src_addr[i] + (F.src_port[i] !== null ? ":" + F.src_port[i] : "")],
                     [F.dst_addr[i] + (F.dst_port[i] !== null ? ":" + F.dst_port[i] : "")],
                     [F.payload_len[i], "num"], [F.pid[i], "num"], [F.process[i]], [F.confidence[i]], [F.method[i]]];
      for (const [v, cls] of cells) tr.appendChild(el("td", cls ? {class: cls} : {}, v === null || v === undefined ? "" : String(v)));
      tr.addEventListener("click", () => show(i));
      body.appendChild(tr);
    }
    document.getElementById("search-count").textContent = fmt(idx.length) + " frame" + (idx.length === 1 ? "" : "s") +
      (idx.length > SHOW ? " (the first " + SHOW + " shown)" : "");
  }
  const all = Array.from({length: N}, (_, i) => i);
  function search(q) {
    q = q.trim().toLowerCase();
    if (!q) { render(all); return; }
    let idx;
    if (/^\d+$/.test(q)) {
      const n = Number(q);
      idx = all.filter((i) => F.frame[i] === n);
      if (!idx.length) idx = all.filter((i) => F.pid[i] === n || String(F.src_port[i]) === q || String(F.dst_port[i]) === q);
    } else {
      idx = all.filter((i) => [F.process[i], F.src_addr[i], F.dst_addr[i], F.lane[i], F.confidence[i], F.method[i]]
                               .some((v) => v !== null && String(v).toLowerCase().includes(q)));
    }
    render(idx);
    if (idx.length === 1 || (idx.length && /^\d+$/.test(q) && F.frame[idx[0]] === Number(q))) show(idx[0]);
    else if (/^\d+$/.test(q) && !idx.length) {
      evidence.classList.remove("muted");
      evidence.dataset.frame = "";
      evidence.textContent = "Frame " + q + " is not listed in this page (" + fmt(D.listed) + " of " + fmt(D.frames) +
        " frames are); etwtools attribute ... --frame " + q + " explains any frame.";
    }
  }
  const box = document.getElementById("search");
  box.addEventListener("input", () => search(box.value));
  render(all);
  // a link can carry a search: report.html#search=105540
  const m = /[#&]search=([^&]*)/.exec(location.hash);
  if (m) { box.value = decodeURIComponent(m[1]); box.dispatchEvent(new Event("input")); }
})();
</script>
</body></html>
"""
