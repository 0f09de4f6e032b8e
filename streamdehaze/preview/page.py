"""The browser preview page served at ``/`` (self-contained: no external scripts, styles or fonts).

The page passes its own query string (``?token=...``) on to the stream, ``/stats`` and
``/control`` requests, polls ``/stats`` twice a second and posts the buttons' actions as JSON
(the strength slider posts ``{"action": "strength", "value": 0..1}`` when released).
The picture sits at the top-left corner at its natural size (scaled down only to fit the width).
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>streamdehaze preview</title>
<style>
  html, body { margin: 0; background: #111; color: #eee; font: 14px system-ui, sans-serif; }
  #view { display: block; max-width: 100%; background: #000; min-height: 120px; }
  #bar, #controls, #message { padding: 6px 10px; }
  #bar span { margin-right: 16px; white-space: nowrap; }
  #bar b { color: #7fd; font-variant-numeric: tabular-nums; }
  button { background: #333; color: #eee; border: 1px solid #666; border-radius: 4px; padding: 5px 12px;
           margin-right: 6px; cursor: pointer; }
  button:hover { background: #444; }
  button.on { border-color: #7fd; }
  #message { color: #aaa; min-height: 1.2em; }
  #strength-box { white-space: nowrap; margin-left: 6px; }
  #strength { vertical-align: middle; width: 140px; }
  .stale b { color: #f88; }
</style>
</head>
<body>
<img id="view" alt="original (left) and dehazed (right)">
<div id="bar">
  <span>frames <b id="frames">0</b></span>
  <span>fps <b id="fps">-</b></span>
  <span>model <b id="model_fps">-</b> fps</span>
  <span>latency <b id="latency_ms">-</b> ms</span>
  <span>dropped <b id="dropped">0</b></span>
  <span>viewers <b id="clients">0</b></span>
  <span>updates <b id="updates">0</b></span>
  <span id="state"></span>
</div>
<div id="controls">
  <button data-action="pause" id="btn-pause">Pause</button>
  <button data-action="snapshot">Snapshot</button>
  <button data-action="dehaze" id="btn-dehaze">Dehazing</button>
  <button data-action="temporal" id="btn-temporal">Temporal smoothing</button>
  <span id="strength-box"><label for="strength">Strength</label>
    <input type="range" id="strength" min="0" max="1" step="0.05" value="1">
    <b id="strength_value">1.00</b></span>
  <button data-action="view" id="btn-view">View: side by side</button>
  <button data-action="divider_left">&#9664; divider</button>
  <button data-action="divider_right">divider &#9654;</button>
  <button data-action="quit">Stop</button>
</div>
<div id="message"></div>
<script>
"use strict";
const query = window.location.search;  // carries ?token= to every request
const $ = (id) => document.getElementById(id);
$("view").src = "stream.mjpg" + query;
let updates = 0;

function show(s) {
  for (const key of ["frames", "fps", "model_fps", "latency_ms", "dropped", "clients"]) {
    const v = s[key];
    $(key).textContent = (v === null || v === undefined) ? "-" : String(v);
  }
  updates += 1;
  $("updates").textContent = String(updates);
  $("btn-pause").textContent = s.paused ? "Resume" : "Pause";
  $("btn-dehaze").classList.toggle("on", !!s.dehaze);
  $("btn-temporal").classList.toggle("on", !!s.temporal);
  $("btn-temporal").disabled = s.temporal_available === false;
  $("btn-view").textContent = "View: " + (s.view === "split" ? "split" : "side by side");
  if (typeof s.strength === "number" && !dragging) {
    $("strength").value = String(s.strength);
    $("strength_value").textContent = s.strength.toFixed(2);
  }
  $("strength").disabled = s.strength_available === false;
  $("state").textContent = s.finished ? "stream ended" : (s.paused ? "paused" : "");
  document.body.classList.remove("stale");
}

async function poll() {
  try {
    const r = await fetch("stats" + query, {cache: "no-store"});
    if (r.ok) show(await r.json());
    else $("message").textContent = "stats: HTTP " + r.status;
  } catch (e) {
    document.body.classList.add("stale");
  }
}

let dragging = false;  // the slider shows the user's value while it is moved

async function control(action, value) {
  try {
    const body = value === undefined ? {action} : {action, value};
    const r = await fetch("control" + query, {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
    });
    const data = await r.json();
    $("message").textContent = data.snapshot ? "saved " + data.snapshot.join(", ") : (data.error || "");
    poll();
  } catch (e) {
    $("message").textContent = "control failed: " + e;
  }
}

for (const b of document.querySelectorAll("button[data-action]")) {
  b.addEventListener("click", () => control(b.dataset.action));
}
$("strength").addEventListener("input", () => {
  dragging = true;
  $("strength_value").textContent = Number($("strength").value).toFixed(2);
});
$("strength").addEventListener("change", () => {  // on release: one request, not one per pixel moved
  dragging = false;
  control("strength", Number($("strength").value));
});
poll();
setInterval(poll, 500);
</script>
</body>
</html>
"""
