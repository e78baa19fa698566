/**
 * The inspector page: one self-contained HTML document (inline CSS and JS, no CDN, no
 * network beyond its own server), so it works offline and ships inside the package.
 *
 * Routes (hash): `#/` the overview, `#/agent/<id>` one agent. Data: `/api/snapshot`,
 * `/api/agent/<id>`, `/api/lifecycle`, `/api/machine/<type>`, and `/events` (SSE batches `{ events, dropped }`).
 * The client code avoids template literals so it can live in this TS string as is.
 */

const CSS = String.raw`
:root { --bg:#0f1419; --panel:#171d24; --line:#2a333d; --text:#d8dee6; --dim:#8a96a3; --accent:#4fb3ff;
  --idle:#3fb950; --running:#f0883e; --loading:#a371f7; --flushing:#d29922; --unloaded:#6e7681; --failed:#f85149; --destroyed:#484f58; }
* { box-sizing: border-box; }
body { margin:0; font:13px/1.45 ui-sans-serif, system-ui, -apple-system, "Segoe UI", sans-serif; background:var(--bg); color:var(--text); }
header { display:flex; gap:16px; align-items:center; padding:10px 18px; border-bottom:1px solid var(--line); background:var(--panel); }
header h1 { font-size:15px; margin:0; letter-spacing:.02em; }
header a { color:var(--accent); text-decoration:none; }
header .conn { margin-left:auto; color:var(--dim); font-size:12px; }
header .conn.ok::before { content:"● "; color:var(--idle); }
header .conn.off::before { content:"● "; color:var(--failed); }
main { padding:16px 18px; }
h2 { font-size:13px; text-transform:uppercase; letter-spacing:.06em; color:var(--dim); margin:18px 0 8px; }
.cards { display:flex; flex-wrap:wrap; gap:8px; }
.card { background:var(--panel); border:1px solid var(--line); border-radius:6px; padding:8px 12px; min-width:92px; }
.card .v { font-size:20px; font-variant-numeric:tabular-nums; }
.card .k { color:var(--dim); font-size:11px; }
.card svg { display:block; margin-top:4px; }
.row { display:flex; gap:24px; flex-wrap:wrap; }
.row > section { flex:1 1 280px; min-width:0; }
.ids { display:flex; flex-wrap:wrap; gap:4px; min-height:22px; }
.ids a, .ids span { background:var(--panel); border:1px solid var(--line); border-radius:4px; padding:1px 6px; color:var(--text); text-decoration:none; font-family:ui-monospace, monospace; font-size:12px; }
.empty { color:var(--dim); font-style:italic; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:5px 8px; border-bottom:1px solid var(--line); white-space:nowrap; }
th { color:var(--dim); font-weight:500; font-size:12px; }
td.num { font-variant-numeric:tabular-nums; }
td a { color:var(--accent); text-decoration:none; font-family:ui-monospace, monospace; }
.badge { display:inline-block; padding:0 7px; border-radius:9px; font-size:12px; color:#0b0f14; background:var(--unloaded); }
.badge.idle { background:var(--idle); } .badge.running { background:var(--running); } .badge.loading { background:var(--loading); }
.badge.flushing { background:var(--flushing); } .badge.failed { background:var(--failed); } .badge.destroyed { background:var(--destroyed); color:var(--text); }
.filters { display:flex; gap:8px; align-items:center; margin-bottom:8px; }
input, select, button { background:var(--panel); color:var(--text); border:1px solid var(--line); border-radius:4px; padding:4px 8px; font:inherit; }
button { cursor:pointer; }
.banner { background:#2d2a1a; border:1px solid #6b5b1f; color:#e3c26b; padding:6px 10px; border-radius:6px; margin-bottom:10px; }
.banner.error { background:#2d1a1c; border-color:#7a2a2e; color:#f0a8a8; }
svg.chart { background:var(--panel); border:1px solid var(--line); border-radius:6px; }
.chartbox { overflow-x:auto; max-width:100%; }
svg.chart .node rect { fill:#1d252e; stroke:#3a4550; stroke-width:1.5; }
svg.chart .node.compound > rect, svg.chart .node.parallel > rect { fill:#161c23; stroke:#34404c; }
svg.chart .node.parallel > rect { stroke-dasharray:6 3; }
svg.chart .node.final rect.inner { fill:none; }
svg.chart .node text { fill:var(--text); font-size:13px; }
svg.chart .node text.sub { fill:var(--dim); font-size:10px; font-style:italic; }
svg.chart .node.lit > rect { fill:#16324a; stroke:var(--accent); stroke-width:3; filter:drop-shadow(0 0 6px #4fb3ff88); }
svg.chart .node.compound.lit > rect, svg.chart .node.parallel.lit > rect { fill:#14222f; }
svg#statechart .node.lit[data-state=running] > rect { stroke:var(--running); fill:#3a2614; filter:drop-shadow(0 0 6px #f0883e88); }
svg#statechart .node.lit[data-state=failed] > rect { stroke:var(--failed); fill:#3a1616; }
svg.chart circle.initial-dot { fill:#8a96a3; }
svg.chart path.edge { fill:none; stroke:#4a5663; stroke-width:1.4; stroke-linejoin:round; }
svg.chart path.edge.fired { stroke:var(--accent); stroke-width:3; animation:fade 1.2s ease-out forwards; }
@keyframes fade { from { stroke:var(--accent); stroke-width:3; } to { stroke:#4a5663; stroke-width:1.4; } }
svg.chart text.label { fill:#9aa6b2; font-size:10px; paint-order:stroke; stroke:var(--panel); stroke-width:3px; }
.agent-head { display:flex; gap:16px; align-items:baseline; flex-wrap:wrap; }
.agent-head .id { font-family:ui-monospace, monospace; font-size:18px; }
.timeline { list-style:none; margin:0; padding:0; border-left:2px solid var(--line); }
.timeline li { position:relative; padding:3px 0 3px 14px; font-family:ui-monospace, monospace; font-size:12px; }
.timeline li::before { content:""; position:absolute; left:-5px; top:9px; width:8px; height:8px; border-radius:50%; background:var(--unloaded); }
.timeline li[data-kind=accepted]::before { background:var(--accent); }
.timeline li[data-kind="turn.started"]::before { background:var(--running); }
.timeline li[data-kind="turn.finished"]::before { background:var(--idle); }
.timeline li[data-kind="turn.finished"][data-outcome=failed]::before, .timeline li[data-kind="turn.finished"][data-outcome=crashed]::before { background:var(--failed); }
.timeline li[data-kind=evicted]::before { background:var(--flushing); }
.timeline li[data-kind=loaded]::before { background:var(--loading); }
.timeline li.past { opacity:.35; }
.timeline .t { color:var(--dim); margin-right:8px; }
.mailbox { margin:0; padding-left:22px; }
.mailbox li { font-family:ui-monospace, monospace; font-size:12px; }
.mailbox li.empty { list-style:none; margin-left:-22px; }
.timers-next { margin:0 0 4px; font-size:13px; }
.timers-next .when { color:var(--dim); }
main a { color:var(--accent); }
.slider { display:flex; gap:8px; align-items:center; margin:6px 0; color:var(--dim); }
.slider input { flex:1; }
`;

const JS = String.raw`
(function () {
  'use strict';
  var token = new URLSearchParams(location.search).get('token');
  function api(path) {
    return token ? path + (path.indexOf('?') >= 0 ? '&' : '?') + 'token=' + encodeURIComponent(token) : path;
  }
  // A failed request rejects with the server's short text (its error) and the status.
  function getJSON(path) {
    return fetch(api(path)).then(function (r) {
      if (r.ok) return r.json();
      return r.text().then(function (t) {
        var e = new Error(t.trim().slice(0, 300) || r.status + ' ' + path);
        e.status = r.status;
        throw e;
      });
    });
  }
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) {
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'cls') e.className = attrs[k];
      else if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, attrs[k]);
    }
    (children || []).forEach(function (c) { if (c) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c); });
    return e;
  }
  var SVGNS = 'http://www.w3.org/2000/svg';
  function sv(tag, attrs, text) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function clock(at) {
    if (at === null || at === undefined) return '–';
    var d = new Date(at);
    function p(n, w) { n = String(n); while (n.length < w) n = '0' + n; return n; }
    return p(d.getHours(), 2) + ':' + p(d.getMinutes(), 2) + ':' + p(d.getSeconds(), 2) + '.' + p(d.getMilliseconds(), 3);
  }
  function ago(at) {
    if (at === null || at === undefined) return '–';
    var s = Math.max(0, (Date.now() - at) / 1000);
    return s < 1 ? 'just now' : s < 60 ? Math.floor(s) + ' s ago' : s < 3600 ? Math.floor(s / 60) + ' min ago' : clock(at);
  }
  // How far a deadline is from now: "in 12 s", "in 3 min", "due".
  function until(at, now) {
    var s = (at - now) / 1000;
    if (s <= 0) return 'due';
    if (s < 60) return 'in ' + Math.ceil(s) + ' s';
    if (s < 3600) return 'in ' + Math.round(s / 60) + ' min';
    if (s < 86400) return 'in ' + Math.round(s / 3600) + ' h';
    return 'in ' + Math.round(s / 86400) + ' d';
  }
  function when(at) {
    var d = new Date(at), today = new Date();
    return d.toDateString() === today.toDateString() ? clock(at) : d.toISOString().slice(0, 10) + ' ' + clock(at);
  }
  function throttle(fn, ms) {
    var timer = null, again = false;
    return function () {
      if (timer) { again = true; return; }
      fn();
      timer = setTimeout(function () { timer = null; if (again) { again = false; fn(); } }, ms);
    };
  }

  // --- live events -------------------------------------------------------------
  var STATE_AFTER = { 'agent.loading': 'loading', 'agent.loaded': 'idle', 'turn.started': 'running', 'turn.finished': 'idle',
    'agent.evicting': 'flushing', 'agent.evicted': 'unloaded', 'agent.failed': 'failed', 'agent.destroyed': 'destroyed' };
  var stats = { events: 0, dropped: 0 };
  var onBatch = null;
  var conn = document.getElementById('conn');
  var es = new EventSource(api('/events'));
  es.onopen = function () { conn.className = 'conn ok'; conn.textContent = 'live'; };
  es.onerror = function () { conn.className = 'conn off'; conn.textContent = 'disconnected (retrying)'; };
  es.onmessage = function (m) {
    var batch = JSON.parse(m.data);
    stats.events += batch.events.length;
    stats.dropped += batch.dropped;
    conn.textContent = 'live · ' + stats.events + ' events' + (stats.dropped ? ' · dropped ' + stats.dropped : '');
    if (onBatch) onBatch(batch);
  };

  var view = document.getElementById('view');
  var cleanup = null;
  function route() {
    if (cleanup) cleanup();
    cleanup = null;
    onBatch = null;
    view.textContent = '';
    var m = /^#\/agent\/(.+)$/.exec(location.hash);
    if (!m) return overview();
    var id;
    try {
      id = decodeURIComponent(m[1]);
    } catch (e) {
      return badLink(m[1]);
    }
    agentPage(id);
  }
  // A link the page cannot read (malformed percent-encoding): said, not thrown.
  function badLink(raw) {
    view.appendChild(el('div', { cls: 'banner', id: 'route-error' }, [
      'Not an agent link: its id has malformed percent-encoding (' + (raw.length > 120 ? raw.slice(0, 120) + '…' : raw) + '). ',
      el('a', { href: '#/', text: 'Back to the overview' })]));
  }
  window.addEventListener('hashchange', route);

  // --- overview -------------------------------------------------------------------
  var filters = { type: '', state: '', resident: '', cursor: null, prev: [] };
  var samples = [];
  function spark(values, label, ceiling) {
    var w = 110, h = 26, max = ceiling || Math.max.apply(null, values.concat([1]));
    var s = sv('svg', { width: w, height: h, 'aria-label': label });
    var pts = values.map(function (v, i) { return (values.length < 2 ? 0 : i * w / (values.length - 1)).toFixed(1) + ',' + (h - 2 - v / max * (h - 4)).toFixed(1); });
    s.appendChild(sv('polyline', { points: pts.join(' '), fill: 'none', stroke: '#4fb3ff', 'stroke-width': 1.5 }));
    return s;
  }
  function card(k, v, extra) {
    return el('div', { cls: 'card', 'data-stat': k }, [el('div', { cls: 'v', text: String(v) }), el('div', { cls: 'k', text: k }), extra]);
  }
  function ids(list, what) {
    if (!list.length) return el('div', { cls: 'ids' }, [el('span', { cls: 'empty', text: 'none ' + what })]);
    return el('div', { cls: 'ids' }, list.map(function (id) { return el('a', { href: '#/agent/' + encodeURIComponent(id), text: id }); }));
  }
  function overview() {
    var top = el('div');
    var table = el('tbody');
    var typeIn = el('input', { placeholder: 'type', value: filters.type, 'aria-label': 'filter by type' });
    var stateIn = el('select', { 'aria-label': 'filter by state' }, ['', 'unloaded', 'loading', 'idle', 'running', 'flushing', 'failed'].map(function (s) {
      var o = el('option', { value: s, text: s || 'any state' }); if (s === filters.state) o.selected = true; return o; }));
    var resIn = el('select', { 'aria-label': 'filter by residency' }, [['', 'resident or not'], ['true', 'resident'], ['false', 'not resident']].map(function (p) {
      var o = el('option', { value: p[0], text: p[1] }); if (p[0] === filters.resident) o.selected = true; return o; }));
    var prevB = el('button', { text: '← prev' }), nextB = el('button', { text: 'next →' });
    var pageInfo = el('span', { cls: 'empty' });
    view.appendChild(top);
    view.appendChild(el('h2', { text: 'Agents' }));
    view.appendChild(el('div', { cls: 'filters' }, [typeIn, stateIn, resIn, prevB, nextB, pageInfo]));
    view.appendChild(el('table', { id: 'agents' }, [el('thead', {}, [el('tr', {}, ['id', 'type', 'state', 'mailbox', 'last activity', 'turns', 'pinned'].map(function (h) { return el('th', { text: h }); }))]), table]));
    var rows = {};
    var next = null;
    function load() {
      var q = '/api/snapshot?limit=50&top=20' + (filters.type ? '&type=' + encodeURIComponent(filters.type) : '') +
        (filters.state ? '&state=' + filters.state : '') + (filters.resident ? '&resident=' + filters.resident : '') +
        (filters.cursor ? '&cursor=' + encodeURIComponent(filters.cursor) : '');
      return getJSON(q).then(draw).catch(function (e) { pageInfo.textContent = String(e); });
    }
    var refresh = throttle(load, 1000);
    function draw(s) {
      top.textContent = '';
      if (!s.live) top.appendChild(el('div', { cls: 'banner', text: 'Read-only view of a stored database: nothing runs, so every agent is unloaded.' }));
      // Agents whose stored data cannot be read: left out of the table, named here (each links to its error).
      var damaged = s.damaged || [];
      if (damaged.length) {
        var names = [];
        damaged.forEach(function (d, i) {
          if (i) names.push(', ');
          names.push(el('a', { href: '#/agent/' + encodeURIComponent(d.id), title: d.error, text: d.id }));
        });
        top.appendChild(el('div', { cls: 'banner error', id: 'damaged' },
          [damaged.length + (damaged.length === 1 ? ' agent' : ' agents') + ' could not be read: '].concat(names)));
      }
      if (s.stats) {
        var st = s.stats;
        samples.push({ at: s.at, loads: st.loads, evictions: st.evictions, hits: st.hits, misses: st.misses });
        if (samples.length > 60) samples.shift();
        function rate(key) { var out = []; for (var i = 1; i < samples.length; i++) out.push(Math.max(0, samples[i][key] - samples[i - 1][key])); return out.length ? out : [0]; }
        var hitRate = st.hits + st.misses ? Math.round(100 * st.hits / (st.hits + st.misses)) + ' %' : '–';
        // Hit rate per interval between samples (the last one carried over an interval without traffic).
        function hitRates() {
          var out = [], last = 0;
          for (var i = 1; i < samples.length; i++) {
            var h = samples[i].hits - samples[i - 1].hits, m = samples[i].misses - samples[i - 1].misses;
            if (h + m > 0) last = 100 * h / (h + m);
            out.push(last);
          }
          return out.length ? out : [0];
        }
        top.appendChild(el('h2', { text: 'Supervisor' + (s.policy ? ' · policy ' + s.policy : '') }));
        top.appendChild(el('div', { cls: 'cards', id: 'stats' }, [
          card('resident cap', st.residentCap), card('running cap', st.runningCap), card('resident', st.resident), card('loading', st.loading),
          card('flushing', st.flushing), card('running', st.running), card('pinned', st.pinned), card('waiting for slot', st.waitingForSlot),
          card('waiting for permit', st.waitingForPermit), card('loads', st.loads, spark(rate('loads'), 'loads over time')),
          card('evictions', st.evictions, spark(rate('evictions'), 'evictions over time')), card('hit rate', hitRate, spark(hitRates(), 'hit rate over time', 100))]));
        // A store several processes share: this process's part, and every member's shards.
        if (st.cluster) {
          var cl = st.cluster, view = cl.view;
          top.appendChild(el('h2', { text: 'Cluster · this process is member ' + (cl.member || '–') + ', owns ' + cl.owned + (view ? ' of ' + view.shards : '') + ' shards' }));
          if (view) {
            top.appendChild(el('div', { cls: 'cards', id: 'cluster' }, [card('members', view.members.length), card('unowned shards', view.unowned), card('shard moves', view.moves)]));
            top.appendChild(el('table', { id: 'members' }, [el('tr', {}, [el('th', { text: 'member' }), el('th', { text: 'process' }), el('th', { text: 'shards' }), el('th', { text: 'last seen' })])].concat(
              view.members.map(function (m) {
                return el('tr', { 'data-member': m.id }, [el('td', { text: m.id + (m.id === cl.member ? ' (this one)' : '') }),
                  el('td', { text: 'pid ' + m.owner.pid + ' on ' + m.owner.host }), el('td', { cls: 'num', text: String(m.shards) }),
                  el('td', { text: new Date(m.seenAt).toISOString().slice(11, 23) })]);
              }))));
          }
        }
        top.appendChild(el('div', { cls: 'row' }, [
          el('section', {}, [el('h2', { text: 'LRU order (next victim first)' }), ids(s.lru, 'evictable')]),
          el('section', {}, [el('h2', { text: 'Waiting for a slot' }), ids(s.slotQueue, 'waiting')]),
          el('section', {}, [el('h2', { text: 'Waiting for a running permit' }), ids(s.permitQueue, 'waiting')])]));
      }
      next = s.cursor;
      nextB.disabled = !next;
      prevB.disabled = filters.prev.length === 0;
      pageInfo.textContent = s.agents.length + ' shown';
      var keep = {};
      s.agents.forEach(function (a, i) {
        keep[a.id] = true;
        var r = rows[a.id];
        if (!r) {
          r = { tr: el('tr', { 'data-agent': a.id }), state: el('span'), mailbox: el('td', { cls: 'num mailbox' }), last: el('td', { cls: 'last' }),
            turns: el('td', { cls: 'num' }), pinned: el('td'), at: null };
          r.tr.appendChild(el('td', {}, [el('a', { href: '#/agent/' + encodeURIComponent(a.id), text: a.id })]));
          r.tr.appendChild(el('td', { text: a.type }));
          r.tr.appendChild(el('td', { cls: 'state' }, [r.state]));
          [r.mailbox, r.last, r.turns, r.pinned].forEach(function (c) { r.tr.appendChild(c); });
          rows[a.id] = r;
        }
        if (table.children[i] !== r.tr) table.insertBefore(r.tr, table.children[i] || null);
        setRow(r, a.state, a.mailbox, a.lastActiveAt);
        r.turns.textContent = a.turns === null ? '–' : String(a.turns);
        r.pinned.textContent = a.pinned ? 'pinned' : '';
      });
      Object.keys(rows).forEach(function (id) { if (!keep[id]) { rows[id].tr.remove(); delete rows[id]; } });
    }
    function setRow(r, state, mailbox, at) {
      r.state.className = 'badge ' + state;
      r.state.textContent = state;
      r.tr.setAttribute('data-state', state);
      r.mailbox.textContent = String(mailbox);
      r.at = at;
      r.last.textContent = ago(at);
    }
    onBatch = function (batch) {
      batch.events.forEach(function (e) {
        var r = rows[e.id];
        if (!r) return;
        var st = STATE_AFTER[e.name];
        var mb = Number(r.mailbox.textContent) || 0;
        if (e.name === 'message.accepted') mb++;
        if (e.name === 'turn.finished') mb = Math.max(0, mb - 1);
        setRow(r, st || r.state.textContent, mb, e.at);
      });
      refresh();
    };
    typeIn.onchange = function () { filters.type = typeIn.value; filters.cursor = null; filters.prev = []; load(); };
    stateIn.onchange = function () { filters.state = stateIn.value; filters.cursor = null; filters.prev = []; load(); };
    resIn.onchange = function () { filters.resident = resIn.value; filters.cursor = null; filters.prev = []; load(); };
    nextB.onclick = function () { if (!next) return; filters.prev.push(filters.cursor); filters.cursor = next; load(); };
    prevB.onclick = function () { filters.cursor = filters.prev.pop() || null; load(); };
    var tick = setInterval(function () {
      Object.keys(rows).forEach(function (id) { rows[id].last.textContent = ago(rows[id].at); });
      refresh();
    }, 2000);
    cleanup = function () { clearInterval(tick); };
    load();
  }

  // --- agent page -----------------------------------------------------------------
  // A statechart drawn from the server's layout (src/inspector/machineGraph.ts): boxes
  // nested as the states are, orthogonal edges with their events, initial dots.
  var charts = {};
  function chartOf(path) {
    charts[path] = charts[path] || getJSON(path);
    return charts[path];
  }
  function drawChart(g, id) {
    var pad = 4;
    // Natural size, shrunk to the page's width when wider (the viewBox keeps proportions).
    var s = sv('svg', { 'class': 'chart', id: id, width: g.width + pad * 2, height: g.height + pad * 2,
      viewBox: (-pad) + ' ' + (-pad) + ' ' + (g.width + pad * 2) + ' ' + (g.height + pad * 2), 'data-machine': g.machineId,
      style: 'max-width:100%;height:auto' });
    var defs = sv('defs');
    var marker = sv('marker', { id: id + '-arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' });
    marker.appendChild(sv('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#6e7a87' }));
    defs.appendChild(marker);
    s.appendChild(defs);
    var byId = {}, nodes = {}, parentOf = {};
    g.states.forEach(function (n) {
      byId[n.id] = n;
      parentOf[n.id] = n.parent;
      var compound = n.type === 'compound' || n.type === 'parallel';
      var grp = sv('g', { 'class': 'node ' + n.type + (n.initial ? ' initial' : ''), 'data-state': n.path.join('.'), 'data-id': n.id });
      grp.appendChild(sv('rect', { x: n.x, y: n.y, width: n.w, height: n.h, rx: compound ? 10 : 8 }));
      if (n.type === 'final') grp.appendChild(sv('rect', { 'class': 'inner', x: n.x + 3, y: n.y + 3, width: n.w - 6, height: n.h - 6, rx: 6 }));
      var title = n.type === 'history' ? 'H ' + n.key : n.key;
      grp.appendChild(sv('text', { x: n.x + (compound ? 10 : n.w / 2), y: n.y + (compound ? 18 : 21), 'text-anchor': compound ? 'start' : 'middle' }, title));
      n.internal.slice(0, 3).forEach(function (ev, j) {
        grp.appendChild(sv('text', { 'class': 'sub', x: n.x + (compound ? n.w - 10 : n.w / 2), y: n.y + (compound ? 18 : 36) + j * 13,
          'text-anchor': compound ? 'end' : 'middle' }, ev));
      });
      if (n.internal.length) grp.appendChild(sv('title', {}, 'handled in place: ' + n.internal.join(', ')));
      s.appendChild(grp);
      nodes[n.id] = grp;
    });
    function line(points) {
      return points.map(function (p, i) { return (i ? 'L' : 'M') + p[0] + ',' + p[1]; }).join(' ');
    }
    g.initials.forEach(function (m) {
      s.appendChild(sv('circle', { 'class': 'initial-dot', cx: m.x, cy: m.y, r: 5 }));
      s.appendChild(sv('path', { 'class': 'edge initial-edge', d: line(m.points), 'marker-end': 'url(#' + id + '-arrow)' }));
    });
    var edges = [];
    g.edges.forEach(function (e) {
      var p = sv('path', { 'class': 'edge', d: line(e.points), 'marker-end': 'url(#' + id + '-arrow)', 'data-edge': e.source + '>' + e.target });
      p.appendChild(sv('title', {}, e.events.join('\n')));
      s.appendChild(p);
      if (e.label) {
        var t = sv('text', { 'class': 'label', x: e.label.x + e.label.w / 2, y: e.label.y, 'text-anchor': 'middle' });
        e.lines.forEach(function (l, j) { var ts = sv('tspan', { x: e.label.x + e.label.w / 2, dy: j ? 13 : 10 }, l); t.appendChild(ts); });
        s.appendChild(t);
      }
      edges.push({ el: p, source: e.source, target: e.target });
    });
    g.fromAnyState.forEach(function (t, j) {
      s.appendChild(sv('text', { 'class': 'label', x: 20, y: g.height - 6 - (g.fromAnyState.length - 1 - j) * 15 }, 'from any state: ' + t.event + (t.target === null ? ' (handled in place)' : ' → ' + t.target)));
    });
    function selfOrAncestorIn(id, set) {
      for (var cur = id; cur; cur = parentOf[cur]) if (set[cur]) return true;
      return false;
    }
    var current = {};
    return {
      svg: s,
      // Lights the states with these ids; edges from a state that was lit to one newly lit flash.
      light: function (ids) {
        var next = {};
        ids.forEach(function (i) { if (nodes[i]) next[i] = true; });
        var fresh = {};
        Object.keys(next).forEach(function (i) { if (!current[i]) fresh[i] = true; });
        if (Object.keys(current).length) {
          edges.forEach(function (e) {
            if (selfOrAncestorIn(e.source, current) && selfOrAncestorIn(e.target, fresh)) {
              e.el.classList.remove('fired'); void e.el.getBoundingClientRect(); e.el.classList.add('fired');
            }
          });
        }
        Object.keys(nodes).forEach(function (k) { nodes[k].classList.toggle('lit', !!next[k]); });
        current = next;
        s.setAttribute('data-lit', Object.keys(next).map(function (k) { return byId[k].path.join('.'); }).join(' '));
      }
    };
  }
  // The ids of the states a state value names, ancestors included.
  function activeIds(g, value) {
    var byPath = {}, out = [];
    g.states.forEach(function (n) { byPath[JSON.stringify(n.path)] = n.id; });
    function walk(v, prefix) {
      if (typeof v === 'string') { var k = byPath[JSON.stringify(prefix.concat([v]))]; if (k) out.push(k); return; }
      if (v && typeof v === 'object') Object.keys(v).forEach(function (key) {
        var k = byPath[JSON.stringify(prefix.concat([key]))];
        if (k) out.push(k);
        walk(v[key], prefix.concat([key]));
      });
    }
    walk(value, []);
    return out;
  }
  function lifecycleIds(g, state) {
    return g.states.filter(function (n) { return n.depth === 1 && n.key === state; }).map(function (n) { return n.id; });
  }
  function describe(r) {
    if (r.kind === 'accepted') return '#' + r.seq + ' accepted ' + r.message.type;
    if (r.kind === 'turn.started') return '#' + r.seq + ' turn started';
    if (r.kind === 'turn.finished') return '#' + r.seq + ' turn ' + r.outcome + ' in ' + r.durationMs + ' ms' + (r.error ? ': ' + r.error : '');
    if (r.kind === 'output') return '#' + r.seq + ' output ' + JSON.stringify(r.output).slice(0, 120);
    if (r.kind === 'snapshot') return '#' + r.seq + ' snapshot' + (r.value !== undefined ? ' · state ' + JSON.stringify(r.value) : '');
    if (r.kind === 'note') return r.note + (r.reason ? ' (' + r.reason + ')' : '');
    return r.kind;
  }
  function stateAfterEntry(r, before) {
    if (r.kind === 'turn.started') return 'running';
    if (r.kind === 'turn.finished') return 'idle';
    if (r.kind === 'note' && r.note === 'loaded') return 'idle';
    if (r.kind === 'note' && r.note === 'evicted') return 'unloaded';
    if (r.kind === 'note' && r.note === 'spawned') return 'unloaded';
    return before;
  }
  var ROLLOUT = 200; // rollout entries shown (the latest)
  function agentPage(id) {
    var head = el('div', { cls: 'agent-head' });
    var chartBox = el('div', { cls: 'chartbox' });
    var logicHead = el('h2', { text: 'Logic' });
    var logicInfo = el('div', { cls: 'empty', id: 'logic-info' });
    var logicBox = el('div', { cls: 'chartbox' });
    var slider = el('input', { type: 'range', min: 0, max: 0, value: 0, 'aria-label': 'step through the rollout' });
    var sliderInfo = el('span', { text: 'live' });
    var mailbox = el('ol', { cls: 'mailbox', id: 'mailbox' });
    var timersHead = el('h2', { text: 'Timers' });
    var timersNext = el('div', { cls: 'timers-next', id: 'timers-next' });
    var timers = el('ol', { cls: 'mailbox', id: 'timers' });
    var timeline = el('ul', { cls: 'timeline', id: 'timeline' });
    var windowNote = el('div', { cls: 'empty' });
    // The agent's sections; an agent whose stored data cannot be read shows its error in their place.
    var sections = el('div', {}, [head, el('h2', { text: 'Lifecycle' }), chartBox,
      el('div', { cls: 'slider' }, [el('span', { text: 'step back' }), slider, sliderInfo]), logicHead, logicInfo, logicBox,
      el('div', { cls: 'row' }, [
        el('section', {}, [el('h2', { text: 'Mailbox' }), mailbox, timersHead, timersNext, timers]),
        el('section', {}, [el('h2', { text: 'Rollout' }), windowNote, timeline])])]);
    var damagedBox = el('div', { cls: 'banner error', id: 'agent-error' });
    view.appendChild(el('div', {}, [el('a', { href: '#/', text: '← overview' })]));
    view.appendChild(sections);
    var chart = null, lifecycle = null, logic = null, logicType = null, liveState = null, detail = null, stepping = false;
    function showState() {
      if (!chart) return;
      if (!stepping || !detail) {
        chart.light(lifecycleIds(lifecycle, liveState));
        if (logic && detail && detail.logic) logic.chart.light(activeIds(logic.g, detail.logic.value));
        return;
      }
      // A full window may not start at the agent's beginning: its first state is then unknown.
      var n = Number(slider.value), st = detail.rollout.length >= ROLLOUT ? null : 'unloaded', value = null;
      for (var i = 0; i < n; i++) {
        st = stateAfterEntry(detail.rollout[i], st);
        if (detail.rollout[i].kind === 'snapshot' && detail.rollout[i].value !== undefined) value = detail.rollout[i].value;
      }
      chart.light(lifecycleIds(lifecycle, st));
      // The agent's own chart: the state its last snapshot up to here recorded.
      if (logic) logic.chart.light(activeIds(logic.g, value));
      Array.prototype.forEach.call(timeline.children, function (li, i) { li.classList.toggle('past', i >= n); });
    }
    function showDamaged(d) {
      damagedBox.textContent = '';
      damagedBox.appendChild(document.createTextNode('Agent "' + d.id + '" could not be read: ' + d.error + '. '));
      damagedBox.appendChild(el('a', { href: '#/', text: 'Back to the overview' }));
      if (sections.parentNode) view.replaceChild(damagedBox, sections);
    }
    function drawDetail(d) {
      if (d.error !== undefined) return showDamaged(d);
      if (damagedBox.parentNode) view.replaceChild(sections, damagedBox);
      detail = d;
      var a = d.agent;
      if (!stepping) liveState = a.state;
      head.textContent = '';
      head.appendChild(el('span', { cls: 'id', text: a.id }));
      head.appendChild(el('span', { id: 'agent-state', cls: 'badge ' + liveState, text: liveState }));
      head.appendChild(el('span', { text: 'type ' + a.type }));
      head.appendChild(el('span', { text: 'mailbox ' + a.mailbox }));
      head.appendChild(el('span', { text: 'turns ' + (a.turns === null ? '–' : a.turns) }));
      if (a.pinned) head.appendChild(el('span', { text: 'pinned' }));
      if (a.parent) head.appendChild(el('a', { href: '#/agent/' + encodeURIComponent(a.parent), text: 'parent ' + a.parent }));
      mailbox.textContent = '';
      if (!d.mailbox.length) mailbox.appendChild(el('li', { cls: 'empty', text: 'empty' }));
      d.mailbox.forEach(function (m) { mailbox.appendChild(el('li', { text: '#' + m.seq + ' ' + m.message.type + ' · ' + clock(m.at) })); });
      drawTimers(d.timers);
      timeline.textContent = '';
      d.rollout.forEach(function (r) {
        timeline.appendChild(el('li', { 'data-kind': r.kind === 'note' ? r.note : r.kind, 'data-outcome': r.outcome },
          [el('span', { cls: 't', text: clock(r.at) }), describe(r)]));
      });
      showLogic(a.type, d.logic);
      windowNote.textContent = d.rollout.length >= ROLLOUT ? 'the latest ' + ROLLOUT + ' entries (stepping back starts in an unknown state)' : '';
      var atEnd = Number(slider.value) === Number(slider.max);
      slider.max = String(d.rollout.length);
      if (!stepping || atEnd) slider.value = slider.max;
      showState();
    }
    // The agent's pending durable timers: how many, the next deadline, the earliest few.
    function drawTimers(t) {
      t = t || { count: 0, next: null, now: Date.now(), list: [] };
      timersHead.textContent = 'Timers · ' + t.count;
      timersNext.textContent = '';
      timers.textContent = '';
      if (t.next === null) {
        timers.appendChild(el('li', { cls: 'empty', text: 'none pending' }));
        return;
      }
      timersNext.appendChild(document.createTextNode('next '));
      timersNext.appendChild(el('span', { cls: 'at', text: when(t.next) }));
      timersNext.appendChild(el('span', { cls: 'when', text: ' (' + until(t.next, t.now) + ')' }));
      t.list.forEach(function (x) {
        timers.appendChild(el('li', { 'data-key': x.key, text: x.key + ' · ' + when(x.at) + ' (' + until(x.at, t.now) + ') · ' + x.type }));
      });
      if (t.list.length < t.count) timers.appendChild(el('li', { cls: 'empty', text: '… and ' + (t.count - t.list.length) + ' more' }));
    }
    function load() {
      return getJSON('/api/agent/' + encodeURIComponent(id) + '?rollout=' + ROLLOUT).then(drawDetail).catch(function (e) {
        head.textContent = e.status === 404 ? 'Agent "' + id + '" does not exist.' : e.message || String(e);
      });
    }
    var refresh = throttle(load, 250);
    slider.oninput = function () {
      stepping = Number(slider.value) < Number(slider.max);
      sliderInfo.textContent = stepping ? 'entry ' + slider.value + ' of ' + slider.max : 'live';
      if (!stepping) Array.prototype.forEach.call(timeline.children, function (li) { li.classList.remove('past'); });
      showState();
    };
    onBatch = function (batch) {
      var mine = false;
      batch.events.forEach(function (e) {
        if (e.id !== id) return;
        mine = true;
        if (STATE_AFTER[e.name]) liveState = STATE_AFTER[e.name];
      });
      if (!mine) return;
      var badge = document.getElementById('agent-state');
      if (badge) { badge.className = 'badge ' + liveState; badge.textContent = liveState; }
      showState();
      refresh();
    };
    // The agent's own statechart, when its logic is one; lit by its current state value.
    function showLogic(type, l) {
      var value = l && l.value !== null && l.value !== undefined ? l.value : null;
      logicInfo.textContent = !l ? '' : (l.drawable ? 'Its statechart' : l.kind === 'turn' ? 'A turn function (fromTurn): no statechart of its own' :
        'Its statechart is not available here (a stored view has no agent definitions)') +
        (value !== null ? ' · state ' + JSON.stringify(value) + (l.resident ? '' : ' (as stored)') : '');
      if (!l || !l.drawable) { logicBox.textContent = ''; logic = null; logicType = null; return; }
      if (logicType === type) return; // lit by showState()
      logicType = type;
      chartOf('/api/machine/' + encodeURIComponent(type)).then(function (g) {
        if (logicType !== type) return;
        logic = { g: g, chart: drawChart(g, 'logicchart') };
        logicHead.textContent = 'Logic · ' + g.machineId;
        logicBox.textContent = '';
        logicBox.appendChild(logic.chart.svg);
        showState();
      }).catch(function (e) { logicInfo.textContent = String(e); });
    }
    chartOf('/api/lifecycle').then(function (g) { lifecycle = g; chart = drawChart(g, 'statechart'); chartBox.appendChild(chart.svg); showState(); });
    load();
  }

  route();
})();
`;

/** The whole page. */
export const INSPECTOR_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>residency inspector</title>
<style>${CSS}</style>
</head>
<body>
<header><h1><a href="#/">residency inspector</a></h1><span id="conn" class="conn off">connecting…</span></header>
<main id="view"></main>
<script>${JS}</script>
</body>
</html>
`;
