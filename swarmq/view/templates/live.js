// Live pages: while the experiment runs, fetch this page again every few seconds and swap its <main>;
// stop once the fresh page says it no longer needs refreshing (nothing left to run).
(function () {
  var every = 3000;
  async function refresh() {
    if (!document.body.hasAttribute("data-live")) return;
    var typing = document.activeElement && document.activeElement.closest && document.activeElement.closest("form");
    if (!document.hidden && !typing) {  // never wipe a filter being typed
      try {
        var response = await fetch(location.href);
        if (response.ok) {
          var fresh = new DOMParser().parseFromString(await response.text(), "text/html");
          document.querySelector("main").replaceWith(fresh.querySelector("main"));
          if (!fresh.body.hasAttribute("data-live")) document.body.removeAttribute("data-live");
          document.body.setAttribute("data-refreshed", String(Number(document.body.getAttribute("data-refreshed") || 0) + 1));
        }
      } catch (e) { /* the server is gone or restarting: try again later */ }
    }
    setTimeout(refresh, every);
  }
  setTimeout(refresh, every);
})();
