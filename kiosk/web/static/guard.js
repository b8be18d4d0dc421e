// Live updates for the guard screen: server-sent events (no polling), touch overrides.
(function () {
  "use strict";
  var W = window.WORDS;
  var body = document.body;
  var panel = document.getElementById("decision");
  var actions = document.getElementById("actions");
  var recent = document.getElementById("recent");
  var health = document.getElementById("health");
  var banners = document.getElementById("banners");
  var appQr = document.getElementById("app-qr");
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

  // With the camera down the idle panel says so and stops inviting visitors to scan.
  function showIdle() {
    var cameraDown = panel.dataset.cameraDown;
    panel.className = "decision " + (cameraDown ? "fault" : "idle");
    panel.dataset.latest = "";
    panel.replaceChildren(el("div", "outcome", cameraDown || W.idle));
    actions.classList.add("hidden");
  }

  // The visitor's words when their app is not heard: install it (with the install page's QR
  // code), or bring it to the foreground (an iPhone heard only in the background).
  function prompt(kind) {
    var box = el("div", "prompt");
    box.dataset.prompt = kind;
    if (kind === "install") box.append(appQr.content.cloneNode(true));
    var ask = el("div", "ask");
    ask.append(el("b", "", W["prompt_" + kind]), el("span", "", W["prompt_" + kind + "_steps"]));
    box.append(ask);
    return box;
  }

  function bump(id) {
    var e = document.getElementById(id);
    if (e) e.textContent = String(Number(e.textContent) + 1);
  }

  function render(e) {
    panel.className = "decision " + e.decision + (e.prompt ? " with-prompt" : "");
    panel.dataset.latest = e.id;
    var detail = e.format + (e.kind ? " · " + e.kind : "") + " · " + e.status;
    var reasons = el("ul", "reasons");
    e.reasons_text.forEach(function (r) { reasons.append(el("li", "", r)); });
    var parts = [el("div", "outcome", W[e.decision]), el("div", "holder", e.holder || W.unknown_holder),
                 el("div", "detail", detail), el("div", "detail", W.app + ": " + e.app_text), reasons];
    if (e.prompt) parts.push(prompt(e.prompt));
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
      bump("count-" + e.decision);
    }
    render(e);
  }

  function showFaults(f) {
    var wasDown = panel.dataset.cameraDown;
    panel.dataset.cameraDown = f.camera_down || "";
    if (!panel.dataset.latest && wasDown !== panel.dataset.cameraDown) showIdle();
    banners.replaceChildren.apply(banners, f.banners.map(function (b) {
      var d = el("div", "banner " + b.level, b.text);
      d.dataset.key = b.key;
      return d;
    }));
  }

  function showHealth(items) {
    health.replaceChildren.apply(health, items.map(function (h) {
      // red only for a part that does not work; amber for one that works with a limit
      var s = el("span", h.state === "ok" ? "good" : h.state === "degraded" ? "warn" : "bad", h.label + ": " + h.text);
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

  var source = new EventSource("/events?lang=" + encodeURIComponent(body.dataset.lang));
  source.addEventListener("entry", function (ev) { showEntry(JSON.parse(ev.data)); });
  source.addEventListener("health", function (ev) { showHealth(JSON.parse(ev.data)); });
  source.addEventListener("faults", function (ev) { showFaults(JSON.parse(ev.data)); });
  if (panel.dataset.latest) clearTimer = setTimeout(showIdle, CLEAR_AFTER_MS);
  window.kioskReady = true;
})();
