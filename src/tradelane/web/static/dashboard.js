// tradelane dashboard: tiny progressive enhancements (every page works without JavaScript).
// * <form data-confirm="question"> asks before submitting;
// * <input type="checkbox" data-select-all="FORM-ID"> toggles the checkboxes that belong to that form.
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form instanceof HTMLFormElement ? form.getAttribute("data-confirm") : null;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
document.addEventListener("change", function (event) {
  var box = event.target;
  var formId = box instanceof HTMLInputElement ? box.getAttribute("data-select-all") : null;
  if (!formId) {
    return;
  }
  document.querySelectorAll('input[type="checkbox"][form="' + formId + '"]').forEach(function (other) {
    other.checked = box.checked;
  });
});
