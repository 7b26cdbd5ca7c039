/*
 * Keeps a request page's transition status current without reloading it.
 *
 * The page embeds its status with json_script (<script type="application/json"
 * id="request-status">): {url, decision, status, execution, state, state_class, attempts, error,
 * outcome, stalled, retry_blocked, revision, live, poll}; `stalled` says so when no worker is
 * there to take the transition's job, `retry_blocked` why a failed one cannot be retried. While
 * `live` is true (open, or approved and not yet carried out) this asks `url` for the same object
 * (a conditional GET: an unchanged request costs an empty 304), every second or so while the
 * transition runs (`poll`) and every few seconds while votes are awaited. The status text is
 * written with textContent only: the error and the outcome sentence can hold MLflow names, which
 * are untrusted. When `revision` (the request's last audit event) moves on, a vote, comment or
 * decision happened: the page's live parts ([data-live]: decision, sign-offs, actions, activity)
 * are replaced by the same parts of the page fetched again, which the server rendered and
 * escaped, except a part the user is typing in.
 */
(function () {
  "use strict";

  var FIRST_DELAY = 1000;
  var MAX_DELAY = 10000;
  // While votes are awaited nothing is urgent: a vote shows within half a minute at most.
  var PENDING_FIRST_DELAY = 3000;
  var PENDING_MAX_DELAY = 30000;

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

  // The user is typing in it, or has moved into it: leave it as it is.
  function busy(part) {
    if (document.activeElement && document.activeElement !== document.body &&
        part.contains(document.activeElement)) {
      return true;
    }
    var fields = part.querySelectorAll("textarea, input[type=text]");
    for (var i = 0; i < fields.length; i += 1) {
      if (fields[i].value !== fields[i].defaultValue) {
        return true;
      }
    }
    return false;
  }

  function refreshParts() {
    var address = window.location.pathname + window.location.search;
    return fetch(address, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("page " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (part) {
          var next = fresh.getElementById(part.id);
          if (next && !busy(part)) {
            part.replaceWith(document.importNode(next, true));
          }
        });
      });
  }

  function start() {
    var source = byId("request-status");
    if (!source || !window.fetch) {
      return;
    }
    var status = JSON.parse(source.textContent);
    if (!status.live) {
      return;
    }
    var revision = status.revision;
    var delay = status.poll ? FIRST_DELAY : PENDING_FIRST_DELAY;

    function next_delay(next, changed) {
      var first = next.poll ? FIRST_DELAY : PENDING_FIRST_DELAY;
      var most = next.poll ? MAX_DELAY : PENDING_MAX_DELAY;
      return changed ? first : Math.min(Math.max(delay, first) * 1.5, most);
    }

    function poll() {
      fetch(status.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) {
            throw new Error("status " + response.status);
          }
          return response.json();
        })
        .then(function (next) {
          var changed = next.revision !== revision;
          var refreshed = changed ? refreshParts() : Promise.resolve();
          return refreshed.then(function () {
            revision = next.revision;
            apply(next);
            if (next.live) {
              delay = next_delay(next, changed);
              window.setTimeout(poll, delay);
            }
          });
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
