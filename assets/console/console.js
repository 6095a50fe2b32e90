// dte-gateway console: the few things a page cannot do without a script. Every form works
// without it; this adds drag-and-drop to the batch upload and the live progress of a batch.
"use strict";

function dropZone() {
  const zone = document.getElementById("drop");
  const input = document.getElementById("file");
  if (!zone || !input) return;
  const name = document.createElement("p");
  name.className = "picked";
  name.setAttribute("aria-live", "polite");
  zone.appendChild(name);
  const show = () => { name.textContent = input.files.length ? "Archivo: " + input.files[0].name : ""; };
  input.addEventListener("change", show);
  ["dragenter", "dragover"].forEach((t) => zone.addEventListener(t, (e) => {
    e.preventDefault();
    zone.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((t) => zone.addEventListener(t, () => zone.classList.remove("over")));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer && e.dataTransfer.files.length) {
      input.files = e.dataTransfer.files;
      show();
    }
  });
}

function batchProgress() {
  const box = document.getElementById("batch");
  if (!box || !window.EventSource) return;
  const bar = document.getElementById("bar");
  const text = document.getElementById("bar-text");
  const total = Number(box.dataset.total) || 0;
  const source = new EventSource(box.dataset.events);
  // Errors the page was drawn with (all of them, not only the rows it lists).
  let problems = Number(box.dataset.problems) || 0;
  const update = (ev) => {
    let s;
    try { s = JSON.parse(ev.data); } catch (_) { return; }
    const items = s.items || {};
    const done = Object.keys(items).filter((k) => k !== "pending").reduce((n, k) => n + items[k], 0);
    const pct = total > 0 ? Math.floor((done * 100) / total) : 100;
    bar.max = Math.max(total, 1);
    bar.value = done;
    bar.textContent = pct + "%";
    text.textContent = pct + "% · " + done + " de " + total + " procesados";
    box.dataset.pct = String(pct);
    for (const [k, n] of Object.entries(items)) {
      const dd = document.querySelector('#counts dd[data-state="' + k + '"]');
      if (dd) dd.textContent = String(n);
    }
    for (const [k, n] of Object.entries(s.documents || {})) {
      const dd = document.querySelector('#counts dd[data-doc="' + k + '"]');
      if (dd) dd.textContent = String(n);
    }
    const failed = (items.failed || 0) + (items.dead || 0);
    // The error table is the server's: draw the page again when errors appeared since it was
    // drawn and nothing is pending any more (the new page counts them, so this happens once).
    if (failed > problems && !items.pending) {
      problems = failed;
      source.close();
      window.location.reload();
    }
  };
  source.addEventListener("progress", update);
  source.addEventListener("complete", (ev) => { update(ev); source.close(); box.dataset.complete = "true"; });
  source.addEventListener("error", (ev) => { if (ev.data) source.close(); });
}

document.addEventListener("DOMContentLoaded", () => {
  dropZone();
  batchProgress();
});
