/* Station page, teach mode: photos of a product without a model, marked good or defect + type,
   become its training images; the counter shows how far they are from what training needs. */
"use strict";
(function () {
  var box = document.getElementById("teach");
  if (!box) return;
  var $ = function (id) { return document.getElementById(id); };

  function url() { return box.dataset.url.replace("NAME", encodeURIComponent($("teach-product").value)); }

  function show(c) {
    var text = c.product + ": " + c.good + " good, " + c.defect + " defect photos";
    if (c.need) {
      text += " — training (" + c.need.mode + ") needs " + c.need.good + " good" +
        (c.need.defect ? " and " + c.need.defect + " defect" : "");
      var ready = c.good >= c.need.good && c.defect >= c.need.defect;
      text += ready ? ": ready to train." : ".";
    }
    $("teach-count").textContent = text;
  }

  async function refresh() {
    try { show(await qc.request("GET", url())); } catch (err) { $("teach-count").textContent = err.message; }
  }

  $("teach-label").addEventListener("change", function () {
    $("teach-type").disabled = this.value === "good";
    if (!$("teach-type").disabled) $("teach-type").focus();
  });
  $("teach-product").addEventListener("change", refresh);
  $("teach-photo").addEventListener("change", async function () {
    var file = this.files[0];
    if (!file) return;
    var form = new FormData();
    var defect = $("teach-label").value !== "good";
    form.append("label", defect ? $("teach-type").value : "good");
    form.append("image", file, file.name);
    try { show(await qc.request("POST", url(), form)); } catch (err) { $("teach-count").textContent = err.message; }
    this.value = "";
  });
  refresh();
})();
