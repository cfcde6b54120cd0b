// sfbench report: sort any table.sortable by a header click; filter the leaderboard tables.
// Plain JavaScript, no library, so the site works from file:// without a network.
(function () {
  "use strict";

  function cellValue(row, index, type) {
    var cell = row.cells[index];
    if (!cell) { return type === "num" ? -Infinity : ""; }
    var raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
    if (type === "num") {
      var x = parseFloat(raw);
      return isNaN(x) ? -Infinity : x;
    }
    return raw.toLowerCase();
  }

  function sortBy(table, th) {
    var index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var type = th.getAttribute("data-type") || "text";
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(th.parentNode.children, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, index, type), y = cellValue(b, index, type);
      var order = x < y ? -1 : (x > y ? 1 : 0);
      return ascending ? order : -order;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }

  function setUpSorting() {
    document.querySelectorAll("table.sortable").forEach(function (table) {
      table.querySelectorAll("thead th").forEach(function (th) {
        th.addEventListener("click", function () { sortBy(table, th); });
      });
    });
  }

  function setUpFilters() {
    var form = document.getElementById("filters");
    if (!form) { return; }
    var rows = Array.prototype.slice.call(document.querySelectorAll("table.leaderboard tbody tr"));
    var selects = Array.prototype.slice.call(form.querySelectorAll("select[data-filter]"));
    var search = document.getElementById("search");
    selects.forEach(function (select) {
      var key = select.getAttribute("data-filter");
      var values = {};
      rows.forEach(function (r) { values[r.getAttribute("data-" + key)] = true; });
      Object.keys(values).sort().forEach(function (v) {
        var option = document.createElement("option");
        option.value = v;
        option.textContent = v;
        select.appendChild(option);
      });
    });

    function apply() {
      var text = (search.value || "").toLowerCase();
      var shown = 0;
      rows.forEach(function (r) {
        var ok = selects.every(function (s) {
          return !s.value || r.getAttribute("data-" + s.getAttribute("data-filter")) === s.value;
        });
        ok = ok && (!text || r.textContent.toLowerCase().indexOf(text) !== -1);
        r.hidden = !ok;
        if (ok) { shown += 1; }
      });
      document.querySelectorAll("section.protocol").forEach(function (section) {
        section.hidden = !section.querySelector("tbody tr:not([hidden])");
      });
      document.getElementById("shown").textContent = shown + " of " + rows.length + " rows";
      document.getElementById("nothing").hidden = shown !== 0;
    }

    selects.forEach(function (s) { s.addEventListener("change", apply); });
    search.addEventListener("input", apply);
    apply();
  }

  setUpSorting();
  setUpFilters();
}());
