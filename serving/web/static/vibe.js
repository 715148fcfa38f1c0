// Small conveniences for the vibe-check page; everything works without it.
document.addEventListener("DOMContentLoaded", () => {
  // A good's own image that fails to load falls back to its generated tile.
  document.querySelectorAll("img[data-tile]").forEach((img) => {
    img.addEventListener("error", () => {
      if (img.src.indexOf(img.dataset.tile) < 0) img.src = img.dataset.tile;
    }, { once: true });
  });
  // Choosing a run shows it at once.
  document.querySelectorAll("#runpick select").forEach((sel) => {
    sel.addEventListener("change", () => sel.form.submit());
  });
  // "/" focuses the search, "r" opens a random user.
  document.addEventListener("keydown", (e) => {
    const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName);
    if (typing || e.metaKey || e.ctrlKey || e.altKey) return;
    if (e.key === "/") { e.preventDefault(); document.getElementById("q").focus(); }
    if (e.key === "r") { document.getElementById("random").click(); }
  });
});
