// itsmd dashboard: refresh the incident list from the JSON API and send ack/resolve and approve/reject as JSON.
// Data is only ever set with textContent (never innerHTML), so alert values stay text.
"use strict";

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function incidentRow(i) {
  const tr = el("tr", null, "prio-" + i.priority);
  const idCell = el("td");
  const link = el("a", i.id);
  link.href = "/incidents/" + encodeURIComponent(i.id);
  idCell.appendChild(link);
  tr.appendChild(idCell);
  const prio = el("td");
  prio.appendChild(el("span", i.priority, "badge prio"));
  tr.appendChild(prio);
  const state = el("td");
  state.appendChild(el("span", i.state, "badge state-" + i.state));
  tr.appendChild(state);
  tr.appendChild(el("td", i.title));
  tr.appendChild(el("td", i.service || ""));
  tr.appendChild(el("td", i.firing_count + " / " + i.alert_count));
  const opened = el("td");
  opened.appendChild(el("time", i.opened_at));
  tr.appendChild(opened);
  return tr;
}

function startRefresh(status) {
  const seconds = Number(status.dataset.refresh);
  if (!(seconds > 0)) return;
  const params = new URLSearchParams({ limit: status.dataset.limit });
  for (const name of ["state", "service", "priority"]) {
    if (status.dataset[name]) params.set(name, status.dataset[name]);
  }
  const tbody = document.querySelector("#incidents tbody");
  async function refresh() {
    try {
      const resp = await fetch("/api/v1/incidents?" + params.toString(), { headers: { Accept: "application/json" } });
      const body = await resp.json();
      if (!resp.ok) throw new Error(body.error || resp.statusText);
      const rows = body.items.map(incidentRow);
      if (rows.length === 0) {
        const empty = el("tr", null, "empty");
        const cell = el("td", "No incidents match.");
        cell.colSpan = 7;
        empty.appendChild(cell);
        rows.push(empty);
      }
      tbody.replaceChildren(...rows);
      status.classList.remove("error");
      status.textContent = "Live: updated " + new Date().toLocaleTimeString() + ", every " + seconds + " s.";
      status.dataset.updated = String(Date.now());
    } catch (err) {
      status.classList.add("error");
      status.textContent = "Refresh failed: " + err.message;
    }
  }
  setInterval(refresh, seconds * 1000);
}

function wireActions(box) {
  const id = box.dataset.incident;
  const status = box.querySelector(".status");
  for (const button of box.querySelectorAll("button[data-action]")) {
    button.addEventListener("click", async () => {
      const action = button.dataset.action;
      for (const b of box.querySelectorAll("button")) b.disabled = true;
      status.classList.remove("error");
      status.textContent = "Sending " + action + "…";
      try {
        const resp = await fetch("/api/v1/incidents/" + encodeURIComponent(id) + "/" + action, {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: "{}",
        });
        const body = await resp.json();
        if (!resp.ok) throw new Error(body.error || resp.statusText);
        status.textContent = "Done: " + body.state + ".";
        window.location.reload();
      } catch (err) {
        status.classList.add("error");
        status.textContent = action + " failed: " + err.message;
        for (const b of box.querySelectorAll("button")) b.disabled = false;
      }
    });
  }
}

function wireDecision(box, status) {
  const id = box.dataset.run;
  const comment = box.querySelector("input[name=comment]");
  for (const button of box.querySelectorAll("button[data-decision]")) {
    button.addEventListener("click", async () => {
      const decision = button.dataset.decision;
      for (const b of box.querySelectorAll("button")) b.disabled = true;
      status.classList.remove("error");
      status.textContent = "Sending " + decision + " for " + id + "…";
      const body = comment && comment.value ? { comment: comment.value } : {};
      try {
        const resp = await fetch("/api/v1/runs/" + encodeURIComponent(id) + "/" + decision, {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify(body),
        });
        const run = await resp.json();
        if (!resp.ok) throw new Error(run.error || resp.statusText);
        const done = decision === "approve" ? "approved by " + run.approved_by : "rejected";
        box.replaceChildren(el("span", done + " (" + run.state + ")", "badge run-" + run.state));
        status.textContent = id + " " + done + ": it is " + run.state + " now.";
      } catch (err) {
        status.classList.add("error");
        status.textContent = decision + " of " + id + " failed: " + err.message;
        for (const b of box.querySelectorAll("button")) b.disabled = false;
      }
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const status = document.getElementById("refresh-status");
  if (status) startRefresh(status);
  const actions = document.querySelector(".actions[data-incident]");
  if (actions) wireActions(actions);
  const approvalStatus = document.getElementById("approval-status");
  for (const box of document.querySelectorAll(".decision[data-run]")) wireDecision(box, approvalStatus);
});
