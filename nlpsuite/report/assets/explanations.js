(function () {
  // Attention view: the data of each record travels as JSON in script.attention-data.
  var BLUE = [47, 111, 223];
  function weightText(w) { return w >= 0.995 ? '1.0' : w.toFixed(2).replace(/^0/, ''); }
  function cellColour(w) {
    var share = Math.max(0, Math.min(1, w));
    var mix = BLUE.map(function (c) { return Math.round(255 + (c - 255) * share); });
    return 'rgb(' + mix.join(',') + ')';
  }
  function layerTable(data, layer) {
    var table = document.createElement('table');
    table.className = 'att';
    table.setAttribute('data-layer', layer);
    table.createCaption().textContent = 'layer ' + (layer + 1);
    var head = table.createTHead().insertRow();
    head.appendChild(document.createElement('th'));
    data.words.forEach(function (word) {
      var th = document.createElement('th');
      th.textContent = word;
      head.appendChild(th);
    });
    var body = table.createTBody();
    data.weights[layer].forEach(function (_, h) {
      var row = body.insertRow();
      row.setAttribute('data-head', h);
      var th = document.createElement('th');
      th.textContent = 'head ' + (h + 1);
      row.appendChild(th);
      data.words.forEach(function () { row.insertCell(); });
    });
    return table;
  }
  function show(view, from) {
    var data = view.data;
    view.select.value = String(from);
    view.tables.forEach(function (table, layer) {
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
        th.classList.toggle('chosen', i - 1 === from);
      });
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row, h) {
        data.weights[layer][h][from].forEach(function (w, to) {
          var cell = row.cells[to + 1];
          cell.textContent = weightText(w);
          cell.setAttribute('data-w', String(w));
          cell.title = 'layer ' + (layer + 1) + ', head ' + (h + 1) + ': ' +
            data.words[from] + ' \u2192 ' + data.words[to] + ' ' + w.toFixed(4);
          cell.style.background = cellColour(w);
          cell.style.color = w > 0.55 ? '#fff' : '';
        });
      });
    });
    view.row.querySelectorAll('span.w').forEach(function (span) {
      span.classList.toggle('chosen', Number(span.getAttribute('data-i')) === from);
    });
    view.from = from;
  }
  var views = [];
  document.querySelectorAll('div.attention').forEach(function (box) {
    var number = box.getAttribute('data-record');
    var data = JSON.parse(box.querySelector('script.attention-data').textContent);
    var view = {
      number: number, data: data, select: box.querySelector('select.from'), from: 0,
      row: document.querySelector('tr.example[data-record="' + number + '"]'), tables: []
    };
    data.words.forEach(function (word, i) {
      var option = document.createElement('option');
      option.value = String(i);
      option.textContent = (i + 1) + '. ' + word;
      view.select.appendChild(option);
    });
    var grids = box.querySelector('.grids');
    data.weights.forEach(function (_, layer) {
      var table = layerTable(data, layer);
      grids.appendChild(table);
      view.tables.push(table);
    });
    view.select.addEventListener('change', function () { show(view, Number(view.select.value)); });
    view.row.querySelectorAll('span.w').forEach(function (span) {
      span.addEventListener('click', function () { show(view, Number(span.getAttribute('data-i'))); });
    });
    if (data.words.length) { show(view, 0); }
    views.push(view);
  });

  // Self-test for headless browsers: open the file with #selftest, read body[data-selftest].
  if (location.hash === '#selftest') {
    var shown = function (view) {
      return {
        from: view.from, select: view.select.value,
        weights: view.tables.map(function (table) {
          return Array.prototype.map.call(table.tBodies[0].rows, function (row) {
            return Array.prototype.slice.call(row.cells, 1).map(function (cell) {
              return Number(cell.getAttribute('data-w'));
            });
          });
        })
      };
    };
    var report = {
      rows: Array.prototype.map.call(document.querySelectorAll('tr.example'), function (row) {
        return {
          record: row.getAttribute('data-record'),
          text: row.querySelector('td.heat').textContent,
          words: Array.prototype.map.call(row.querySelectorAll('span.w'), function (span) {
            return { text: span.textContent, score: Number(span.getAttribute('data-score')),
                     title: span.title, background: getComputedStyle(span).backgroundColor };
          })
        };
      }),
      attention: views.map(function (view) {
        var entry = { record: view.number, before: shown(view) };
        var spans = view.row.querySelectorAll('span.w');
        var last = spans[spans.length - 1];
        last.click();
        entry.clicked = Number(last.getAttribute('data-i'));
        entry.after = shown(view);
        return entry;
      })
    };
    document.body.setAttribute('data-selftest', JSON.stringify(report));
  }
})();
