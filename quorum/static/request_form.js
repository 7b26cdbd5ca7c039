/*
 * The "Request promotion" form: show only the preview (requirements, baseline, gate results) of
 * the target chosen. Without this script every target's preview is shown, each under its title.
 */
(function () {
  "use strict";

  function start() {
    var select = document.getElementById("promotion-target");
    if (!select) {
      return;
    }
    var previews = document.querySelectorAll(".promotion-previews .preview");

    function update() {
      previews.forEach(function (preview) {
        preview.hidden = preview.getAttribute("data-target") !== select.value;
      });
    }

    select.addEventListener("change", update);
    update();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
