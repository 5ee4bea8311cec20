/* Models page: start, watch (progress, ETA), cancel and retry training jobs; roll back.
   Compare page: activate the compared model. */
"use strict";
(function () {
  var box = document.getElementById("models");
  if (box) modelsPage(box);
  var compare = document.getElementById("compare");
  if (compare) comparePage(compare);

  function modelsPage(box) {
    var rows = document.getElementById("jobs"), timer = null, watching = {};

    function eta(seconds) {
      if (seconds === null || seconds === undefined) return "–";
      if (seconds < 90) return Math.round(seconds) + " s";
      return Math.round(seconds / 60) + " min";
    }

    function cell(text) {
      var td = document.createElement("td");
      td.textContent = text;
      return td;
    }

    function action(label, handler) {
      var b = document.createElement("button");
      b.type = "button"; b.className = "link"; b.textContent = label;
      b.addEventListener("click", handler);
      return b;
    }

    function render(jobs) {
      rows.replaceChildren();
      jobs.forEach(function (job) {
        var tr = document.createElement("tr");
        tr.dataset.jobId = job.id; tr.dataset.state = job.state;
        tr.appendChild(cell("#" + job.id));
        tr.appendChild(cell(job.state));
        var bar = document.createElement("progress");
        bar.max = 1; bar.value = job.progress;
        bar.setAttribute("aria-label", "job " + job.id + " progress");
        var td = cell(""); td.className = "progress"; td.appendChild(bar);
        td.appendChild(document.createTextNode(" " + Math.round(job.progress * 100) + " %"));
        tr.appendChild(td);
        tr.appendChild(cell(job.error ? job.stage + ": " + job.error : job.stage || ""));
        tr.appendChild(cell(job.state === "running" ? eta(job.eta_s) : "–"));
        tr.appendChild(cell(job.created_by || "–"));
        tr.appendChild(cell(job.model_version || "–"));
        var acts = cell("");
        if (job.state === "queued" || job.state === "running") {
          acts.appendChild(action("Cancel", function () { post(box.dataset.jobUrl.replace(/0$/, job.id) + "/cancel"); }));
        }
        if (job.state === "failed" || job.state === "cancelled") {
          acts.appendChild(action("Retry", function () { post(box.dataset.jobUrl.replace(/0$/, job.id) + "/retry"); }));
        }
        if (job.report_url) {
          var a = document.createElement("a"); a.href = job.report_url; a.textContent = "Report";
          a.target = "_blank"; acts.appendChild(a); acts.appendChild(document.createTextNode(" "));
        }
        if (job.model_id) {
          var c = document.createElement("a"); c.href = box.dataset.compareUrl.replace("/0/", "/" + job.model_id + "/");
          c.textContent = "Compare and activate"; c.className = "compare"; acts.appendChild(c);
        }
        tr.appendChild(acts);
        rows.appendChild(tr);
      });
      var busy = jobs.some(function (j) { return j.state === "queued" || j.state === "running"; });
      var finished = jobs.some(function (j) { return watching[j.id] && j.state === "succeeded"; });
      watching = {};
      jobs.forEach(function (j) { if (j.state === "queued" || j.state === "running") watching[j.id] = true; });
      if (finished) { location.reload(); return; }  // the new version joins the table below
      clearTimeout(timer);
      timer = setTimeout(refresh, busy ? 1500 : 10000);
    }

    async function refresh() {
      try {
        render((await qc.request("GET", box.dataset.jobsUrl)).items);
      } catch (err) {
        document.getElementById("start-result").textContent = err.message;
        timer = setTimeout(refresh, 10000);
      }
    }

    async function post(url) {
      var out = document.getElementById("start-result");
      try { await qc.request("POST", url); out.textContent = ""; } catch (err) { out.textContent = err.message; }
      refresh();
    }

    document.getElementById("start-job").addEventListener("submit", async function (event) {
      event.preventDefault();
      var form = new FormData(event.target), out = document.getElementById("start-result");
      if (!form.get("dataset") || !form.get("dataset").size) form.delete("dataset");
      if (!form.get("size")) form.delete("size");
      out.textContent = "Starting…";
      try {
        var job = await qc.request("POST", box.dataset.startUrl, form);
        out.textContent = "Job #" + job.id + " queued.";
      } catch (err) { out.textContent = err.message; }
      refresh();
    });

    var rollback = document.getElementById("rollback");
    if (rollback) rollback.addEventListener("click", async function () {
      var out = document.getElementById("rollback-result");
      try {
        var body = await qc.request("POST", box.dataset.rollbackUrl);
        out.textContent = "Rolled back to " + body.version + ".";
        setTimeout(function () { location.reload(); }, 800);
      } catch (err) { out.textContent = err.message; }
    });
    refresh();
  }

  function comparePage(box) {
    var button = document.getElementById("activate");
    if (!button) return;
    button.addEventListener("click", async function () {
      var out = document.getElementById("activate-result");
      try {
        var body = await qc.request("POST", box.dataset.activateUrl);
        out.textContent = "Activated " + body.version + ": stations pick it up at their next model check.";
        button.disabled = true;
      } catch (err) { out.textContent = err.message; }
    });
  }
})();
