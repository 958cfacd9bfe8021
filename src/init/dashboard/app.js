// microgate dashboard, the page's side (served by init: src/init/dashboard.ts).
// One EventSource on /dashboard/events; each message is a snapshot of the
// gateway's metrics (metric name -> labelled samples, the same checked reading
// GET /metrics serves) and the newest alerts. Rates come from two successive
// snapshots. Every value is written with textContent, never as HTML.
'use strict';

const KEEP = 300; // points on the chart
const COLORS = ['#1d3557', '#e63946', '#2a9d8f', '#f4a261', '#6a4c93', '#8ab17d', '#e9c46a', '#264653'];
const $ = (id) => document.getElementById(id);
let prev = null;
const times = [];
const perDomain = new Map(); // domain -> bits/s history
let plot = null;
let plotKey = '';

function samples(tick, name) {
  return tick.metrics[name] || [];
}

function fmtBits(v) {
  if (v == null) return '';
  const u = ['', 'k', 'M', 'G', 'T'];
  let i = 0;
  while (Math.abs(v) >= 1000 && i < u.length - 1) { v /= 1000; i++; }
  return `${v.toFixed(v < 10 && i > 0 ? 2 : 0)} ${u[i]}bit/s`;
}

function fmtBytes(v) {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${u[i]}`;
}

/** Replace a table's body: rows of [key, cells], each cell text or {text, cls}. */
function fill(id, rows) {
  const body = $(id).tBodies[0];
  const out = document.createDocumentFragment();
  for (const [key, cells] of rows) {
    const tr = document.createElement('tr');
    tr.dataset.key = key;
    for (const c of cells) {
      const td = document.createElement('td');
      const o = typeof c === 'object' && c !== null ? c : { text: c };
      td.textContent = String(o.text);
      if (o.cls) td.className = o.cls;
      if (o.name) td.dataset.name = o.name;
      if (o.title) td.title = o.title;
      tr.appendChild(td);
    }
    out.appendChild(tr);
  }
  body.replaceChildren(out);
}

function key(labels, names) {
  return names.map((n) => labels[n] ?? '').join('\u0000');
}

/** Per-second rate of a counter sample between the previous tick and this one (0 after a reset). */
function rate(name, labels, value, names, dt) {
  if (prev === null || dt <= 0) return 0;
  const k = key(labels, names);
  const p = samples(prev, name).find((s) => key(s.labels, names) === k);
  if (p === undefined || value < p.value) return 0;
  return (value - p.value) / dt;
}

function throughput(tick, dt) {
  const rows = new Map();
  for (const s of samples(tick, 'microgate_domain_bytes_total')) {
    const d = `${s.labels.domain}`;
    const r = rows.get(d) ?? { in: 0, out: 0, pin: 0, pout: 0 };
    const bits = 8 * rate('microgate_domain_bytes_total', s.labels, s.value, ['component', 'domain', 'direction'], dt);
    if (s.labels.direction === 'rx') r.in += bits; else r.out += bits;
    rows.set(d, r);
  }
  for (const s of samples(tick, 'microgate_domain_packets_total')) {
    const r = rows.get(s.labels.domain);
    if (r === undefined) continue;
    const pps = rate('microgate_domain_packets_total', s.labels, s.value, ['component', 'domain', 'direction'], dt);
    if (s.labels.direction === 'rx') r.pin += pps; else r.pout += pps;
  }
  const domains = [...rows.keys()].sort();
  fill('rates', domains.map((d) => {
    const r = rows.get(d);
    return [d, [d, { text: fmtBits(r.in), cls: 'num', name: 'in' }, { text: fmtBits(r.out), cls: 'num', name: 'out' }, { text: r.pin.toFixed(0), cls: 'num' }, { text: r.pout.toFixed(0), cls: 'num' }]];
  }));
  if (prev === null) return;
  times.push(tick.t / 1000);
  for (const d of domains) {
    if (!perDomain.has(d)) perDomain.set(d, times.slice(0, -1).map(() => null));
    perDomain.get(d).push(rows.get(d).in);
  }
  for (const [d, h] of perDomain) if (!rows.has(d)) h.push(null);
  if (times.length > KEEP) {
    times.shift();
    for (const h of perDomain.values()) h.shift();
  }
  drawChart();
}

function drawChart() {
  const names = [...perDomain.keys()];
  const data = [times, ...names.map((d) => perDomain.get(d))];
  const el = $('chart');
  const k = names.join(',');
  if (plot === null || k !== plotKey || typeof uPlot === 'undefined') {
    if (typeof uPlot === 'undefined') return;
    if (plot !== null) plot.destroy();
    plotKey = k;
    plot = new uPlot({
      width: Math.max(300, el.clientWidth), height: 240,
      scales: { x: { time: true } },
      series: [{}, ...names.map((d, i) => ({ label: d, stroke: COLORS[i % COLORS.length], width: 2, value: (_u, v) => fmtBits(v) }))],
      axes: [{}, { size: 90, values: (_u, vals) => vals.map(fmtBits) }],
    }, data, el);
  } else {
    plot.setData(data);
  }
}

function components(tick) {
  const mem = new Map(samples(tick, 'microgate_component_resident_memory_bytes').map((s) => [s.labels.component, s.value]));
  const restarts = new Map(samples(tick, 'microgate_component_restarts_total').map((s) => [s.labels.component, s.value]));
  const degraded = new Set(samples(tick, 'microgate_component_degraded').filter((s) => s.value === 1).map((s) => s.labels.component));
  const rows = samples(tick, 'microgate_component_state').filter((s) => s.value === 1).map((s) => {
    const c = s.labels.component;
    // Running with a packet link down or gone: degraded (init's link watch).
    const st = s.labels.state === 'running' && degraded.has(c) ? 'degraded' : s.labels.state;
    return [c, [c, { text: st, cls: st, name: 'state' }, { text: restarts.get(c) ?? 0, cls: 'num', name: 'restarts' }, { text: mem.has(c) ? fmtBytes(mem.get(c)) : '', cls: 'num' }]];
  });
  fill('components', rows.sort((a, b) => a[0].localeCompare(b[0])));
  const events = new Map();
  for (const s of samples(tick, 'microgate_service_events_total')) events.set(s.labels.service, (events.get(s.labels.service) ?? 0) + s.value);
  const srest = new Map(samples(tick, 'microgate_service_restarts_total').map((s) => [s.labels.service, s.value]));
  fill('services', samples(tick, 'microgate_service_state').filter((s) => s.value === 1).map((s) => [s.labels.service, [
    s.labels.service, { text: s.labels.state, cls: s.labels.state, name: 'state' }, { text: srest.get(s.labels.service) ?? 0, cls: 'num' }, { text: events.get(s.labels.service) ?? 0, cls: 'num' },
  ]]));
}

function drops(tick, dt) {
  const rows = samples(tick, 'microgate_drops_total').map((s) => [`${s.labels.component}/${s.labels.reason}`, [
    s.labels.component, s.labels.reason, { text: s.value, cls: 'num', name: 'total' },
    { text: rate('microgate_drops_total', s.labels, s.value, ['component', 'reason'], dt).toFixed(1), cls: 'num' },
  ], s.value]);
  rows.sort((a, b) => b[2] - a[2]);
  fill('drops', rows.slice(0, 30));
}

function connections(tick) {
  fill('conns', samples(tick, 'microgate_connections').filter((s) => s.value > 0).map((s) => [
    `${s.labels.family}/${s.labels.proto}/${s.labels.state}`, [s.labels.family, s.labels.proto, s.labels.state, { text: s.value, cls: 'num', name: 'count' }],
  ]));
  const nat = samples(tick, 'microgate_nat_ports_in_use').map((s) => `${s.labels.domain} ${s.labels.proto}: ${s.value}`);
  $('nat').textContent = nat.length === 0 ? 'NAT ports in use: none' : `NAT ports in use: ${nat.join(', ')}`;
}

function peers(tick) {
  const age = new Map(samples(tick, 'microgate_tunnel_peer_handshake_age_seconds').map((s) => [s.labels.peer, s.value]));
  const bytes = new Map();
  for (const s of samples(tick, 'microgate_tunnel_peer_bytes_total')) {
    const b = bytes.get(s.labels.peer) ?? { rx: 0, tx: 0 };
    b[s.labels.direction === 'rx' ? 'rx' : 'tx'] = s.value;
    bytes.set(s.labels.peer, b);
  }
  fill('peers', [...bytes.keys()].map((p) => [p, [
    { text: `${p.slice(0, 10)}…`, name: 'peer', title: p }, age.has(p) ? `${Math.round(age.get(p))} s ago` : 'never', { text: fmtBytes(bytes.get(p).rx), cls: 'num' }, { text: fmtBytes(bytes.get(p).tx), cls: 'num' },
  ]]));
}

function alerts(tick) {
  fill('alerts', tick.alerts.map((a, i) => [String(i), [a.time, a.sid, a.signature, a.src, a.dst, a.proto]]));
}

function update(tick) {
  const dt = prev === null ? 0 : (tick.t - prev.t) / 1000;
  $('status').textContent = `up ${tick.uptimeS} s · updated ${new Date(tick.t).toLocaleTimeString()}`;
  $('status').className = '';
  throughput(tick, dt);
  components(tick);
  drops(tick, dt);
  connections(tick);
  peers(tick);
  alerts(tick);
  prev = tick;
}

const interval = new URLSearchParams(location.search).get('interval') ?? '1000';
const events = new EventSource(`/dashboard/events?interval=${encodeURIComponent(interval)}`);
events.onmessage = (m) => update(JSON.parse(m.data));
events.addEventListener('problem', (m) => { $('status').textContent = `problem: ${JSON.parse(m.data)}`; });
events.onerror = () => { $('status').textContent = 'disconnected: retrying…'; $('status').className = 'stale'; };
