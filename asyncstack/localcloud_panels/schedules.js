// asyncstack's "Schedules" panel of the localcloud dashboard: pending delayed jobs by due time on the
// local clock, how each waits (an SQS delay or a Scheduler at() schedule), and a cancel button.
"use strict";

(() => {
  const { el, time, seconds, act, toast } = window.localcloud;

  async function cancel(key) {
    const answer = await act(`Cancel the delayed job ${key}? It will not run.`, `/api/schedules/${encodeURIComponent(key)}/cancel`);
    if (answer) toast(`${key}: ${answer.outcome}`);
  }

  function row(job, clock) {
    return el(
      "tr",
      { "data-job-key": job.job_key },
      el("td", {}, job.job_key),
      el("td", {}, job.job_type),
      el("td", { "data-field": "due_at" }, time(job.due_at)),
      el("td", {}, seconds(Math.max(0, (new Date(job.due_at) - clock) / 1000))),
      el("td", {}, job.via === "scheduler" ? "EventBridge Scheduler" : "SQS delay"),
      el(
        "td",
        { className: "n" },
        el("button", { type: "button", className: "danger", "data-action": "cancel", onclick: () => cancel(job.job_key) }, "Cancel"),
      ),
    );
  }

  window.localcloud.panel("schedules", {
    mount(section) {
      section.append(
        el("p", { className: "note", "data-field": "summary" }),
        el(
          "table",
          {},
          el("thead", {}, el("tr", {}, ["job", "type", "due", "in", "via"].map((name) => el("th", {}, name)), el("th", {}))),
          el("tbody", { "data-field": "pending" }),
        ),
      );
    },
    render(section, schedules, overview) {
      const counts = Object.entries(schedules.by_status);
      section.querySelector("[data-field=summary]").textContent = counts.length
        ? `Delayed jobs by status: ${counts.map(([name, count]) => `${count} ${name}`).join(", ")}. Times are on the local clock.`
        : "No delayed job scheduled yet.";
      const clock = new Date(overview.now);
      section.querySelector("[data-field=pending]").replaceChildren(...schedules.pending.map((job) => row(job, clock)));
    },
  });
})();
