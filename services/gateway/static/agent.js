// The agent's page (#/agents/<id>, so it can be linked and reloaded): what it runs on and
// spends, its conversation (paged), its diff against the base, each gate's output and its
// timeline (the trace when the gateway has one, and its events), with the list's Kill.
// Live from the same feed as the list: app.js hands every event to pageEvent().
// Shares app.js's globals (state, $, el, api, kill, describe, uptime, FINAL).
"use strict";

const PAGE_SIZE = 50;
const AGENT_HASH = /^#\/agents\/([A-Za-z0-9_-]{1,64})$/;
const page = { agentId: null, events: [], seqs: new Set(), conversation: { offset: 0, total: 0, follow: true }, traced: false, trace: null, timers: new Map() };

// ---- routing -------------------------------------------------------------------

function route() {
  if (!state.token) return;
  const match = AGENT_HASH.exec(location.hash);
  const agentId = match ? match[1] : null;
  $("board").hidden = agentId !== null;
  $("agent-page").hidden = agentId === null;
  if (agentId === null) {
    page.agentId = null;
    document.title = "Mosaic Orchestrator";
    return;
  }
  if (page.agentId !== agentId) openPage(agentId);
}

function agentLink(agentId) {
  return `#/agents/${encodeURIComponent(agentId)}`;
}

async function openPage(agentId) {
  for (const timer of page.timers.values()) clearTimeout(timer);
  Object.assign(page, { agentId, events: [], seqs: new Set(), conversation: { offset: 0, total: 0, follow: true }, traced: false, trace: null, settled: false, timers: new Map() });
  document.title = `Agent ${agentId} · Mosaic Orchestrator`;
  for (const id of ["conversation", "diff-files", "gate-runs", "timeline", "page-facts"]) $(id).replaceChildren();
  for (const id of ["diff-patch", "diff-source", "timeline-source", "conversation-position", "page-task"]) $(id).textContent = "";
  $("page-title").textContent = agentId;
  pageError("");
  window.scrollTo(0, 0);
  try {
    state.agents.set(agentId, await api("GET", `/agents/${encodeURIComponent(agentId)}/status`));
  } catch (error) {
    if (page.agentId !== agentId) return;
    pageError(error.status === 404 ? `No agent ${agentId}.` : `Could not load the agent: ${error.message}`);
    $("page-state").hidden = true;
    $("page-kill").hidden = true;
    return;
  }
  if (page.agentId !== agentId) return;
  renderAgentPage();
  await Promise.all([loadConversation(), loadDiff(), loadGates(), loadTimeline()]);
}

function pageError(message) {
  $("page-error").textContent = message;
  $("page-error").hidden = !message;
}

function path(what, query = "") {
  return `/agents/${encodeURIComponent(page.agentId)}/${what}${query}`;
}

// Run fn once after `ms`, however many times this is asked meanwhile.
function soon(key, ms, fn) {
  if (page.timers.has(key)) return;
  page.timers.set(key, setTimeout(() => { page.timers.delete(key); fn(); }, ms));
}

// ---- head and facts ------------------------------------------------------------

function renderAgentPage() {
  const agent = page.agentId && state.agents.get(page.agentId);
  if (!agent) return;
  const badge = $("page-state");
  badge.hidden = false;
  badge.dataset.state = agent.state;
  badge.textContent = agent.state;
  $("page-task").textContent = [`task ${agent.taskId}`, agent.agentType, `task ${agent.taskState}`].filter(Boolean).join(" · ");
  const button = $("page-kill");
  const live = !FINAL.has(agent.state);
  button.hidden = !live;
  if (!live) { button.disabled = false; button.textContent = "Kill"; }
  $("page-facts").replaceChildren(...facts(agent).flatMap(([name, value, attrs]) =>
    [el("dt", { text: name }), el("dd", { ...(attrs || {}), text: value })]));
}

function facts(agent) {
  const rows = [];
  const model = agent.model && agent.model !== agent.provider ? `${agent.provider} · ${agent.model}` : agent.provider;
  rows.push(["Provider", model || "not started"]);
  rows.push(["Sandbox", agent.sandbox ? (agent.unsafe ? `${agent.sandbox} · UNSAFE (no sandbox)` : agent.sandbox) : "not started",
    { class: "sandbox-fact", "data-unsafe": String(Boolean(agent.unsafe)) }]);
  rows.push(["Host", agent.host || "not started", { class: "host-fact mono" }]);
  rows.push(["Environment", agent.environment || "not started"]);
  if (agent.spend) rows.push(["Spend", spendText(agent.spend), { class: "spend" }]);
  rows.push(["Progress", `${agent.turns || 0} turns · ${(agent.tokensUsed || 0).toLocaleString()} tokens${agent.lastTool ? ` · last tool ${agent.lastTool}` : ""}`]);
  rows.push(["Base", `${agent.repository} @ ${agent.branch}`, { class: "mono" }]);
  const branch = agent.pushedBranch || agent.agentBranch;
  if (branch) rows.push(["Branch", agent.pushedCommit ? `${branch} at ${agent.pushedCommit.slice(0, 12)}` : branch, { class: "mono" }]);
  rows.push(["Time", `${agent.startedAt ? `started ${new Date(agent.startedAt).toLocaleString()}` : `queued ${new Date(agent.createdAt).toLocaleString()}`} · ${uptime(agent)}`]);
  if (agent.attempts > 1 || (agent.attemptReasons || []).length) rows.push(["Attempts", [`${agent.attempts}`, ...(agent.attemptReasons || [])].join(" · ")]);
  if (agent.error) rows.push(["Error", agent.error, { class: "error" }]);
  return rows;
}

function spendText(spend) {
  const usd = typeof spend.usd === "number" ? `$${spend.usd.toFixed(4)}` : "";
  const tokens = [["in", spend.inputTokens], ["out", spend.outputTokens], ["cache write", spend.cacheWriteTokens], ["cache read", spend.cacheReadTokens]]
    .filter(([, n]) => typeof n === "number").map(([what, n]) => `${n.toLocaleString()} ${what}`);
  return [usd, ...tokens].filter(Boolean).join(" · ") || "–";
}

// ---- conversation --------------------------------------------------------------

async function loadConversation(offset) {
  const agentId = page.agentId;
  const conv = page.conversation;
  if (offset !== undefined) conv.offset = Math.max(0, offset);
  try {
    let body = await api("GET", path("conversation", `?offset=${conv.offset}&limit=${PAGE_SIZE}`));
    if (conv.follow) {  // the newest page, wherever it now starts
      const last = Math.max(0, Math.floor((body.total - 1) / PAGE_SIZE) * PAGE_SIZE);
      if (last !== conv.offset) body = await api("GET", path("conversation", `?offset=${last}&limit=${PAGE_SIZE}`));
    }
    if (page.agentId !== agentId) return;
    conv.offset = body.offset;
    conv.total = body.total;
    renderConversation(body);
  } catch (error) {
    if (page.agentId === agentId) $("conversation-position").textContent = `Could not load the conversation: ${error.message}`;
  }
}

const KIND_LABEL = { task: "task", model: "model", tool_call: "tool call", tool_result: "result", notice: "notice" };

function renderConversation(body) {
  const list = $("conversation");
  list.replaceChildren(...body.entries.map((entry) => {
    const head = el("div", { class: "entry-head" },
      el("span", { class: "entry-kind", text: KIND_LABEL[entry.kind] || entry.kind }),
      el("span", { class: "mono", text: entry.tool || "" }),
      el("span", { class: "sub inline", text: [entry.turn ? `turn ${entry.turn}` : "", entry.attempt ? `attempt ${entry.attempt}` : "", entry.isError ? "error" : "", entry.truncated ? "cut" : ""].filter(Boolean).join(" · ") }));
    return el("li", { class: "entry", "data-kind": entry.kind, "data-error": String(entry.isError) }, head, el("pre", { text: pretty(entry) }));
  }));
  const first = body.total ? body.offset + 1 : 0;
  const last = body.offset + body.entries.length;
  const dropped = body.dropped ? ` (${body.dropped} older entries no longer kept)` : "";
  $("conversation-position").textContent = body.total ? `${first}–${last} of ${body.total}${dropped}` : "Nothing said yet.";
  $("conversation-older").disabled = body.offset === 0;
  $("conversation-newer").disabled = last >= body.total;
}

function pretty(entry) {
  if (entry.kind !== "tool_call") return entry.text;
  try { return JSON.stringify(JSON.parse(entry.text), null, 2); } catch (_) { return entry.text; }
}

function pageConversation(step) {
  const conv = page.conversation;
  const offset = conv.offset + step * PAGE_SIZE;
  conv.follow = offset + PAGE_SIZE >= conv.total;
  loadConversation(offset);
}

// ---- diff ----------------------------------------------------------------------

async function loadDiff() {
  const agentId = page.agentId;
  let diff;
  try {
    diff = await api("GET", path("diff"));
  } catch (error) {
    if (page.agentId !== agentId) return;
    $("diff-source").textContent = "";
    $("diff-files").replaceChildren(el("li", { class: "empty", text: error.status === 404 ? `No diff: ${error.message}` : `Could not load the diff: ${error.message}` }));
    $("diff-patch").replaceChildren();
    return;
  }
  if (page.agentId !== agentId) return;
  const head = (diff.headCommit || "").slice(0, 12);
  $("diff-source").dataset.source = diff.source;
  $("diff-source").textContent = diff.source === "pushed"
    ? `pushed commit ${head}${diff.branch ? ` on ${diff.branch}` : ""} against ${diff.baseBranch} at ${(diff.baseCommit || "").slice(0, 12)}`
    : `the agent's repository as it is now (on ${head}, uncommitted work included) against ${diff.baseBranch} at ${(diff.baseCommit || "").slice(0, 12)}`;
  const files = diff.files.map((file) => el("li", { "data-binary": String(file.binary) },
    el("span", { class: "mono", text: file.oldPath ? `${file.oldPath} → ${file.path}` : file.path }),
    el("span", { class: "sub inline", text: file.binary ? "binary, not shown" : `+${file.added} −${file.deleted}` })));
  if (!files.length) files.push(el("li", { class: "empty", text: "No changes against the base." }));
  if (diff.truncated) files.push(el("li", { class: "sub", text: "The diff is cut: too large to show whole." }));
  $("diff-files").replaceChildren(...files);
  $("diff-patch").replaceChildren(...diff.patch.split("\n").map((line) =>
    el("span", { class: `line ${lineClass(line)}`, text: `${line}\n` })));
}

function lineClass(line) {
  if (line.startsWith("+++") || line.startsWith("---") || line.startsWith("diff ") || line.startsWith("index ")) return "meta";
  if (line.startsWith("@@")) return "hunk";
  if (line.startsWith("+")) return "add";
  if (line.startsWith("-")) return "del";
  return "";
}

// ---- gates ---------------------------------------------------------------------

async function loadGates() {
  const agentId = page.agentId;
  try {
    const body = await api("GET", path("gates"));
    if (page.agentId === agentId) renderGates(body.runs);
  } catch (error) {
    if (page.agentId === agentId) $("gate-runs").replaceChildren(el("p", { class: "empty", text: `Could not load the gates: ${error.message}` }));
  }
}

function renderGates(runs) {
  if (!runs.length) {
    $("gate-runs").replaceChildren(el("p", { class: "empty", text: "No gate has run yet." }));
    return;
  }
  $("gate-runs").replaceChildren(...runs.map((run) => el("section", { class: "gate-run", "data-approved": String(run.approved) },
    el("h3", { text: `${run.phase || "check"} · ${run.approved ? "approved" : "rejected"}${run.yolo ? " (YOLO)" : ""}` },
      el("span", { class: "sub inline", text: `${new Date(run.at).toLocaleTimeString()}${run.commit ? ` · ${run.commit.slice(0, 12)}` : ""}` })),
    ...run.gates.map((gate) => {
      const mark = gate.status === "passed" ? "✓" : gate.status === "failed" ? "✗" : "–";
      const item = el("details", { class: "gate-output", "data-gate": gate.name, "data-status": gate.status },
        el("summary", {},
          el("span", { class: "gate", "data-status": gate.status, text: `${mark} ${gate.name}` }),
          el("span", { class: "sub inline", text: [`${(gate.durationMs / 1000).toFixed(1)} s`, gate.figure !== null && gate.figure !== undefined ? `${gate.figure}` : "", gate.command || ""].filter(Boolean).join(" · ") })),
        el("pre", { text: gate.output || "(no output)" }));
      if (gate.status === "failed") item.open = true;
      return item;
    }))));
}

// ---- timeline ------------------------------------------------------------------

async function loadTimeline() {
  const agentId = page.agentId;
  try {  // the trace, when this gateway records them and it has spans
    const trace = await api("GET", path("trace"));
    if (page.agentId !== agentId) return;
    page.trace = Array.isArray(trace.spans) && trace.spans.length ? trace : null;
  } catch (_) { page.trace = null; /* no trace here: the events tell the story */ }
  page.traced = page.trace !== null;
  try {
    const events = await api("GET", path("events"));
    if (page.agentId !== agentId) return;
    for (const event of events) addEvent(event);
    renderTimeline();
    if (!page.settled) {  // a trace's last spans arrive a moment after its end: look once more
      page.settled = true;
      soon("trace", 2500, loadTimeline);
    }
  } catch (error) {
    if (page.agentId === agentId) $("timeline").replaceChildren(el("p", { class: "empty", text: `Could not load the timeline: ${error.message}` }));
  }
}

// The trace's spans (where the time went, service by service) above the agent's events
// (what happened to it); the events alone when no trace is kept.
function renderTimeline() {
  $("timeline-source").textContent = page.trace ? `from trace ${page.trace.traceId || ""} and the agent's events` : "from the agent's events";
  $("timeline").replaceChildren(...(page.trace ? [traceList(page.trace)] : []), eventList());
}

function addEvent(event) {
  if (page.seqs.has(event.seq)) return;
  page.seqs.add(event.seq);
  page.events.push(event);
  page.events.sort((a, b) => a.seq - b.seq);
}

function eventList() {
  const first = page.events.length ? Date.parse(page.events[0].at) : 0;
  return el("ol", { class: "timeline-events" }, ...page.events.map((event) => {
    const after = Math.max(0, (Date.parse(event.at) - first) / 1000);
    return el("li", { "data-kind": event.kind, "data-seq": String(event.seq) },
      el("time", { text: new Date(event.at).toLocaleTimeString() }),
      el("span", { class: "sub inline offset", text: `+${after.toFixed(1)} s` }),
      el("span", { class: "entry-kind", text: event.kind }),
      el("span", { text: describe(event) }));
  }));
}

// A span's time in ms: ISO text, or a number in ns, ms or s (whatever the exporter chose).
function millis(value) {
  if (typeof value === "string") return /^\d+(\.\d+)?$/.test(value) ? millis(Number(value)) : Date.parse(value);
  if (typeof value !== "number") return NaN;
  if (value > 1e15) return value / 1e6;
  if (value > 1e11) return value;
  return value * 1000;
}

function traceList(trace) {
  const spans = trace.spans.map((span) => ({ ...span, from: millis(span.start), to: millis(span.end) }))
    .filter((span) => !Number.isNaN(span.from));
  const start = Math.min(...spans.map((s) => s.from));
  const end = Math.max(...spans.map((s) => (Number.isNaN(s.to) ? s.from : s.to)));
  const total = Math.max(end - start, 1);
  const depth = new Map();
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const level = (span, seen = 0) => {
    if (depth.has(span.spanId)) return depth.get(span.spanId);
    const parent = span.parentId && byId.get(span.parentId);
    const value = parent && seen < 50 ? level(parent, seen + 1) + 1 : 0;
    depth.set(span.spanId, value);
    return value;
  };
  spans.sort((a, b) => a.from - b.from);
  return el("ol", { class: "trace" }, ...spans.map((span) => {
    const bar = el("span", { class: "bar", "data-service": span.service || "" });
    const to = Number.isNaN(span.to) ? span.from : span.to;
    bar.style.left = `${((span.from - start) / total) * 100}%`;
    bar.style.width = `${Math.max(((to - span.from) / total) * 100, 0.4)}%`;
    const label = el("span", { class: "span-label", text: span.name || "span" },
      el("span", { class: "sub inline", text: `${span.service || ""} · ${Math.round(to - span.from)} ms` }));
    label.style.paddingLeft = `${level(span) * 0.9}rem`;
    const attributes = Object.entries(span.attributes || {}).map(([k, v]) => `${k}=${v}`).join("\n");
    return el("li", { "data-span-id": span.spanId || "", "data-service": span.service || "", title: attributes }, label, el("span", { class: "track" }, bar));
  }));
}

// ---- live ----------------------------------------------------------------------

// After the feed reconnects: read everything again (events may have been missed).
function refreshPage() {
  if (!page.agentId) return;
  page.events = [];
  page.seqs = new Set();
  loadConversation();
  loadDiff();
  loadGates();
  loadTimeline();
}

function pageEvent(event) {
  if (!page.agentId || event.agentId !== page.agentId) return;
  renderAgentPage();
  addEvent(event);
  renderTimeline();
  if (page.traced || event.kind === "state") soon("trace", 2000, loadTimeline);
  if (page.conversation.follow && (event.kind === "progress" || event.kind === "state")) soon("conversation", 300, () => loadConversation());
  if (event.kind === "gate") soon("gates", 200, loadGates);
  const changes = event.kind === "state" || event.kind === "gate" || (event.kind === "progress" && event.detail && event.detail.step === "tool_called");
  if (changes) soon("diff", 1500, loadDiff);
}

document.addEventListener("DOMContentLoaded", () => {
  window.addEventListener("hashchange", route);
  $("page-kill").addEventListener("click", () => kill(page.agentId, $("page-kill")));
  $("conversation-older").addEventListener("click", () => pageConversation(-1));
  $("conversation-newer").addEventListener("click", () => pageConversation(1));
});
