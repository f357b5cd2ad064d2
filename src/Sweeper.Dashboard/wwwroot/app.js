// Shared helpers: API calls carrying the access token, formatting, and small canvas charts (no outside libraries).
const token = new URLSearchParams(location.search).get('token');
function link(path) { return token ? `${path}${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}` : path; }
async function api(path) {
  const response = await fetch(path, { headers: token ? { Authorization: 'Bearer ' + token } : {} });
  const body = await response.json();
  if (!response.ok) { throw new Error(body.error || response.statusText); }
  return body;
}
function esc(s) { return String(s ?? '').replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c])); }
function fmt(v) { return v === null || v === undefined ? '-' : (typeof v === 'number' ? (Math.abs(v) < 1e-3 && v !== 0 ? v.toExponential(2) : +v.toPrecision(4)) : esc(v)); }

function prepare(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * ratio; canvas.height = h * ratio;
  const g = canvas.getContext('2d');
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, w, h); g.font = '11px system-ui'; g.fillStyle = '#1d2330';
  return { g, w, h };
}
// Validation accuracy to colour: low = blue, high = red.
function colour(t) { t = Math.max(0, Math.min(1, t)); return `hsl(${240 - 240 * t}, 80%, 45%)`; }

function scatter(canvas, points, xLabel, yLabel) {
  const { g, w, h } = prepare(canvas);
  const pad = 40;
  const usable = points.filter(p => p.x > 0 && p.y > 0);
  if (usable.length === 0) { g.fillText('no trials with both parameters yet', pad, h / 2); return; }
  const lx = usable.map(p => Math.log10(p.x)), ly = usable.map(p => Math.log10(p.y));
  const [x0, x1] = [Math.min(...lx), Math.max(...lx) + 1e-9], [y0, y1] = [Math.min(...ly), Math.max(...ly) + 1e-9];
  const vs = usable.map(p => p.v).filter(v => v !== null), v0 = Math.min(...vs), v1 = Math.max(...vs);
  g.strokeStyle = '#9aa3af'; g.strokeRect(pad, 10, w - pad - 10, h - pad - 10);
  g.fillText(`${xLabel} (log)`, w / 2 - 30, h - 8); g.save(); g.translate(12, h / 2 + 30); g.rotate(-Math.PI / 2); g.fillText(`${yLabel} (log)`, 0, 0); g.restore();
  g.fillText(usable.length ? (10 ** x0).toExponential(1) : '', pad, h - pad + 14); g.fillText((10 ** x1).toExponential(1), w - 60, h - pad + 14);
  g.fillText((10 ** y1).toExponential(1), 2, 20); g.fillText((10 ** y0).toExponential(1), 2, h - pad);
  // Unfinished trials first (grey), then finished ones on top, coloured by validation accuracy.
  const order = usable.map((p, i) => i).sort((a, b) => (usable[a].v === null ? 0 : 1) - (usable[b].v === null ? 0 : 1));
  order.forEach(i => {
    const p = usable[i];
    const x = pad + (lx[i] - x0) / (x1 - x0) * (w - pad - 20) + 5, y = h - pad - (ly[i] - y0) / (y1 - y0) * (h - pad - 20);
    g.fillStyle = p.v === null ? '#c8cdd3' : colour((p.v - v0) / (v1 - v0 || 1));
    g.beginPath(); g.arc(x, y, p.v === null ? 3 : 5, 0, 2 * Math.PI); g.fill();
  });
  g.fillStyle = '#1d2330'; g.fillText(vs.length ? `val acc ${v0.toFixed(3)} (blue) .. ${v1.toFixed(3)} (red)` : 'no finished trials yet', w - 230, 24);
  canvas.dataset.drawn = usable.length;
}

function curves(canvas, series, yLabel) {
  const { g, w, h } = prepare(canvas);
  const pad = 36;
  // A value a trial did not report (a training program's own metrics) is null: skipped, and the line resumes after it.
  const all = series.flatMap(s => s.values).filter(v => v !== null && v !== undefined);
  if (all.length === 0) { g.fillText('select trials in the table to see their curves', pad, h / 2); return; }
  const maxX = Math.max(...series.map(s => s.values.length)), y0 = Math.min(...all), y1 = Math.max(...all) + 1e-9;
  g.strokeStyle = '#9aa3af'; g.strokeRect(pad, 10, w - pad - 10, h - pad - 10);
  g.fillText(yLabel, pad + 4, 22); g.fillText('epoch', w / 2, h - 8); g.fillText(y1.toPrecision(3), 2, 20); g.fillText(y0.toPrecision(3), 2, h - pad);
  series.forEach(s => {
    g.strokeStyle = s.colour; g.setLineDash(s.dashed ? [4, 3] : []); g.beginPath();
    let drawing = false;
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) { drawing = false; return; }
      const x = pad + (maxX > 1 ? i / (maxX - 1) : 0.5) * (w - pad - 20) + 5, y = h - pad - (v - y0) / (y1 - y0) * (h - pad - 20);
      drawing ? g.lineTo(x, y) : g.moveTo(x, y);
      drawing = true;
    });
    g.stroke();
  });
  g.setLineDash([]);
}

function parallel(canvas, trials, names) {
  const { g, w, h } = prepare(canvas);
  const axes = [...names, 'val_accuracy'], pad = 30;
  if (trials.length === 0) { g.fillText('no trials yet', pad, h / 2); return; }
  const value = (t, a) => a === 'val_accuracy' ? t.val_accuracy : t.parameters[a];
  const scales = axes.map(a => {
    const vs = trials.map(t => value(t, a)).filter(v => v !== undefined && v !== null);
    const numeric = vs.every(v => typeof v === 'number');
    if (!numeric) { const cats = [...new Set(vs.map(String))]; return v => cats.length < 2 ? 0.5 : cats.indexOf(String(v)) / (cats.length - 1); }
    const logs = vs.every(v => v > 0) && Math.max(...vs) / Math.min(...vs) > 100;
    const f = v => logs ? Math.log10(v) : v, lo = Math.min(...vs.map(f)), hi = Math.max(...vs.map(f));
    return v => hi === lo ? 0.5 : (f(v) - lo) / (hi - lo);
  });
  const x = i => pad + i * (w - 2 * pad) / Math.max(1, axes.length - 1);
  const vals = trials.map(t => t.val_accuracy).filter(v => v !== null), v0 = Math.min(...vals), v1 = Math.max(...vals);
  trials.forEach(t => {
    g.strokeStyle = t.val_accuracy === null ? 'rgba(180,180,180,0.4)' : colour((t.val_accuracy - v0) / (v1 - v0 || 1)); g.beginPath();
    axes.forEach((a, i) => { const v = value(t, a); const y = h - 20 - (v === undefined || v === null ? 0 : scales[i](v)) * (h - 40); i === 0 ? g.moveTo(x(i), y) : g.lineTo(x(i), y); });
    g.stroke();
  });
  g.strokeStyle = '#1d2330'; g.fillStyle = '#1d2330';
  axes.forEach((a, i) => { g.beginPath(); g.moveTo(x(i), 20); g.lineTo(x(i), h - 20); g.stroke(); });
  const boxes = axisLabels(g, axes, x, w, h);
  canvas.title = axes.join(' \u00b7 ');
  canvas.dataset.labels = JSON.stringify(boxes);
  canvas.dataset.drawn = trials.length;
}

// Axis labels that never overlap. Tried in turn: every label whole on one row; whole, alternating above and below the
// chart; and, when neither fits, alternating with each label held to a slot around its axis that no other label of its
// row can use (two axis gaps wide), shortened with an ellipsis where it is longer (the full names are in the tooltip).
// Labels are centred on their axes and kept inside the canvas. Returns each label's box in CSS pixels (the browser
// test checks them).
function axisLabels(g, axes, x, w, h) {
  const gap = axes.length > 1 ? x(1) - x(0) : w;
  const place = (text, i, lo, hi) => { const width = g.measureText(text).width; return { text, x: Math.min(Math.max(lo, x(i) - width / 2), hi - width), w: width }; };
  const clear = boxes => boxes.every((b, k) => k === 0 || boxes[k - 1].x + boxes[k - 1].w + 4 <= b.x);
  const rowsOf = (boxes, rows) => [...Array(rows).keys()].map(r => boxes.filter((b, i) => i % rows === r));
  let layout = null;
  for (const rows of [1, 2]) {
    const boxes = axes.map((a, i) => place(a, i, 0, w));
    if (rowsOf(boxes, rows).every(clear)) { layout = { rows, boxes }; break; }
  }
  if (!layout) {
    layout = { rows: 2, boxes: axes.map((a, i) => {
      const lo = Math.max(0, x(i) - gap + 3), hi = Math.min(w, x(i) + gap - 3), room = hi - lo;
      let text = a;
      if (g.measureText(text).width > room) {
        while (text.length > 1 && g.measureText(text + '\u2026').width > room) { text = text.slice(0, -1); }
        text = g.measureText(text + '\u2026').width <= room ? text + '\u2026' : '';
      }
      return place(text, i, lo, hi);
    }) };
  }
  return layout.boxes.map((b, i) => {
    const baseline = layout.rows === 1 || i % 2 === 0 ? 12 : h - 6;
    g.fillText(b.text, b.x, baseline);
    return { text: b.text, x: b.x, y: baseline - 10, w: b.w, h: 12 };
  });
}

// Optimization history: each completed trial's value (dots) and the best so far (a step line), by trial number or
// finish time, as /history sends them (already downsampled by the server).
function history(canvas, d) {
  const { g, w, h } = prepare(canvas);
  const pad = 44;
  if (d.xs.length === 0) { g.fillText(d.note || 'no completed trials yet', pad, h / 2); canvas.dataset.drawn = 0; return; }
  let x0 = Math.min(...d.xs), x1 = Math.max(...d.xs), y0 = Math.min(...d.ys, ...d.best_ys), y1 = Math.max(...d.ys, ...d.best_ys);
  if (x1 === x0) { x1 = x0 + 1; } if (y1 === y0) { y1 = y0 + 1e-9; }
  const px = v => pad + (v - x0) / (x1 - x0) * (w - pad - 14), py = v => h - 30 - (v - y0) / (y1 - y0) * (h - 46);
  g.strokeStyle = '#9aa3af'; g.strokeRect(pad, 10, w - pad - 10, h - 36);
  const xText = v => d.x === 'time' ? new Date(v).toLocaleTimeString() : String(Math.round(v));
  g.fillText(xText(x0), pad, h - 16); g.textAlign = 'right'; g.fillText(xText(x1), w - 10, h - 16);
  g.textAlign = 'center'; g.fillText(d.x === 'time' ? 'finish time' : 'trial number', pad + (w - pad) / 2, h - 4); g.textAlign = 'start';
  g.fillText(y1.toPrecision(3), 2, 18); g.fillText(y0.toPrecision(3), 2, h - 30);
  g.fillStyle = 'rgba(31,119,180,0.6)';
  const dot = d.xs.length < 200 ? 5 : 3;
  for (let i = 0; i < d.xs.length; i++) { g.fillRect(px(d.xs[i]) - dot / 2, py(d.ys[i]) - dot / 2, dot, dot); }
  g.strokeStyle = '#d62728'; g.lineWidth = 2; g.beginPath();
  d.best_xs.forEach((v, i) => { if (i === 0) { g.moveTo(px(v), py(d.best_ys[0])); } else { g.lineTo(px(v), py(d.best_ys[i - 1])); g.lineTo(px(v), py(d.best_ys[i])); } });
  g.stroke(); g.lineWidth = 1;
  g.fillStyle = '#1d2330';
  canvas.dataset.drawn = d.xs.length;
}

// Parameter importances as horizontal bars, largest first.
function importances(canvas, d) {
  const { g, w, h } = prepare(canvas);
  if (d.parameters.length === 0) { g.fillText(d.note || 'no importances yet', 10, h / 2); canvas.dataset.drawn = 0; return; }
  const rows = d.parameters.slice(0, 12), left = Math.min(160, Math.max(...rows.map(p => g.measureText(p.name).width)) + 12);
  const rowH = Math.min(28, (h - 10) / rows.length), barW = w - left - 60;
  rows.forEach((p, i) => {
    const y = 5 + i * rowH;
    g.fillStyle = '#1d2330'; g.textAlign = 'right'; g.fillText(p.name, left - 6, y + rowH / 2 + 4);
    g.fillStyle = '#1f77b4'; g.fillRect(left, y + 3, Math.max(1, p.importance * barW), rowH - 6);
    g.fillStyle = '#1d2330'; g.textAlign = 'start'; g.fillText(`${(100 * p.importance).toFixed(1)}%`, left + p.importance * barW + 4, y + rowH / 2 + 4);
  });
  g.textAlign = 'start';
  canvas.dataset.drawn = rows.length;
  canvas.dataset.top = rows[0].importance;
}

// One 32x32 weight image (RGB bytes, base64) drawn 3x larger, with its label.
function weightImage(img) {
  const figure = document.createElement('figure');
  figure.style.cssText = 'display:inline-block;margin:4px;text-align:center;font-size:11px';
  const canvas = document.createElement('canvas');
  canvas.width = 32; canvas.height = 32; canvas.style.cssText = 'width:96px;height:96px;image-rendering:pixelated';
  canvas.className = 'weight';
  const bytes = Uint8Array.from(atob(img.rgb), c => c.charCodeAt(0));
  const g = canvas.getContext('2d'), data = g.createImageData(32, 32);
  for (let p = 0; p < 1024; p++) { data.data.set([bytes[p * 3], bytes[p * 3 + 1], bytes[p * 3 + 2], 255], p * 4); }
  g.putImageData(data, 0, 0);
  const caption = document.createElement('figcaption'); caption.textContent = img.label;
  figure.append(canvas, caption);
  return figure;
}
