/* Station page: choose product/station once, scan a serial, photograph, show PASS/FAIL. */
"use strict";
(function () {
  var root = document.getElementById("station");
  var $ = function (id) { return document.getElementById(id); };
  var STORE = "qc.station";
  var state = {product: "", station: "", stream: null, starting: false, last: null, busy: false};

  function remember() {
    localStorage.setItem(STORE, JSON.stringify({product: state.product, station: state.station}));
  }

  function restore() {
    try {
      var saved = JSON.parse(localStorage.getItem(STORE) || "{}");
      var option = saved.product && $("product").querySelector(
        'option[value="' + CSS.escape(saved.product) + '"]:not([disabled])');
      if (!option) return false;
      $("product").value = saved.product;
      $("station-name").value = saved.station || "";
      return true;
    } catch (err) {
      return false;
    }
  }

  function showCapture(show) {
    $("setup").hidden = show;
    $("capture").hidden = !show;
    if (!show) return;
    state.product = $("product").value;
    state.station = $("station-name").value;
    $("chosen").textContent = state.product + (state.station ? " · " + state.station : "");
    setVerdict("idle", "Ready", "Scan or type the serial, then take or upload a photo.");
    $("serial").focus();
  }

  function setVerdict(kind, word, detail) {
    var box = $("verdict");
    box.className = "verdict " + kind;
    $("verdict-word").textContent = word;
    $("verdict-detail").textContent = detail;
  }

  function showResult(result) {
    state.last = result;
    var failed = result.verdict === "fail";
    setVerdict(failed ? "fail" : "pass", failed ? "FAIL" : "PASS",
               failed ? "Set the item aside" + (result.defect_type ? ": " + result.defect_type : ".")
                      : "The item is good.");
    $("facts").hidden = false;
    $("fact-serial").textContent = result.serial || $("serial").dataset.sent || "–";
    $("fact-defect").textContent = failed ? (result.defect_type || "see photo") : "none";
    $("fact-score").textContent = result.score.toFixed(2);
    $("fact-latency").textContent = Math.round(result.latency_ms) + " ms";
    if (result.heatmap_url) {
      $("heatmap").src = result.heatmap_url;
      $("heatmap-box").hidden = false;
    }
    $("disagree-box").hidden = false;
    $("disagree").disabled = false;
    $("disagree-state").textContent = "";
    addRecent(result);
  }

  function addRecent(result) {
    var list = $("recent");
    var empty = list.querySelector(".muted");
    if (empty) empty.remove();
    var item = document.createElement("li");
    item.className = "chip " + result.verdict;
    var time = new Date(result.inspected_at).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
    item.textContent = result.verdict.toUpperCase() + " · " + ($("serial").dataset.sent || "no serial") + " · " + time;
    list.prepend(item);
    while (list.children.length > 12) list.lastElementChild.remove();
  }

  async function inspect(blob, filename) {
    if (state.busy) return;
    state.busy = true;
    var form = new FormData();
    form.append("image", blob, filename || "photo.jpg");
    form.append("product", state.product);
    if (state.station) form.append("station", state.station);
    form.append("lot", $("lot").value.trim());
    form.append("serial", $("serial").value.trim());
    $("serial").dataset.sent = $("serial").value.trim();
    setVerdict("busy", "…", "Inspecting");
    try {
      showResult(await qc.request("POST", root.dataset.inspectUrl, form));
      $("serial").value = "";
    } catch (err) {
      setVerdict("error", "Error", err.message);
    } finally {
      state.busy = false;
      $("photo").value = "";
      $("serial").focus();
    }
  }

  async function startCamera() {
    var hint = $("camera-hint");
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      hint.hidden = false;
      hint.textContent = "The camera needs https (or localhost); upload a photo instead.";
      return;
    }
    if (state.starting || state.stream) return;  // one stream, however often it is pressed
    state.starting = true;
    $("camera-start").disabled = true;
    try {
      var stream = await navigator.mediaDevices.getUserMedia(
        {video: {facingMode: "environment", width: {ideal: 1280}}, audio: false});
      $("video").srcObject = stream;
      $("camera").hidden = false;
      await $("video").play();  // until a frame is showing, a photo would be lost or black
      state.stream = stream;
      $("shoot").hidden = false;
      $("camera-start").hidden = true;
      hint.hidden = true;
    } catch (err) {
      if (stream) stream.getTracks().forEach(function (track) { track.stop(); });
      hint.hidden = false;
      hint.textContent = "No camera: " + err.message + ". Upload a photo instead.";
    } finally {
      state.starting = false;
      $("camera-start").disabled = false;
    }
  }

  function shoot() {
    var video = $("video");
    if (!state.stream || !video.videoWidth) return;
    var canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    canvas.toBlob(function (blob) { inspect(blob, "camera.jpg"); }, "image/jpeg", 0.92);
  }

  async function disagree() {
    if (!state.last) return;
    $("disagree").disabled = true;
    try {
      await qc.request("POST", root.dataset.disagreeUrl.replace("ID", state.last.id), {});
      $("disagree-state").textContent = "Flagged for review ✓";
    } catch (err) {
      $("disagree").disabled = false;
      $("disagree-state").textContent = err.message;
    }
  }

  $("setup").addEventListener("submit", function (event) {
    event.preventDefault();
    showCapture(true);
    remember();
  });
  $("change").addEventListener("click", function () { showCapture(false); $("product").focus(); });
  $("lot").addEventListener("keydown", function (event) {
    if (event.key === "Enter") { event.preventDefault(); $("serial").focus(); }
  });
  $("serial").addEventListener("keydown", function (event) {
    if (event.key !== "Enter") return;
    event.preventDefault();
    if (state.stream) shoot(); else if (!state.starting) $("photo").click();
  });
  $("photo").addEventListener("change", function () {
    var file = $("photo").files[0];
    if (file) inspect(file, file.name);
  });
  $("camera-start").addEventListener("click", startCamera);
  $("shoot").addEventListener("click", shoot);
  $("disagree").addEventListener("click", disagree);

  if (restore()) showCapture(true); else $("product").focus();
})();
