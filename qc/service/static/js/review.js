/* Review page: save an engineer's label (agree when it matches the model, else disagree). */
"use strict";
(function () {
  var list = document.getElementById("review-list");
  list.addEventListener("submit", async function (event) {
    var form = event.target.closest(".label-form");
    if (!form) return;
    event.preventDefault();
    var item = form.closest(".item");
    var label = form.elements.label.value;
    var review = label === item.dataset.modelLabel ? "agree" : "disagree";
    var saved = form.querySelector(".saved");
    try {
      var body = await qc.request("POST", list.dataset.reviewUrl.replace("ID", item.dataset.id),
                                  {review: review, label: label});
      item.querySelector(".state").textContent =
        body.review.review + " by " + body.review.by + ": " + body.review.label;
      saved.textContent = "Saved ✓";
    } catch (err) {
      saved.textContent = err.message;
    }
  });
})();
