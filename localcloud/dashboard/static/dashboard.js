// The local cloud's dashboard: one overview pushed every second by /api/stream (server-sent events),
// details fetched while their panel is open. Every value from the cloud is set as text, never as HTML:
// message bodies are whatever producers sent. Extensions add views: the overview lists them
// (`panels`), and each one's script (/panels/<name>.js) registers how it draws with `localcloud.panel`.
"use strict";

const BUILT_IN_VIEWS = ["queues", "functions", "workflows"];
const KEY_STORAGE = "localcloud.dashboardKey";
const state = { overview: null, deadLetters: null, execution: null };
const panels = new Map(); // name -> { section, drawer } (drawer once its script has registered)

// -- small helpers ---------------------------------------------------------------------------------

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "className") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function number(value, field) {
  return el("td", { className: value ? "n" : "n zero", "data-field": field }, value ?? "–");
}

function milliseconds(value) {
  if (value === null || value === undefined) return "–";
  return value < 999.5 ? `${Math.round(value)} ms` : `${(value / 1000).toFixed(1)} s`;
}

function seconds(value) {
  if (value === null || value === undefined) return "–";
  const whole = Math.round(value);
  if (whole < 60) return `${whole} s`;
  if (whole < 3600) return `${Math.floor(whole / 60)} min ${whole % 60} s`;
  if (whole < 86400) return `${Math.floor(whole / 3600)} h ${Math.floor((whole % 3600) / 60)} min`;
  return `${Math.floor(whole / 86400)} d ${Math.floor((whole % 86400) / 3600)} h`;
}

function time(iso) {
  if (!iso) return "–";
  const moment = new Date(iso);
  return moment.toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

function status(value) {
  return el("span", { className: `status-${value}`, "data-field": "status" }, value ?? "–");
}

function toast(text, error = false) {
  const box = document.getElementById("toast");
  box.textContent = text;
  box.className = error ? "error" : "";
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (box.hidden = true), 6000);
}

async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `${response.status} ${response.statusText}`);
  return body;
}

// Asks before every action; the local key is asked once and kept for this browser.
function confirmAction(text) {
  const dialog = document.getElementById("confirm");
  const key = document.getElementById("confirm-key");
  document.getElementById("confirm-text").textContent = text;
  key.value = localStorage.getItem(KEY_STORAGE) || "";
  dialog.showModal();
  (key.value ? document.getElementById("confirm-ok") : key).focus();
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        if (dialog.returnValue !== "ok" || !key.value) return resolve(null);
        localStorage.setItem(KEY_STORAGE, key.value);
        resolve(key.value);
      },
      { once: true },
    );
    dialog.returnValue = "";
  });
}

async function act(text, path, body = {}) {
  const key = await confirmAction(text);
  if (!key) return null;
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Api-Key": key },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    if (response.status === 401 || response.status === 403) localStorage.removeItem(KEY_STORAGE);
    toast(answer.detail || `${response.status} ${response.statusText}`, true);
    return null;
  }
  return answer;
}

// -- views -----------------------------------------------------------------------------------------

function showView() {
  const wanted = location.hash.slice(1);
  const view = BUILT_IN_VIEWS.includes(wanted) || panels.has(wanted) ? wanted : "queues";
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.view === view);
  for (const section of document.querySelectorAll("main section")) {
    section.classList.toggle("active", section.dataset.view === view);
  }
}

function renderQueues(queues) {
  const waiting = queues.filter((q) => q.dlq).reduce((sum, q) => sum + q.visible + q.in_flight + q.delayed, 0);
  const badge = document.getElementById("dlq-badge");
  badge.hidden = waiting === 0;
  badge.textContent = waiting;
  badge.title = `${waiting} message(s) in dead-letter queues`;
  document.getElementById("queues").replaceChildren(
    ...queues.map((q) => {
      const held = q.visible + q.in_flight + q.delayed;
      const actions = el("td", { className: "n" });
      if (q.dlq && held) {
        actions.append(el("button", { type: "button", className: "quiet", "data-action": "open", onclick: () => openDeadLetters(q.name) }, "Open"));
        if (q.redrive_to) {
          actions.append(
            el("button", { type: "button", className: "danger", "data-action": "redrive-all", onclick: () => redrive(q.name) }, "Redrive all"),
          );
        }
      }
      const selected = state.deadLetters && state.deadLetters.name === q.name;
      return el(
        "tr",
        { "data-queue": q.name, className: [q.dlq ? "dlq" : "", q.dlq && !held ? "empty" : "", selected ? "selected" : ""].join(" ").trim() || null },
        el("td", { title: q.name }, q.label, q.dlq ? el("span", { className: "tag dlq" }, "DLQ") : null),
        number(q.visible, "visible"),
        number(q.in_flight, "in_flight"),
        number(q.delayed, "delayed"),
        el("td", { className: "n", "data-field": "oldest_age_seconds" }, held ? seconds(q.oldest_age_seconds) : "–"),
        actions,
      );
    }),
  );
}

async function openDeadLetters(name) {
  state.deadLetters = { name };
  await refreshDeadLetters();
  document.getElementById("dead-letters").scrollIntoView({ block: "nearest" });
}

async function refreshDeadLetters() {
  if (!state.deadLetters) return;
  const { name } = state.deadLetters;
  let queue;
  try {
    queue = await getJson(`/api/queues/${encodeURIComponent(name)}/messages`);
  } catch (error) {
    toast(error.message, true);
    return;
  }
  if (!state.deadLetters || state.deadLetters.name !== name) return; // closed or switched meanwhile
  state.deadLetters = queue;
  const panel = document.getElementById("dead-letters");
  panel.hidden = false;
  panel.dataset.queue = name;
  document.getElementById("dead-letters-title").textContent = `${queue.label}: ${queue.messages.length} message(s)`;
  const source = state.overview.queues.find((q) => q.name === queue.redrive_to);
  document.getElementById("dead-letters-note").textContent = source
    ? `A redrive sends them back to ${source.label}.`
    : "Its senders (a topic subscription, a schedule, a function) put messages here: resend them from their source.";
  document.getElementById("dead-letter-messages").replaceChildren(
    ...queue.messages.map((m) => {
      const reason = m.error_type
        ? `${m.error_type}: ${m.error_message || "no message"}`
        : `no reason attached (moved by SQS after ${m.receive_count} receive(s) in the source queue)`;
      let body = m.body;
      try {
        body = JSON.stringify(JSON.parse(m.body), null, 2);
      } catch {
        // not JSON: shown as it is
      }
      const attributes = Object.entries(m.attributes);
      return el(
        "div",
        { className: "message", "data-message-id": m.message_id },
        el(
          "div",
          { className: "message-head" },
          el("code", {}, m.message_id),
          el("span", { className: "reason", "data-field": "error" }, reason),
          el("span", { className: "note", "data-field": "receive-count" }, `received ${m.receive_count} time(s)`),
          m.failed_at ? el("span", { className: "note" }, `failed ${time(m.failed_at)}`) : null,
          queue.redrive_to
            ? el("button", { type: "button", "data-action": "redrive-one", onclick: () => redrive(name, m.message_id) }, "Redrive")
            : null,
        ),
        el("pre", { "data-field": "body" }, body),
        attributes.length ? el("dl", {}, attributes.map(([key, value]) => [el("dt", {}, key), el("dd", {}, value)])) : null,
      );
    }),
  );
}

async function redrive(name, messageId) {
  const queue = state.overview.queues.find((q) => q.name === name);
  const source = state.overview.queues.find((q) => q.name === queue.redrive_to);
  const what = messageId ? `message ${messageId}` : `every message of ${queue.label}`;
  const answer = await act(`Send ${what} back to ${source.label}?`, `/api/queues/${encodeURIComponent(name)}/redrive`, messageId ? { message_id: messageId } : {});
  if (answer) {
    toast(answer.summary);
    refreshDeadLetters();
  }
}

function renderFunctions(functions) {
  document.getElementById("functions").replaceChildren(
    ...functions.map((f) =>
      el(
        "tr",
        { "data-function": f.name },
        el("td", { title: f.name }, f.label),
        number(f.invocations, "invocations"),
        number(f.errors, "errors"),
        number(f.timeouts, "timeouts"),
        number(f.throttles, "throttles"),
        number(f.cold_starts, "cold_starts"),
        el("td", { className: "n", "data-field": "p50_ms" }, milliseconds(f.p50_ms)),
        el("td", { className: "n", "data-field": "p99_ms" }, milliseconds(f.p99_ms)),
        number(f.warm_environments, "warm_environments"),
      ),
    ),
  );
}

function progressBar(percent) {
  const bar = el("div", { className: "progress-bar", "data-field": "progress", "data-percent": percent });
  bar.style.width = `${percent}%`; // through the CSSOM: the page's CSP refuses style attributes
  return el("div", { className: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": percent }, bar);
}

function renderWorkflows(machines) {
  document.getElementById("workflows").replaceChildren(
    ...machines.map((machine) =>
      el(
        "div",
        { className: "machine", "data-machine": machine.name },
        el(
          "h3",
          {},
          machine.label,
          el(
            "span",
            { className: "counts" },
            Object.keys(machine.by_status).length
              ? Object.entries(machine.by_status).map(([name, count]) => el("span", { className: `status-${name}`, "data-status": name }, `${count} ${name.toLowerCase()}`))
              : el("span", { className: "note" }, "no executions yet"),
          ),
        ),
        machine.executions.length
          ? el(
              "table",
              {},
              el("thead", {}, el("tr", {}, el("th", {}, "execution"), el("th", {}, "status"), el("th", {}, "started"), el("th", { className: "n" }, "duration"))),
              el(
                "tbody",
                {},
                machine.executions.map((execution) =>
                  el(
                    "tr",
                    {
                      className: `clickable${state.execution && state.execution.arn === execution.arn ? " selected" : ""}`,
                      "data-execution": execution.arn,
                      onclick: () => openExecution(execution.arn),
                    },
                    el("td", {}, execution.name),
                    el("td", {}, status(execution.status)),
                    el("td", {}, time(execution.started_at)),
                    el("td", { className: "n" }, execution.stopped_at ? milliseconds(new Date(execution.stopped_at) - new Date(execution.started_at)) : "running"),
                  ),
                ),
              ),
            )
          : null,
      ),
    ),
  );
}

async function openExecution(arn) {
  state.execution = { arn };
  await refreshExecution();
  document.getElementById("execution").scrollIntoView({ block: "nearest" });
}

async function refreshExecution() {
  if (!state.execution) return;
  const { arn } = state.execution;
  if (state.execution.status && state.execution.status !== "RUNNING") return; // finished: nothing changes
  let execution;
  try {
    execution = await getJson(`/api/executions/${encodeURIComponent(arn)}`);
  } catch (error) {
    toast(error.message, true);
    return;
  }
  if (!state.execution || state.execution.arn !== arn) return;
  state.execution = execution;
  const panel = document.getElementById("execution");
  panel.hidden = false;
  panel.dataset.execution = arn;
  document.getElementById("execution-title").textContent = `${execution.state_machine} / ${execution.name}`;
  document.getElementById("execution-note").replaceChildren(
    status(execution.status),
    ` started ${time(execution.started_at)}`,
    execution.stopped_at ? `, took ${milliseconds(new Date(execution.stopped_at) - new Date(execution.started_at))}` : "",
    execution.error ? ` · ${execution.error}: ${execution.cause || ""}` : "",
  );
  document.getElementById("steps").replaceChildren(
    ...execution.steps.map((step, index) =>
      el(
        "tr",
        { "data-step": step.name, className: step.compensating ? "compensating" : null },
        el("td", { className: "n" }, index + 1),
        el("td", {}, step.name, step.compensating ? el("span", { className: "tag compensating" }, "compensating") : null),
        el("td", {}, step.type),
        el("td", {}, status(step.status)),
        el("td", { className: "n" }, step.attempts || "–"),
        el("td", {}, time(step.entered_at)),
        el("td", { className: "n", "data-field": "duration" }, milliseconds(step.duration_ms)),
        el("td", { className: "status-failed" }, step.error || ""),
      ),
    ),
  );
}

// -- extension panels ------------------------------------------------------------------------------

// A view for each panel the overview lists: a nav link, a section, and its script, loaded once.
function addPanels(listed) {
  const added = listed.filter(({ name }) => !panels.has(name));
  for (const { name, title } of added) {
    const section = el("section", { id: `view-${name}`, "data-view": name, "data-panel": name }, el("h2", {}, title));
    document.getElementById("views").append(section);
    document.getElementById("nav").append(el("a", { href: `#${name}`, "data-view": name }, title));
    panels.set(name, { section, drawer: null });
    document.head.append(el("script", { src: `/panels/${encodeURIComponent(name)}.js` }));
  }
  if (added.length) showView(); // the page may have been opened on one of them (#name)
}

function drawPanel(name) {
  const panel = panels.get(name);
  if (!panel || !panel.drawer || !state.overview) return;
  try {
    panel.drawer.render(panel.section, state.overview[name], state.overview);
  } catch (error) {
    toast(`the ${name} panel failed to draw: ${error.message}`, true);
  }
}

// What a panel's script may use: `localcloud.panel(name, { mount(section), render(section, data, overview) })`
// and the page's own helpers.
window.localcloud = Object.freeze({
  panel(name, drawer) {
    const panel = panels.get(name);
    if (!panel) return;
    panel.drawer = drawer;
    if (drawer.mount) drawer.mount(panel.section);
    drawPanel(name);
  },
  el, number, milliseconds, seconds, time, status, toast, act, progressBar,
});

function render(overview) {
  state.overview = overview;
  document.getElementById("clock").textContent =
    `local clock ${time(overview.now)}` + (overview.clock_offset_seconds ? ` (+${seconds(overview.clock_offset_seconds)})` : "");
  const iam = document.getElementById("iam");
  iam.textContent = `IAM ${overview.iam.mode}: ${overview.iam.denied} ${overview.iam.mode === "report" ? "would be denied" : "denied"}`;
  iam.title = overview.iam.recent.join("\n") || "no call denied";
  iam.className = overview.iam.denied ? "badge" : "";
  addPanels(overview.panels);
  renderQueues(overview.queues);
  renderFunctions(overview.functions);
  renderWorkflows(overview.workflows);
  for (const name of panels.keys()) drawPanel(name);
  refreshDeadLetters();
  refreshExecution();
}

function connect() {
  const live = document.getElementById("live");
  const stream = new EventSource("/api/stream");
  stream.addEventListener("overview", (event) => {
    live.className = "live";
    live.textContent = "live";
    render(JSON.parse(event.data));
  });
  stream.addEventListener("problem", (event) => toast(JSON.parse(event.data), true));
  stream.addEventListener("error", () => {
    live.className = "connecting";
    live.textContent = "reconnecting";
  });
}

document.getElementById("dead-letters-close").addEventListener("click", () => {
  state.deadLetters = null;
  document.getElementById("dead-letters").hidden = true;
});
document.getElementById("execution-close").addEventListener("click", () => {
  state.execution = null;
  document.getElementById("execution").hidden = true;
});
document.getElementById("confirm-cancel").addEventListener("click", () => document.getElementById("confirm").close());
window.addEventListener("hashchange", showView);
showView();
connect();
