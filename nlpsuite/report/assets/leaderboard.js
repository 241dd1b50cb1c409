(function () {
  function key(cell, numeric) {
    var raw = cell.getAttribute('data-sort');
    if (numeric) { return raw === null || raw === '' ? null : parseFloat(raw); }
    return (raw === null ? cell.textContent : raw).toLowerCase();
  }
  function sortTable(table, column, direction) {
    var header = table.tHead.rows[0].cells[column];
    var numeric = header.getAttribute('data-type') === 'num';
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[column], numeric), y = key(b.cells[column], numeric);
      if (x === null || y === null) { return x === y ? 0 : (x === null ? 1 : -1); }
      var order = x < y ? -1 : (x > y ? 1 : 0);
      return direction === 'ascending' ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      th.setAttribute('aria-sort', 'none');
    });
    header.setAttribute('aria-sort', direction);
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
      th.tabIndex = 0;
      th.addEventListener('click', function () {
        var next = th.getAttribute('aria-sort') === 'ascending' ? 'descending' : 'ascending';
        sortTable(table, column, next);
      });
      th.addEventListener('keydown', function (event) {
        if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); th.click(); }
      });
    });
  });
  // Self-test for headless browsers: open the file with #selftest, read body[data-selftest].
  if (location.hash === '#selftest') {
    var report = { tables: [], plots: [] };
    document.querySelectorAll('table.sortable').forEach(function (table) {
      var heads = table.tHead.rows[0].cells;
      function column(name) {
        for (var i = 0; i < heads.length; i++) {
          if (heads[i].getAttribute('data-key') === name) { return i; }
        }
        return -1;
      }
      function values(name) {
        var c = column(name);
        return Array.prototype.map.call(table.tBodies[0].rows, function (row) {
          return row.cells[c].getAttribute('data-sort');
        });
      }
      var entry = { group: table.getAttribute('data-group'), before: values('model') };
      heads[column('model')].click();
      entry.by_model = values('model');
      heads[column('primary')].click();
      entry.primary_ascending = values('primary');
      heads[column('primary')].click();
      entry.primary_descending = values('primary');
      heads[column('rank')].click();
      entry.restored = values('model');
      report.tables.push(entry);
    });
    document.querySelectorAll('svg.plot').forEach(function (svg) {
      var box = svg.getBoundingClientRect();
      report.plots.push({ group: svg.getAttribute('data-group'), width: box.width,
        height: box.height, points: svg.querySelectorAll('circle').length,
        bars: svg.querySelectorAll('line.bar').length });
    });
    document.body.setAttribute('data-selftest', JSON.stringify(report));
  }
})();
