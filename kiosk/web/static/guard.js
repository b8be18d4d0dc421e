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
  var shown = window.LATEST; // the entry on the panel (the page comes with the latest)
  var locked = null;         // the open dialog: {lock, entry_id, action}; fixed while it is open
  var queued = [];           // entries that arrived while the dialog was open, in order

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
    shown = e;
    panel.className = "decision " + e.decision + (e.prompt ? " with-prompt" : "");
    panel.dataset.latest = e.id;
    var detail = e.format + (e.kind ? " · " + e.kind : "") + " · " + e.status;
    var reasons = el("ul", "reasons");
    e.reasons_text.forEach(function (r) { reasons.append(el("li", "", r)); });
    // A guard's allow or deny is the outcome itself ("Bảo vệ cho vào" on green).
    var outcome = (e.override === "allow" || e.override === "deny") ? W["overridden_" + e.override] : W[e.decision];
    var parts = [el("div", "outcome", outcome), el("div", "holder", e.holder || W.unknown_holder),
                 el("div", "detail", detail), el("div", "detail", W.app + ": " + e.app_text), reasons];
    if (e.prompt) parts.push(prompt(e.prompt));
    if (e.override) parts.push(el("div", "overridden", W["overridden_" + e.override] + ": " + e.override_reason +
                                  " · " + W.door_said + ": " + W[e.door_decision]));
    panel.replaceChildren.apply(panel, parts);
    actions.classList.remove("hidden");
    clearTimeout(clearTimer);
    clearTimer = setTimeout(showIdle, CLEAR_AFTER_MS);
  }

  function bumpDown(id) {
    var e = document.getElementById(id);
    if (e) e.textContent = String(Math.max(0, Number(e.textContent) - 1));
  }

  function recentItem(e) {
    var li = el("li", e.decision);
    li.dataset.id = e.id;
    li.dataset.decision = e.decision;
    li.append(el("time", "", e.time), " ", el("b", "", W[e.decision]), " ", e.holder || W.unknown_holder);
    return li;
  }

  function showEntry(e) {
    if (locked) {                      // the dialog stays on its entry: the rest waits
      queued.push(e);
      var note = document.getElementById("why-queued");
      note.textContent = queued.length + " " + W.queued;
      return;
    }
    var known = recent.querySelector('li[data-id="' + e.id + '"]');
    if (!known) {
      recent.prepend(recentItem(e));
      while (recent.children.length > 20) recent.lastElementChild.remove();
      bump("count-" + e.decision);
    } else if (known.dataset.decision !== e.decision) {     // an override changed the final decision
      bumpDown("count-" + (known.dataset.decision || known.className));
      bump("count-" + e.decision);
      known.replaceWith(recentItem(e));
    } else {
      known.replaceWith(recentItem(e));
    }
    // An update of an older entry (its override) must not cover a newer visitor on the panel.
    if (!shown || e.id >= shown.id) render(e);
  }

  function closeDialog() {
    if (dialog.open) dialog.close();
    locked = null;
    document.getElementById("why-queued").textContent = "";
    var waiting = queued;
    queued = [];
    waiting.forEach(showEntry);
    clearTimeout(clearTimer);
    clearTimer = setTimeout(showIdle, CLEAR_AFTER_MS);
  }

  function post(url, payload) {
    return fetch(url + "?lang=" + encodeURIComponent(body.dataset.lang), {method: "POST",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify(payload)})
      .then(function (r) { return r.json().then(function (j) { return [r.status, j]; }); });
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

  // The dialog is locked to the entry on the panel when the guard touches an action: the
  // server answers its question ("Cho Trần Thị Bình vào?") and a key bound to that entry and
  // action, and the choice carries both. A visitor decided meanwhile waits in `queued`.
  actions.addEventListener("click", function (ev) {
    var action = ev.target.dataset.action;
    if (!action || !shown || !panel.dataset.latest || locked) return;
    var entry = shown;
    locked = {lock: null, entry_id: entry.id, action: action};
    clearTimeout(clearTimer);          // the guard is deciding: keep the visitor on screen
    document.getElementById("why-question").textContent = W["question_" + action].replace("{name}", entry.holder || W.unknown_holder);
    document.getElementById("why-detail").textContent = entry.time + " · " + W.now_shown + ": " + W[entry.decision];
    document.getElementById("why-error").textContent = "";
    dialog.querySelectorAll(".why-list").forEach(function (list) { list.classList.add("hidden"); });
    dialog.dataset.entry = entry.id;
    dialog.dataset.action = action;
    dialog.showModal();
    post("/guard/override/open", {entry_id: entry.id, action: action}).then(function (res) {
      if (!locked || locked.entry_id !== entry.id) return;
      if (res[0] !== 200) { document.getElementById("why-error").textContent = res[1].message || res[1].error; return; }
      locked.lock = res[1].lock;
      document.getElementById("why-question").textContent = res[1].question;
      dialog.querySelector('.why-list[data-for="' + action + '"]').classList.remove("hidden");
    });
  });

  dialog.addEventListener("cancel", function (ev) { ev.preventDefault(); closeDialog(); });
  dialog.addEventListener("click", function (ev) {
    if (ev.target.id === "why-cancel") { closeDialog(); return; }
    var reason = ev.target.dataset.reason;
    if (!reason || !locked || !locked.lock) return;
    var pin = document.getElementById("pin");
    var choice = locked;
    post("/guard/override", {entry_id: choice.entry_id, action: choice.action, reason: reason, lock: choice.lock,
                             pin: pin ? pin.value : ""})
      .then(function (res) {
        if (res[0] === 200) {
          if (pin) pin.value = "";
          closeDialog();
          showEntry(res[1].entry);
        } else {
          document.getElementById("why-error").textContent = res[1].message || res[1].error;
        }
      });
  });

  function listen() {
    var source = new EventSource("/events?lang=" + encodeURIComponent(body.dataset.lang));
    source.addEventListener("entry", function (ev) { showEntry(JSON.parse(ev.data)); });
    source.addEventListener("health", function (ev) { showHealth(JSON.parse(ev.data)); });
    source.addEventListener("faults", function (ev) { showFaults(JSON.parse(ev.data)); });
    source.onerror = function () {
      // A lost connection is retried by the EventSource itself; an answer other than 200
      // closes it for good, so start a new one.
      if (source.readyState === EventSource.CLOSED) setTimeout(listen, 5000);
    };
  }
  listen();
  if (panel.dataset.latest) clearTimer = setTimeout(showIdle, CLEAR_AFTER_MS);
  window.kioskReady = true;
})();
