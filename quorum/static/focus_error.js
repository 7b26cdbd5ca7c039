/*
 * After a refused form, moves the keyboard focus to what went wrong.
 *
 * A page that comes back with a refusal (a form's error box, a field's error, an error message
 * after a redirect, a vote or comment refused on a page that had gone stale) would otherwise leave focus at the top of the page, or in a field far from
 * the message: a keyboard or screen reader user would not know the action failed. The first
 * refusal on the page gets the focus (and is read out); nothing happens on a page without one.
 */
(function () {
  "use strict";

  var REFUSALS =
    "main .error-box, main .field-error, main .message-error, main .notice-bad[role=alert]";

  function focusRefusal() {
    var refusal = document.querySelector(REFUSALS);
    if (!refusal) {
      return;
    }
    // Focusable from script only: it is a message, not a control to tab to.
    refusal.setAttribute("tabindex", "-1");
    refusal.focus();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", focusRefusal);
  } else {
    focusRefusal();
  }
})();
