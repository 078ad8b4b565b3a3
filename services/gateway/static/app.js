// Mosaic dashboard: reads the HTTP API with a bearer token kept in sessionStorage and
// follows the live feed over a WebSocket (token offered as a subprotocol, never in a URL:
// the gateway checks it before it accepts the socket).
"use strict";

const TOKEN_KEY = "mosaic.token";
const FINAL = new Set(["completed", "failed", "killed"]);
const STATES = ["spawning", "running", "completed", "failed", "killed"];
const MAX_EVENTS = 60;

const $ = (id) => document.getElementById(id);
const state = { token: null, role: null, agents: new Map(), ws: null, retry: 0, refetch: new Map(), spend: null };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function api(method, path) {
  const response = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${state.token}`, Accept: "application/json" },
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error((body.error && body.error.message) || response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

function showError(message) {
  const banner = $("error-banner");
  banner.textContent = message || "";
  banner.hidden = !message;
}

// ---- sign in / out -------------------------------------------------------------

async function signIn(token) {
  state.token = token;
  try {
    const who = await api("GET", "/auth/whoami");
    state.role = who.role;
  } catch (error) {
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $("login-error").textContent = error.status === 401 ? "That token is not valid." : error.message;
    $("login-error").hidden = false;
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("login").hidden = true;
  $("login-error").hidden = true;
  $("session").hidden = false;
  $("role").textContent = state.role;
  $("kill-all").hidden = state.role !== "admin";
  route();  // the list, or the agent's page the address names (agent.js)
  await Promise.all([loadAgents(), loadBanners()]);
  connect();
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
}

// ---- data ----------------------------------------------------------------------

async function loadAgents() {
  try {
    const page = await api("GET", "/agents?limit=200");
    state.agents.clear();
    for (const agent of page.agents) state.agents.set(agent.agentId, agent);
    showError("");
    render();
  } catch (error) {
    showError(`Could not load agents: ${error.message}`);
  }
}

async function loadBanners() {
  try {
    const health = await fetch("/health").then((r) => r.json());
    $("yolo-banner").hidden = !health.qualityGatesDisabled;
    $("unsafe-banner").hidden = !health.unsafe;
    // what an operator must fix before agents run (the UNSAFE warning has its own banner)
    const problems = (health.warnings || []).filter((w) => !w.startsWith("UNSAFE"));
    $("spawner-banner").textContent = problems.join(" · ");
    $("spawner-banner").hidden = problems.length === 0;
  } catch (_) { /* the feed shows the connection state */ }
  try {
    const hold = await api("GET", "/agents/hold");
    const budget = hold.kind === "budget";
    $("hold-banner").hidden = !hold.held;
    $("hold-banner").dataset.kind = hold.kind || "";
    $("hold-title").textContent = budget ? "Daily budget spent:" : "Kill-all in force:";
    $("hold-text").textContent = !hold.held ? "" : budget ? `${hold.reason}.`
      : `${hold.reason || "no reason given"} (${hold.requestedBy || "unknown"}).`;
    $("hold-lift").textContent = budget
      ? "No task is accepted until an admin resumes or the next UTC day."
      : "Queued tasks wait until an admin resumes.";
  } catch (_) { $("hold-banner").hidden = true; }
  try {
    state.spend = await api("GET", "/spend?days=1");
    render();
  } catch (_) { /* the day total is left out */ }
}

// What a model call costs, as a person reads it: cents need four places.
function dollars(usd) {
  return `$${(usd || 0).toFixed(usd >= 100 ? 2 : 4)}`;
}

// The spend column: what the agent's model calls cost (the reviewer's included).
function spendCell(agent) {
  const spend = agent.spend || {};
  const tokens = (spend.inputTokens || 0) + (spend.outputTokens || 0)
    + (spend.cacheWriteTokens || 0) + (spend.cacheReadTokens || 0);
  const cell = el("td", { class: "spend", title: `input ${spend.inputTokens || 0} · output ${spend.outputTokens || 0} · cache write ${spend.cacheWriteTokens || 0} · cache read ${spend.cacheReadTokens || 0}` },
    el("span", { class: "usd", text: dollars(spend.usd) }),
    el("span", { class: "sub", text: `${tokens.toLocaleString()} tokens` }));
  if (agent.stopReason === "budget") cell.append(el("span", { class: "sub error", text: "stopped: budget" }));
  return cell;
}

function refetchSoon(agentId) {
  if (state.refetch.has(agentId)) return;
  state.refetch.set(agentId, setTimeout(async () => {
    state.refetch.delete(agentId);
    try {
      state.agents.set(agentId, await api("GET", `/agents/${encodeURIComponent(agentId)}/status`));
      render();
    } catch (_) { /* gone or unreachable: keep what we have */ }
  }, 150));
}

// ---- live feed -----------------------------------------------------------------

function setLive(text) {
  $("live").dataset.state = text;
  $("live").textContent = text;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const encoded = btoa(String.fromCharCode(...new TextEncoder().encode(state.token)))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const ws = new WebSocket(`${scheme}://${location.host}/events/ws`,
    ["mosaic.bearer", `mosaic.bearer.${encoded}`]);
  state.ws = ws;
  let opened = false;
  ws.onopen = () => { opened = true; };
  ws.onmessage = (message) => {
    const data = JSON.parse(message.data);
    if (data.type === "ready") {
      if (state.retry > 0) { loadAgents(); refreshPage(); }  // catch up on what was missed
      state.retry = 0;
      setLive("live");
    } else if (data.type === "event") {
      onEvent(data.event);
    } else if (data.type === "error") {
      showError(`Live feed: ${data.error.message}`);
    }
  };
  ws.onclose = (close) => {
    if (state.ws !== ws) return;
    if (close.code === 4401) { signOut(); return; }
    if (!opened) {  // refused at the handshake: a revoked token signs out, else retry
      api("GET", "/auth/whoami").catch((error) => { if (error.status === 401) signOut(); });
    }
    setLive("reconnecting");
    state.retry += 1;
    setTimeout(connect, Math.min(500 * 2 ** state.retry, 10000));
  };
}

function onEvent(event) {
  const known = state.agents.get(event.agentId);
  if (known && event.kind === "state" && event.state) known.state = event.state;
  if (known && event.detail && event.detail.taskState) known.taskState = event.detail.taskState;
  if (known && event.kind === "task_state" && event.state) known.taskState = event.state;
  if (!known) state.agents.set(event.agentId, placeholder(event));
  refetchSoon(event.agentId);
  if (event.state === "killed" || event.kind === "state") loadBanners();
  logEvent(event);
  render();
  pageEvent(event);
}

function placeholder(event) {
  return {
    agentId: event.agentId, taskId: event.taskId, agentType: "", state: event.kind === "state" && event.state ? event.state : "spawning",
    taskState: "pending", createdAt: event.at, turns: 0, tokensUsed: 0, gates: [],
  };
}

function describe(event) {
  const detail = event.detail || {};
  if (event.kind === "state" || event.kind === "task_state") {
    const from = event.previous ? `${event.previous} → ` : "";
    const why = detail.error || detail.reason || "";
    return `${event.kind === "state" ? "agent" : "task"} ${from}${event.state}${why ? ` (${why})` : ""}`;
  }
  if (event.kind === "progress") {
    if (detail.step === "tool_called") return `tool ${detail.tool || ""}`;
    if (detail.step === "turn_started") return `turn ${detail.turn}`;
    if (detail.step === "tokens_used") return `${detail.total} tokens`;
    if (detail.step === "merge_queue") return `merge queue #${detail.position}`;
    if (detail.step === "merged") return `merged ${detail.range || ""}`;
    return detail.step || "progress";
  }
  if (event.kind === "warning" && detail.warning) return `warning: ${detail.warning}`;
  if (event.kind === "overlap") return `overlaps ${String(detail.agentId || "").slice(0, 8)}: ${(detail.files || []).join("; ")}`;
  if (event.kind === "gate") {
    const phase = detail.phase ? `${detail.phase} ` : "";
    return `gates ${phase}${detail.approved ? "approved" : "rejected"}${detail.yolo ? " (YOLO)" : ""}`;
  }
  return event.kind;
}

function logEvent(event) {
  const list = $("events");
  const time = new Date(event.at).toLocaleTimeString();
  list.prepend(el("li", {},
    el("time", { text: time }),
    el("span", { class: "mono", text: `${event.agentId.slice(0, 8)} #${event.seq} ` }),
    el("span", { text: describe(event) })));
  while (list.children.length > MAX_EVENTS) list.lastChild.remove();
}

// ---- actions -------------------------------------------------------------------

async function kill(agentId, button) {
  button.disabled = true;
  button.textContent = "Killing…";
  try {
    const result = await api("POST", `/agents/${encodeURIComponent(agentId)}/kill`);
    const agent = state.agents.get(agentId);
    if (agent) agent.state = result.state;
    refetchSoon(agentId);
    render();
  } catch (error) {
    showError(`Kill failed: ${error.message}`);
    button.disabled = false;
    button.textContent = "Kill";
  }
}

async function killAll() {
  const dialog = $("confirm-dialog");
  dialog.returnValue = "";
  dialog.showModal();
  dialog.addEventListener("close", async function onClose() {
    dialog.removeEventListener("close", onClose);
    if (dialog.returnValue !== "yes") return;
    $("kill-all").disabled = true;
    try {
      await api("POST", "/agents/kill-all");
      await Promise.all([loadAgents(), loadBanners()]);
    } catch (error) {
      showError(`Kill all failed: ${error.message}`);
    } finally {
      $("kill-all").disabled = false;
    }
  });
}

// ---- rendering -----------------------------------------------------------------

function uptime(agent) {
  const start = Date.parse(agent.startedAt || agent.createdAt);
  if (Number.isNaN(start)) return "";
  const end = agent.completedAt ? Date.parse(agent.completedAt) : Date.now();
  let seconds = Math.max(0, Math.round((end - start) / 1000));
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  seconds %= 60;
  if (hours) return `${hours}h ${minutes}m`;
  if (minutes) return `${minutes}m ${seconds}s`;
  return `${seconds}s`;
}

function row(agent) {
  const live = !FINAL.has(agent.state);
  const gates = el("td", { class: "gates" });
  for (const gate of agent.gates || []) {
    const mark = gate.status === "passed" ? "✓" : gate.status === "failed" ? "✗" : "–";
    gates.append(el("span", { class: "gate", "data-status": gate.status, title: gate.excerpt || gate.status, text: `${mark} ${gate.name}` }));
  }
  if (agent.qualityGatesDisabled) gates.append(el("span", { class: "gate", "data-status": "skipped", text: "YOLO" }));
  const action = el("td", {});
  if (live) {
    const button = el("button", { type: "button", class: "kill", text: "Kill" });
    button.addEventListener("click", () => kill(agent.agentId, button));
    action.append(button);
  }
  const error = agent.error ? el("span", { class: "sub error", text: agent.error }) : "";
  const branch = agent.pushedBranch || agent.agentBranch;
  return el("tr", { "data-agent-id": agent.agentId, "data-state": agent.state },
    el("td", {},
      el("a", { class: "mono agent-link", href: agentLink(agent.agentId), text: agent.agentId }),
      el("span", { class: "sub", text: [agent.agentType, `p${agent.priority ?? "?"}`, agent.gateProfile].filter(Boolean).join(" · ") })),
    el("td", {},
      el("span", { text: agent.taskId }),
      el("span", { class: "sub mono", text: branch || agent.branch || "" })),
    el("td", {},
      el("span", { class: "state", "data-state": agent.state, text: agent.state }),
      el("span", { class: "sub", text: `task ${agent.taskState}` }), mergeNote(agent), error),
    el("td", { class: "progress" },
      el("span", { text: `${agent.turns || 0} turns · ${(agent.tokensUsed || 0).toLocaleString()} tokens` }),
      el("span", { class: "sub", text: agent.lastTool ? `last tool: ${agent.lastTool}` : "" })),
    spendCell(agent),
    runsOn(agent),
    el("td", { class: "uptime", text: uptime(agent) }),
    overlaps(agent),
    gates,
    action);
}

// With options.merge = "queue": its place while it waits (1: being merged), the range after.
function mergeNote(agent) {
  const position = agent.mergeQueuePosition;
  if (position !== null && position !== undefined) {
    return el("span", { class: "sub merge-queue", "data-position": String(position),
      text: position === 1 ? "merging (queue #1)" : `merge queue #${position}` });
  }
  if (agent.mergedRange) {
    const [from, to] = agent.mergedRange.split("..");
    return el("span", { class: "sub merged mono", title: agent.mergedRange,
      text: `merged ${from.slice(0, 7)}..${(to || "").slice(0, 7)}` });
  }
  return "";
}

// The conflict forecast: pushed branches of other agents that touch what this one changes.
function overlaps(agent) {
  const cell = el("td", { class: "overlaps" });
  for (const overlap of agent.overlaps || []) {
    const badge = el("span", { class: "overlap", "data-agent-id": overlap.agentId,
      title: `${overlap.branch} at ${overlap.commit.slice(0, 12)} changed ${overlap.files.join("; ")}`,
      text: `⚠ ${overlap.agentId.slice(0, 8)}` });
    cell.append(badge, el("span", { class: "sub mono overlap-files", text: overlap.files.join("; ") }));
  }
  return cell;
}

function runsOn(agent) {
  const cell = el("td", { class: "runs-on" });
  if (!agent.sandbox) return cell;
  const sandbox = el("span", { class: "sandbox", "data-unsafe": String(Boolean(agent.unsafe)),
    text: agent.unsafe ? `${agent.sandbox} · UNSAFE` : agent.sandbox });
  if (agent.unsafe) sandbox.title = "no sandbox (MOSAIC_SANDBOX=none): commands run as host processes";
  const model = agent.model && agent.model !== agent.provider ? `${agent.provider} · ${agent.model}` : agent.provider;
  cell.append(sandbox,
    el("span", { class: "sub host", text: agent.host ? `on ${agent.host}` : "" }),
    el("span", { class: "sub environment", text: agent.environment || "" }),
    el("span", { class: "sub model", text: model || "" }));
  return cell;
}

function render() {
  const activeOnly = $("active-only").checked;
  const agents = [...state.agents.values()]
    .filter((a) => !activeOnly || !FINAL.has(a.state))
    .sort((a, b) => String(b.createdAt).localeCompare(String(a.createdAt)));
  $("agent-rows").replaceChildren(...agents.map(row));
  $("empty").hidden = agents.length > 0;
  const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
  for (const agent of state.agents.values()) counts[agent.state] = (counts[agent.state] || 0) + 1;
  const stats = STATES.map((s) =>
    el("div", { class: "stat", "data-state": s }, el("b", { text: String(counts[s]) }), el("span", { text: s })));
  if (state.spend) {
    const limit = state.spend.limitUsd;
    stats.push(el("div", { class: "stat", id: "spend-today", "data-held": String(state.spend.hold.kind === "budget") },
      el("b", { text: dollars(state.spend.today.usd) }),
      el("span", { text: limit ? `spent today of ${dollars(limit)}` : "spent today (UTC)" })));
  }
  $("summary").replaceChildren(...stats);
  renderAgentPage();
}

function tick() {
  for (const cell of document.querySelectorAll("#agent-rows tr")) {
    const agent = state.agents.get(cell.dataset.agentId);
    if (agent && !FINAL.has(agent.state)) cell.querySelector(".uptime").textContent = uptime(agent);
  }
}

// ---- start ---------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("login-token").value.trim());
  });
  $("logout").addEventListener("click", signOut);
  $("kill-all").addEventListener("click", killAll);
  $("active-only").addEventListener("change", render);
  setInterval(tick, 1000);
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) signIn(saved);
});
