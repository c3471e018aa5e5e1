"use strict";
document.getElementById("signin").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const key = document.getElementById("key").value.trim();
  const r = await fetch("/dashboard/session", {
    method: "POST",
    headers: {"content-type": "application/json"},
    body: JSON.stringify({key}),
  });
  if (r.ok) { location.href = "/dashboard"; return; }
  document.getElementById("error").textContent = "That key is not valid.";
});
