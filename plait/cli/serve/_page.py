"""The live page of ``plait serve``: plain HTML, CSS and JavaScript (no CDN, no build step).

It lists the served workflows with a form for their inputs, the runs, and one
run at a time: its DAG and timeline, drawn from the run's event stream as it
arrives, pending approvals with approve and reject buttons, the answer and a
link to the HTML report. Every value shown goes in as text, never as markup.
"""

from __future__ import annotations

__all__ = ["PAGE"]

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>plait serve</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#243b53;color:#fff;padding:8px 16px}
header h1{font-size:18px;margin:0}
main{display:grid;grid-template-columns:320px 1fr;gap:16px;padding:16px}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px;margin-bottom:12px}
h2{font-size:15px;margin:0 0 8px}
form{margin-bottom:12px;border-top:1px solid #eee;padding-top:8px}
label{display:block;font-size:12px;color:#555;margin-top:4px}
input[type=text]{width:100%;box-sizing:border-box;padding:3px}
button{margin-top:6px;cursor:pointer}
#runs div{cursor:pointer;padding:2px 4px;border-radius:3px;font-family:monospace;font-size:12px}
#runs div:hover{background:#eef}
.dag{display:flex;gap:18px;align-items:flex-start;overflow-x:auto;padding:6px 0}
.col{display:flex;flex-direction:column;gap:8px}
.task{border:2px solid #999;border-radius:6px;padding:4px 8px;min-width:90px;background:#fff}
.task small{display:block;color:#666}
.task[data-state=running]{border-color:#1f77b4;background:#e8f1fb}
.task[data-state=done]{border-color:#2ca02c;background:#eaf7ea}
.task[data-state=restored]{border-color:#2ca02c;background:#f3faf3;border-style:dashed}
.task[data-state=failed]{border-color:#d62728;background:#fdeaea}
.task[data-state=skipped]{border-color:#aaa;background:#f2f2f2;color:#777}
.task[data-state=awaiting]{border-color:#ff7f0e;background:#fff4e5}
#timeline{font-family:monospace;font-size:12px;max-height:260px;overflow-y:auto;margin:0}
.approval{border:1px solid #ff7f0e;border-radius:4px;padding:6px;margin:6px 0}
.approval pre,#answer{white-space:pre-wrap;background:#f6f6f6;padding:6px;margin:4px 0}
.error{color:#b00}
</style></head>
<body><header><h1>plait serve</h1></header>
<main>
<div>
<section><h2>Workflows</h2><div id="workflows"></div></section>
<section><h2>Runs</h2><div id="runs"></div></section>
</div>
<div>
<section id="run" hidden>
<h2 id="run-title"></h2>
<div id="run-status"></div>
<div id="run-actions"></div>
<div class="dag" id="dag"></div>
<div id="approvals"></div>
<h2>Answer</h2><div id="answer"></div>
<h2>Timeline</h2><ol id="timeline"></ol>
</section>
<div id="message" class="error"></div>
</div>
</main>
<script>
"use strict";
const token = new URLSearchParams(location.search).get("token");
const withToken = p => token ? p + (p.includes("?") ? "&" : "?") + "token=" +
  encodeURIComponent(token) : p;
let workflows = [], current = null, source = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}
function say(text) { document.getElementById("message").textContent = text || ""; }

async function api(path, options) {
  const opts = Object.assign({headers: {}}, options || {});
  if (token) opts.headers.Authorization = "Bearer " + token;
  if (opts.json !== undefined) {
    opts.method = opts.method || "POST";
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(opts.json);
  }
  const response = await fetch(path, opts);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function drawWorkflows() {
  const box = document.getElementById("workflows");
  box.replaceChildren();
  for (const wf of workflows) {
    const form = el("form", {"data-workflow": wf.name});
    form.append(el("b", {}, wf.name), " ", el("small", {}, wf.kind + " \u00b7 " + wf.file));
    for (const [name, spec] of Object.entries(wf.inputs)) {
      const field = el("input", {type: "text", name: name});
      if (spec.default !== null && spec.default !== undefined) field.value = String(spec.default);
      form.append(el("label", {}, name + " (" + spec.type + ")", field));
    }
    form.append(el("button", {type: "submit"}, "Run"));
    form.addEventListener("submit", async ev => {
      ev.preventDefault();
      const inputs = {};
      for (const field of form.querySelectorAll("input[name]")) inputs[field.name] = field.value;
      try {
        const run = await api("/runs", {json: {workflow: wf.name, inputs: inputs}});
        say("");
        await drawRuns();
        openRun(run.run_id);
      } catch (e) { say(e.message); }
    });
    box.append(form);
  }
}

async function drawRuns() {
  const runs = await api("/runs");
  const box = document.getElementById("runs");
  box.replaceChildren();
  for (const run of runs.slice(0, 50)) {
    const row = el("div", {"data-run": run.run_id},
      run.run_id + "  " + (run.live ? "live " : "") + run.status + "  " +
      (run.workflow_name || run.workflow));
    row.addEventListener("click", () => openRun(run.run_id));
    box.append(row);
  }
}

function layers(steps) {
  const depth = {};
  const byId = Object.fromEntries(steps.map(s => [s.id, s]));
  const visit = id => {
    if (depth[id] !== undefined) return depth[id];
    depth[id] = 0;
    const deps = (byId[id] ? byId[id].depends_on : []).filter(d => byId[d]);
    depth[id] = deps.length ? 1 + Math.max(...deps.map(visit)) : 0;
    return depth[id];
  };
  steps.forEach(s => visit(s.id));
  const cols = [];
  for (const s of steps) (cols[depth[s.id]] = cols[depth[s.id]] || []).push(s);
  return cols;
}

function taskBox(id, tool) {
  let box = document.querySelector('.task[data-task="' + CSS.escape(id) + '"]');
  if (box) return box;
  box = el("div", {"class": "task", "data-task": id, "data-state": "waiting"},
    el("b", {}, id), el("small", {"class": "tool"}, tool || ""),
    el("small", {"class": "state"}, "waiting"));
  let col = document.querySelector("#dag .col.extra");
  if (!col) { col = el("div", {"class": "col extra"}); document.getElementById("dag").append(col); }
  col.append(box);
  return box;
}

function setState(id, tool, state, detail) {
  const box = taskBox(id, tool);
  box.setAttribute("data-state", state);
  box.querySelector(".state").textContent = state + (detail ? ": " + detail : "");
}

const TASK_STATES = {planned: "waiting", started: "running", retrying: "running",
  finished: "done", deduplicated: "done", restored: "restored", failed: "failed",
  skipped: "skipped", awaiting_approval: "awaiting"};

function onEvent(run, ev) {
  const t0 = run.started_at || ev.at;
  const when = "+" + Math.max(0, ev.at - t0).toFixed(2) + "s ";
  let line = null;
  if (ev.type === "task") {
    const detail = ev.kind === "finished" && ev.duration_s != null ?
      ev.duration_s.toFixed(2) + "s" : ev.error;
    setState(ev.task_id, ev.tool, TASK_STATES[ev.kind] || ev.kind, detail);
    line = "task " + ev.task_id + " " + ev.kind + (ev.error ? ": " + ev.error : "");
  } else if (ev.type === "model_call") {
    line = "model " + (ev.agent || "") + " on " + ev.backend + ": " + ev.prompt_tokens +
      " prompt (" + ev.cached_prompt_tokens + " cached), " + ev.completion_tokens + " generated";
  } else if (ev.type === "team_decision") {
    line = "team " + ev.by + " " + ev.kind + " " + ev.subject + ": " + ev.detail;
  } else if (ev.type === "approval") {
    if (ev.state === "pending") {
      setState(ev.task_id, ev.tool, "awaiting");
      addApproval(run.run_id, ev);
    } else {
      const card = document.querySelector('.approval[data-task="' + CSS.escape(ev.task_id) + '"]');
      if (card) card.remove();
    }
    line = "approval " + ev.task_id + " " + (ev.state === "pending" ? "pending" : ev.action);
  } else if (ev.type === "answer") {
    const a = ev.answer;
    document.getElementById("answer").textContent =
      typeof a === "string" ? a : JSON.stringify(a, null, 2);
    line = "answer";
  } else if (ev.type === "run") {
    // Approvals asked for before this point belong to an earlier attempt (before a resume).
    if (ev.status === "queued") document.getElementById("approvals").replaceChildren();
    document.getElementById("run-status").textContent =
      ev.status + (ev.error ? ": " + ev.error : "");
    document.getElementById("run").setAttribute("data-status", ev.status);
    line = "run " + ev.status + (ev.error ? ": " + ev.error : "");
    if (!["queued", "running"].includes(ev.status)) {
      drawActions(run.run_id, ev.status);
      drawRuns();
    }
  }
  if (line) document.getElementById("timeline").append(el("li", {}, when + line));
}

function addApproval(runId, ev) {
  const box = document.getElementById("approvals");
  const card = el("div", {"class": "approval", "data-task": ev.task_id},
    el("b", {}, "Step " + ev.task_id + " (" + ev.tool + ") awaits approval"),
    el("pre", {}, JSON.stringify(ev.args, null, 2)));
  const reason = el("input", {type: "text", placeholder: "reason (for a rejection)"});
  const decide = async body => {
    try { await api("/runs/" + runId + "/approvals/" + encodeURIComponent(ev.task_id),
      {json: body}); say(""); } catch (e) { say(e.message); }
  };
  const yes = el("button", {"data-approve": ev.task_id}, "Approve");
  const no = el("button", {"data-reject": ev.task_id}, "Reject");
  yes.addEventListener("click", () => decide({action: "approve"}));
  no.addEventListener("click", () => decide({action: "reject", reason: reason.value || null}));
  card.append(reason, yes, " ", no);
  box.append(card);
}

function drawActions(runId, status) {
  const box = document.getElementById("run-actions");
  box.replaceChildren(el("a", {href: withToken("/runs/" + runId + "/report"), target: "_blank"},
    "HTML report"));
  const button = (label, path) => {
    const b = el("button", {}, label);
    b.addEventListener("click", async () => {
      try { await api("/runs/" + runId + "/" + path, {method: "POST"}); openRun(runId); }
      catch (e) { say(e.message); }
    });
    box.append(" ", b);
  };
  if (status === "queued" || status === "running") button("Cancel", "cancel");
  else if (status !== "done") button("Resume", "resume");
}

async function openRun(runId) {
  if (source) source.close();
  let run;
  try { run = await api("/runs/" + encodeURIComponent(runId)); }
  catch (e) { say(e.message); return; }
  current = run;
  history.replaceState(null, "", withToken("/runs/" + runId + "/live"));
  document.getElementById("run").hidden = false;
  document.getElementById("run").setAttribute("data-run", runId);
  document.getElementById("run-title").textContent =
    "Run " + runId + " \u00b7 " + (run.workflow_name || run.workflow);
  document.getElementById("run-status").textContent = run.status;
  for (const id of ["approvals", "answer", "timeline", "dag"])
    document.getElementById(id).replaceChildren();
  const wf = workflows.find(w => w.name === run.workflow_name);
  for (const col of layers(wf ? wf.steps : [])) {
    const column = el("div", {"class": "col"});
    document.getElementById("dag").append(column);
    for (const s of col) {
      const box = taskBox(s.id, s.tool + (s.requires_approval ? " \u00b7 approval" : ""));
      column.append(box);
    }
  }
  drawActions(runId, run.live ? "running" : run.status);
  source = new EventSource(withToken("/runs/" + encodeURIComponent(runId) + "/events"));
  source.onmessage = null;
  for (const type of ["run", "task", "model_call", "team_decision", "approval", "answer"])
    source.addEventListener(type, m => onEvent(run, JSON.parse(m.data)));
  source.onerror = () => { source.close(); };
}

(async () => {
  try {
    workflows = await api("/workflows");
    drawWorkflows();
    await drawRuns();
    const m = location.pathname.match(/^\\/runs\\/([^/]+)\\/live$/);
    if (m) openRun(decodeURIComponent(m[1]));
  } catch (e) { say(e.message); }
})();
</script>
</body></html>
"""
