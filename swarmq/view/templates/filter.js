// The one-file report has every job in its list: the filters hide rows here instead of asking a server.
(function () {
  var form = document.querySelector("form.filters");
  if (!form) return;
  function apply(event) {
    if (event) event.preventDefault();
    var want = {};
    new FormData(form).forEach(function (v, k) { if (String(v).trim()) want[k] = String(v).trim().toLowerCase(); });
    var shown = 0;
    document.querySelectorAll("table.jobs tbody tr").forEach(function (row) {
      var ok = Object.keys(want).every(function (k) {
        return k === "q" ? (row.dataset.search || "").indexOf(want.q) >= 0 : (row.dataset[k] || "").toLowerCase() === want[k];
      });
      row.classList.toggle("hidden", !ok);
      if (ok) shown += 1;
    });
    document.querySelector(".matching").textContent = shown;
  }
  form.addEventListener("submit", apply);
  form.addEventListener("change", apply);
})();
