/* qc: helpers shared by the pages (no framework, no network beyond this server). */
"use strict";
window.qc = (function () {
  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  /* fetch() with the session cookie and CSRF header; resolves to the parsed JSON body. */
  async function request(method, url, body) {
    var options = {method: method, credentials: "same-origin",
                   headers: {"X-CSRFToken": csrfToken(), "Accept": "application/json"}};
    if (body instanceof FormData) {
      options.body = body;
    } else if (body !== undefined) {
      options.body = JSON.stringify(body);
      options.headers["Content-Type"] = "application/json";
    }
    var response = await fetch(url, options);
    var data = await response.json().catch(function () { return {}; });
    if (!response.ok) {
      var message = (data.error && data.error.message) || response.statusText;
      throw new Error(message + " (HTTP " + response.status + ")");
    }
    return data;
  }

  function pct(value, digits) {
    if (value === null || value === undefined) return "–";
    return (value * 100).toFixed(digits === undefined ? 1 : digits) + " %";
  }

  function money(value) {
    if (value === null || value === undefined) return "–";
    return value.toLocaleString("en", {minimumFractionDigits: 2, maximumFractionDigits: 2});
  }

  /* A bucket's ISO start (plant-local, with offset) as a short label, without time-zone maths. */
  function bucketLabel(iso, bucket) {
    var months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    var day = iso.slice(8, 10) + " " + months[parseInt(iso.slice(5, 7), 10) - 1];
    if (bucket === "hour" || bucket === "shift") return day + " " + iso.slice(11, 16);
    if (bucket === "week") return "wk of " + day;
    return day;
  }

  return {request: request, pct: pct, money: money, bucketLabel: bucketLabel};
})();
