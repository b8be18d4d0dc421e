// Live updates for the guard screen: server-sent events, no polling.
(function () {
  "use strict";
  var W = window.WORDS;
  var panel = document.getElementById("decision");
  var recent = document.getElementById("recent");
  var CLEAR_AFTER_MS = 20000;
  var clearTimer = null;

  function text(tag, cls, value) {
    var el = document.createElement(tag);
    if (cls) el.className = cls;
    el.textContent = value;
    return el;
  }

  function showIdle() {
    panel.className = "decision idle";
    panel.replaceChildren(text("div", "outcome", W.idle));
  }

  function bump(id) {
    var el = document.getElementById(id);
    if (el) el.textContent = String(Number(el.textContent) + 1);
  }

  function showEntry(e) {
    panel.className = "decision " + e.decision;
    panel.dataset.latest = e.id;
    panel.replaceChildren(
      text("div", "outcome", W[e.decision]),
      text("div", "holder", e.holder || W.unknown_holder),
      text("div", "detail", e.format + " · " + e.status + " · " + W.app + ": " + W[e.app]),
      text("div", "reasons", e.reasons.join(", "))
    );
    var li = document.createElement("li");
    li.className = e.decision;
    li.dataset.id = e.id;
    li.append(text("time", "", e.time), " ", text("b", "", W[e.decision]), " ", e.holder || W.unknown_holder);
    recent.prepend(li);
    while (recent.children.length > 20) recent.lastElementChild.remove();
    bump("count-entries");
    bump("count-" + e.decision);
    clearTimeout(clearTimer);
    clearTimer = setTimeout(showIdle, CLEAR_AFTER_MS);
  }

  var source = new EventSource("/events");
  source.addEventListener("entry", function (ev) { showEntry(JSON.parse(ev.data)); });
})();
