// asyncstack's "Jobs" panel of the localcloud dashboard: long-running jobs, newest first, with their
// progress, and their webhook's delivery attempts. Every value is set as text, never as HTML.
"use strict";

(() => {
  const { el, status, time, seconds, progressBar } = window.localcloud;

  function card(job) {
    const progress = job.progress || {};
    const percent = progress.percent || 0;
    const rows = progress.total === null || progress.total === undefined ? `${progress.current || 0} rows` : `${progress.current} of ${progress.total} rows`;
    const eta = job.status === "RUNNING" && progress.eta_seconds !== null && progress.eta_seconds !== undefined ? `ETA ${seconds(progress.eta_seconds)}` : null;
    const webhook = job.webhook;
    return el(
      "div",
      { className: `card ${String(job.status).toLowerCase()}`, "data-job": job.job_id },
      el(
        "div",
        { className: "line" },
        el("span", { className: "id" }, job.job_id),
        status(job.status),
        el("span", { "data-field": "percent" }, `${percent.toFixed(1)}%`),
        el("span", { className: "meta", "data-field": "rows" }, rows),
        eta ? el("span", { className: "meta", "data-field": "eta" }, eta) : null,
        el("span", { className: "meta" }, `created ${time(job.created_at)}`),
        job.finished_at ? el("span", { className: "meta" }, `finished ${time(job.finished_at)}`) : null,
        job.runs > 1 ? el("span", { className: "meta" }, `${job.runs} runs (checkpointed)`) : null,
      ),
      progressBar(percent),
      job.error ? el("p", { className: "status-failed" }, `${job.error.error || "error"}: ${job.error.cause || ""}`) : null,
      webhook
        ? el(
            "div",
            { "data-field": "webhook" },
            el("span", { className: "meta" }, "webhook "),
            status(webhook.status),
            el("span", { className: "meta" }, ` → ${webhook.callback_url}`),
            el(
              "ul",
              { className: "details" },
              webhook.attempts.map((a) =>
                el("li", { "data-attempt": a.attempt }, `attempt ${a.attempt} at ${time(a.at)}: `, a.status_code ? `HTTP ${a.status_code}` : "", a.error ? ` ${a.error}` : ""),
              ),
            ),
          )
        : null,
    );
  }

  window.localcloud.panel("jobs", {
    mount(section) {
      section.append(
        el("p", { className: "note", "data-field": "empty" }, "No long-running job yet (an export started through the job API shows here)."),
        el("div", { "data-field": "jobs" }),
      );
    },
    render(section, jobs) {
      section.querySelector("[data-field=empty]").hidden = jobs.length > 0;
      section.querySelector("[data-field=jobs]").replaceChildren(...jobs.map(card));
    },
  });
})();
