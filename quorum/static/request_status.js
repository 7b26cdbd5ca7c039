/*
 * Keeps a request page's transition status current without reloading it.
 *
 * The page embeds its status with json_script (<script type="application/json"
 * id="request-status">): {url, decision, status, execution, state, state_class, attempts, error,
 * outcome, stalled, retry_blocked, poll}; `stalled` says so when no worker is there to take the
 * transition's job, `retry_blocked` why a failed one cannot be retried. While
 * `poll` is true (approved, transition queued or running) this asks `url` for the same object
 * every few seconds and writes the text into the page with textContent only: the error and the
 * outcome sentence can hold MLflow names, which are untrusted.
 */
(function () {
  "use strict";

  var FIRST_DELAY = 1000;
  var MAX_DELAY = 10000;

  function byId(id) {
    return document.getElementById(id);
  }

  function show(element, visible) {
    if (element) {
      element.hidden = !visible;
    }
  }

  function setText(element, text) {
    if (element && element.textContent !== text) {
      element.textContent = text;
    }
  }

  function capitalise(text) {
    return text ? text.charAt(0).toUpperCase() + text.slice(1) : text;
  }

  function apply(status) {
    var badge = byId("status-badge");
    if (badge) {
      setText(badge, status.state);
      badge.className = "badge badge-large " + status.state_class;
    }
    setText(byId("decision-label"), status.decision_label);
    var execution = byId("execution");
    if (execution) {
      execution.className = "execution execution-" + (status.execution || "none");
    }
    setText(byId("execution-label"), status.execution_label);
    var attempts = byId("execution-attempts");
    if (attempts && status.attempts > 1) {
      setText(attempts, "(attempt " + status.attempts + ")");
    }
    show(byId("execution-spinner"), status.poll);
    var outcome = byId("execution-outcome");
    setText(outcome, capitalise(status.outcome));
    show(outcome, Boolean(status.outcome));
    var error = byId("execution-error");
    setText(error, status.error);
    show(error, status.execution === "failed" && Boolean(status.error));
    // A failure no retry can change (the version is gone from MLflow) says why instead.
    show(byId("retry-form"), status.execution === "failed" && !status.retry_blocked);
    var blocked = byId("retry-blocked");
    setText(blocked, status.retry_blocked || "");
    show(blocked, status.execution === "failed" && Boolean(status.retry_blocked));
    var stalled = byId("execution-stalled");
    setText(stalled, status.stalled || "");
    show(stalled, Boolean(status.stalled));
  }

  function start() {
    var source = byId("request-status");
    if (!source || !window.fetch) {
      return;
    }
    var status = JSON.parse(source.textContent);
    if (!status.poll) {
      return;
    }
    var delay = FIRST_DELAY;

    function poll() {
      fetch(status.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) {
            throw new Error("status " + response.status);
          }
          return response.json();
        })
        .then(function (next) {
          apply(next);
          if (next.poll) {
            delay = Math.min(delay * 1.5, MAX_DELAY);
            window.setTimeout(poll, delay);
          }
        })
        .catch(function () {
          // The server restarted or the network dropped: keep trying, more slowly.
          delay = MAX_DELAY;
          window.setTimeout(poll, delay);
        });
    }

    window.setTimeout(poll, delay);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
