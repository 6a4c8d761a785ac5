// Progressive enhancement only: every page works without this file.
// 1. Copy buttons for elements marked data-copy.
// 2. The advanced-report job list refreshes itself while jobs are queued or running.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-copy]").forEach((el) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = "Copy";
    b.className = "copy";
    b.addEventListener("click", async () => {
      try { await navigator.clipboard.writeText(el.textContent.trim()); b.textContent = "Copied"; }
      catch (e) { b.textContent = "Select and copy"; }
    });
    el.after(b);
  });
  const jobs = document.getElementById("jobs");
  if (jobs && jobs.dataset.refresh) {
    const tick = async () => {
      if (!jobs.querySelector("[data-open='true']")) return;
      try {
        const r = await fetch(jobs.dataset.refresh, { credentials: "same-origin" });
        if (r.ok) jobs.innerHTML = await r.text();
      } catch (e) { /* try again next tick */ }
      setTimeout(tick, 2000);
    };
    setTimeout(tick, 2000);
  }
});
