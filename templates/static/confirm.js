// Asks before a form with data-confirm is sent. The question is read from
// an attribute (HTML-escaped), never built into script text.
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
