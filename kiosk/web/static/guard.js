// Live updates for the guard screen: server-sent events (no polling), touch overrides.
(function () {
  "use strict";
  var W = window.WORDS;
  var body = document.body;
  var panel = document.getElementById("decision");
  var actions = document.getElementById("actions");
  var recent = document.getElementById("recent");
  var health = document.getElementById("health");
  var dialog = document.getElementById("why");
  var CLEAR_AFTER_MS = Number(body.dataset.clearAfter) * 1000;
  var clearTimer = null;
  var pendingAction = null;

  function el(tag, cls, value) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (value !== undefined) e.textContent = value;
    return e;
  }

  function showIdle() {
    panel.className = "decision idle";
    panel.dataset.latest = "";
    panel.replaceChildren(el("div", "outcome", W.idle));
    actions.classList.add("hidden");
  }

  function bump(id) {
    var e = document.getElementById(id);
    if (e) e.textContent = String(Number(e.textContent) + 1);
  }

  function render(e) {
    panel.className = "decision " + e.decision;
    panel.dataset.latest = e.id;
    var detail = e.format + (e.kind ? " · " + e.kind : "") + " · " + e.status;
    var reasons = el("ul", "reasons");
    e.reasons_text.forEach(function (r) { reasons.append(el("li", "", r)); });
    var parts = [el("div", "outcome", W[e.decision]), el("div", "holder", e.holder || W.unknown_holder),
                 el("div", "detail", detail), el("div", "detail", W.app + ": " + W[e.app]), reasons];
    if (e.override) parts.push(el("div", "overridden", W.overridden + ": " + W["action_" + e.override]));
    panel.replaceChildren.apply(panel, parts);
    actions.classList.remove("hidden");
    clearTimeout(clearTimer);
    clearTimer = setTimeout(showIdle, CLEAR_AFTER_MS);
  }

  function showEntry(e) {
    var known = recent.querySelector('li[data-id="' + e.id + '"]');
    if (!known) {
      var li = el("li", e.decision);
      li.dataset.id = e.id;
      li.append(el("time", "", e.time), " ", el("b", "", W[e.decision]), " ", e.holder || W.unknown_holder);
      recent.prepend(li);
      while (recent.children.length > 20) recent.lastElementChild.remove();
      bump("count-entries");
      bump("count-" + e.decision);
    }
    render(e);
  }

  function showHealth(items) {
    health.replaceChildren.apply(health, items.map(function (h) {
      var s = el("span", h.ok ? "good" : "bad", h.label + ": " + h.text);
      s.dataset.key = h.key;
      return s;
    }));
  }

  actions.addEventListener("click", function (ev) {
    var action = ev.target.dataset.action;
    if (!action || !panel.dataset.latest) return;
    pendingAction = {action: action, entry_id: panel.dataset.latest};
    clearTimeout(clearTimer);          // the guard is deciding: keep the visitor on screen
    document.getElementById("why-error").textContent = "";
    dialog.showModal();
  });

  dialog.addEventListener("click", function (ev) {
    if (ev.target.id === "why-cancel") { dialog.close(); clearTimer = setTimeout(showIdle, CLEAR_AFTER_MS); return; }
    var reason = ev.target.dataset.reason;
    if (!reason || !pendingAction) return;
    var pin = document.getElementById("pin");
    fetch("/guard/override", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({entry_id: pendingAction.entry_id, action: pendingAction.action, reason: reason,
                            pin: pin ? pin.value : ""})})
      .then(function (r) { return r.json().then(function (j) { return [r.status, j]; }); })
      .then(function (res) {
        if (res[0] === 200) { dialog.close(); if (pin) pin.value = ""; pendingAction = null; }
        else { document.getElementById("why-error").textContent = res[1].error === "wrong_pin" ? W.wrong_pin : res[1].error; }
      });
  });

  function listen() {
    var source = new EventSource("/events?lang=" + encodeURIComponent(body.dataset.lang));
    source.addEventListener("entry", function (ev) { showEntry(JSON.parse(ev.data)); });
    source.addEventListener("health", function (ev) { showHealth(JSON.parse(ev.data)); });
    source.onerror = function () {
      // A lost connection is retried by the EventSource itself; an answer other than 200 (503:
      // too many screens open, kiosk/web/guard.py) closes it for good, so start a new one.
      if (source.readyState === EventSource.CLOSED) setTimeout(listen, 5000);
    };
  }
  listen();
  if (panel.dataset.latest) clearTimer = setTimeout(showIdle, CLEAR_AFTER_MS);
  window.kioskReady = true;
})();
