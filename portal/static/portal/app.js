// Bedrock Usage Portal: small progressive enhancements (the pages work without them).
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy-target]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copyTarget);
  if (!source) return;
  try {
    await navigator.clipboard.writeText(source.textContent.trim());
    button.textContent = "Copied";
  } catch (err) {
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = "Selected: press Ctrl+C";
  }
});

// Ask before destructive actions: <form data-confirm="Revoke this token?">.
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

// Select-all checkboxes for bulk actions: <input type="checkbox" data-select-all="name">.
document.addEventListener("change", (event) => {
  const name = event.target.dataset.selectAll;
  if (!name) return;
  document.querySelectorAll(`input[type=checkbox][name="${name}"]`).forEach((box) => {
    box.checked = event.target.checked;
  });
});

// A table wider than the screen scrolls inside its .table-wrap. A keyboard user can scroll it
// only once it takes focus: a wrapper that overflows and holds nothing focusable becomes a
// named, focusable region (WCAG 2.1.1); one that fits again loses it.
const FOCUSABLE = "a[href], button, input, select, textarea, summary, [tabindex]";

function tableName(wrap) {
  const caption = wrap.querySelector("caption");
  if (caption && caption.textContent.trim()) return caption.textContent.trim();
  const section = wrap.closest("section, figure");
  const heading = section && section.querySelector("h1, h2, h3, figcaption");
  if (heading && heading.textContent.trim()) return heading.textContent.trim();
  return "Table";
}

function makeScrollableTablesFocusable() {
  document.querySelectorAll(".table-wrap").forEach((wrap) => {
    const overflows = wrap.scrollWidth > wrap.clientWidth + 1;
    const managed = wrap.dataset.scrollFocus === "true";
    if (overflows && !managed && !wrap.querySelector(FOCUSABLE)) {
      wrap.dataset.scrollFocus = "true";
      wrap.setAttribute("tabindex", "0");
      wrap.setAttribute("role", "region");
      wrap.setAttribute("aria-label", `${tableName(wrap)} (scrolls sideways)`);
    } else if (!overflows && managed) {
      delete wrap.dataset.scrollFocus;
      ["tabindex", "role", "aria-label"].forEach((name) => wrap.removeAttribute(name));
    }
  });
}

document.addEventListener("DOMContentLoaded", makeScrollableTablesFocusable);
window.addEventListener("resize", makeScrollableTablesFocusable);
document.addEventListener("htmx:afterSettle", makeScrollableTablesFocusable);
document.addEventListener("toggle", makeScrollableTablesFocusable, true); // <details> opened
