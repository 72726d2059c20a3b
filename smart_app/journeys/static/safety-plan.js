// Safety plan form, progressive enhancement: "Add another row" adds one empty row to its own
// section in place and moves focus to it. Without JavaScript the button posts the form and the
// server redraws it with one more row, opening at the new row (the button's formaction fragment).
const renumber = (el, from, to) => {
  for (const attr of ["id", "name", "for", "aria-describedby"]) {
    const value = el.getAttribute(attr);
    if (value) el.setAttribute(attr, value.split(from).join(to));
  }
};

document.querySelectorAll("button.app-add-row").forEach((button) => {
  button.addEventListener("click", (event) => {
    const fieldset = button.closest("fieldset");
    const rows = fieldset ? fieldset.querySelectorAll(".app-item-row") : [];
    if (!rows.length) return; // let the form post: the server adds the row
    event.preventDefault();
    const code = button.dataset.section;
    const n = rows.length;
    const last = rows[n - 1];
    const row = last.cloneNode(true);
    const from = `${code}-${n - 1}-`;
    const to = `${code}-${n}-`;
    row.querySelectorAll("[id], [name], [for], [aria-describedby]").forEach((el) => renumber(el, from, to));
    row.querySelectorAll("label").forEach((label) => {
      label.textContent = label.textContent.replace(/item \d+/, `item ${n + 1}`);
    });
    row.querySelectorAll(".nhsuk-error-message").forEach((el) => el.remove());
    row.querySelectorAll(".nhsuk-form-group--error").forEach((el) => el.classList.remove("nhsuk-form-group--error"));
    row.querySelectorAll(".nhsuk-textarea--error, .nhsuk-select--error").forEach((el) => {
      el.classList.remove("nhsuk-textarea--error", "nhsuk-select--error");
    });
    row.querySelectorAll("textarea").forEach((el) => { el.value = ""; });
    row.querySelectorAll("select").forEach((el) => { el.selectedIndex = 0; });
    last.after(row);
    const action = button.getAttribute("formaction");
    if (action) button.setAttribute("formaction", `${action.split("#")[0]}#${code}-${n + 1}-text`);
    const box = row.querySelector("textarea");
    if (box) box.focus();
  });
});
