// Keeps the live part of the page current without reloading it.
(function () {
  var every = parseInt(document.body.getAttribute("data-refresh-ms"), 10) || 3000;
  function refresh() {
    var url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    fetch(url, {credentials: "same-origin"}).then(function (r) {
      if (r.status === 200) { return r.text(); }
      throw new Error("status " + r.status);
    }).then(function (html) {
      document.getElementById("live").innerHTML = html;
    }).catch(function () {});
  }
  setInterval(refresh, every);
})();
