// The plan form (billing/plan_form.py): only the terms of the chosen kind show, and tier rows
// are added one at a time. Without this script every field shows, with the kinds that use it,
// and the server ignores the terms of other kinds; the table shows a few empty rows.
(() => {
  const form = document.querySelector("form[data-plan-form]");
  if (!form) return;

  const kind = form.elements.namedItem("kind");
  const sections = form.querySelectorAll("[data-plan-kinds]");
  const showKind = () => {
    sections.forEach((section) => {
      section.hidden = !section.dataset.planKinds.split(" ").includes(kind.value);
    });
  };
  if (kind) {
    kind.addEventListener("change", showKind);
    showKind();
  }
  // With the fields of the kind only, "used by ... plans" says nothing more.
  form.querySelectorAll(".plan-kinds-note").forEach((note) => { note.hidden = true; });

  const table = form.querySelector("[data-tier-rows] tbody");
  if (!table) return;
  const rows = Array.from(table.querySelectorAll("[data-tier-row]"));
  const filled = (row) => Array.from(row.querySelectorAll("input")).some((i) => i.value.trim());
  const lastFilled = rows.reduce((last, row, index) => (filled(row) ? index : last), -1);
  // The filled rows and one empty row after them; "Add a row" shows the next.
  rows.forEach((row, index) => { row.hidden = index > lastFilled + 1; });

  const add = document.createElement("button");
  add.type = "button";
  add.className = "button";
  add.textContent = "Add a row";
  const update = () => {
    add.hidden = !rows.some((row) => row.hidden);
    add.style.display = add.hidden ? "none" : "";
  };
  add.addEventListener("click", () => {
    const next = rows.find((row) => row.hidden);
    if (!next) return;
    next.hidden = false;
    const input = next.querySelector("input");
    if (input) input.focus();
    update();
  });
  table.closest("table").parentElement.after(add);
  update();
})();
