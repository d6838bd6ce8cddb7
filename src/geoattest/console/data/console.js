// The console's live updates: server-sent events from /events, nothing else.
// The fleet page fetches its map again when the fleet moves; the alerts and fleet pages
// put each new alert at the top of their table. Chips on a map open their device page.
(function () {
  "use strict";
  var data = JSON.parse(document.body.dataset.console || "{}");

  function openDevice(event) {
    var chip = event.target.closest(".chip");
    if (!chip) { return; }
    var first = (chip.dataset.devices || "").split(" ")[0];
    if (first) { window.location.href = "/devices/" + encodeURIComponent(first); }
  }
  document.addEventListener("click", openDevice);

  if (data.page !== "fleet" && data.page !== "alerts") { return; }
  var params = new URLSearchParams({ cursor: String(data.cursor || 0) });
  if (data.kind) { params.set("kind", data.kind); }
  if (data.device) { params.set("device", data.device); }
  var source = new EventSource("/events?" + params.toString());

  source.addEventListener("alert", function (event) {
    var body = document.querySelector("#alerts tbody");
    if (!body) { return; }
    body.insertAdjacentHTML("afterbegin", JSON.parse(event.data).html);
  });

  if (data.page !== "fleet") { return; }
  var shown = null;
  source.addEventListener("fleet", function (event) {
    var version = JSON.parse(event.data).version;
    if (shown === null) { shown = version; return; }  // the page already shows it
    if (version === shown) { return; }
    shown = version;
    fetch("/fleet/map.svg?v=" + version).then(function (r) { return r.text(); })
      .then(function (svg) { document.getElementById("fleet-map").innerHTML = svg; });
    fetch("/fleet.json").then(function (r) { return r.json(); }).then(function (counts) {
      Object.keys(counts.verdicts).forEach(function (v) {
        var cell = document.querySelector("[data-count-verdict='" + v + "']");
        if (cell) { cell.textContent = counts.verdicts[v]; }
      });
      Object.keys(counts.states).forEach(function (s) {
        var cell = document.querySelector("[data-count-state='" + s + "']");
        if (cell) { cell.textContent = counts.states[s]; }
      });
    });
  });
}());
