/*
 * A form is sent once: after a POST form is submitted its submit buttons are disabled, so a
 * double click on "Approve" sends one vote, not two (the second answered "You already voted").
 *
 * The buttons are disabled after the submit event has run, so the button clicked still sends
 * its name and value (decision=approve). A page restored from the back/forward cache gets its
 * buttons back. Listening on the document keeps this working for parts of the page that
 * request_status.js replaces.
 */
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (event.defaultPrevented || (form.method || "").toLowerCase() !== "post") {
      return;
    }
    window.setTimeout(function () {
      form.querySelectorAll("button[type=submit], button:not([type]), input[type=submit]")
        .forEach(function (button) {
          button.disabled = true;
          button.setAttribute("aria-disabled", "true");
        });
      form.setAttribute("aria-busy", "true");
    }, 0);
  });

  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) {
      return;
    }
    document.querySelectorAll("form[aria-busy=true]").forEach(function (form) {
      form.removeAttribute("aria-busy");
      form.querySelectorAll("[aria-disabled=true]").forEach(function (button) {
        button.disabled = false;
        button.removeAttribute("aria-disabled");
      });
    });
  });
})();
