// qoscope war-room wall (docs/WALL.md). Plain JavaScript, no build step:
// this file is what the browser runs. It reads the query API of
// `qoscope serve` (docs/API.md) with the viewer's bearer token, listens to
// /api/v1/live and redraws every panel when a new minute row lands.
// Everything is built with DOM calls and textContent: no data ever goes
// through innerHTML.
'use strict';

(() => {
  const TOKEN_KEY = 'qoscope_token';
  const SEEN_KEY = 'qoscope_seen_alerts';
  const SVG = 'http://www.w3.org/2000/svg';
  const MINUTE = 60e3;
  const RANGES = { '15m': 15, '60m': 60, '3h': 180, '6h': 360, '24h': 1440 };
  const FILTERS = ['vendor', 'province', 'isp', 'stream'];
  // The headline tiles (docs/METRICS.md names). better: which direction is
  // good, for the colour and the word of a change.
  const TILES = [
    { m: 'users', label: 'Users', fmt: 'int', better: 'up' },
    { m: 'stutter_rate_uv', label: 'Stutter rate (UV)', fmt: 'pct', better: 'down' },
    { m: 'zero_stutter_rate', label: 'Zero-stutter rate', fmt: 'pct', better: 'up' },
    { m: 'first_frame_ms_p50', label: 'First frame p50', fmt: 'ms', better: 'down' },
    { m: 'first_frame_ms_p90', label: 'First frame p90', fmt: 'ms', better: 'down' },
    { m: 'first_frame_ms_p99', label: 'First frame p99', fmt: 'ms', better: 'down' },
    { m: 'fast_open_rate', label: 'Fast open ≤ 1 s', fmt: 'pct', better: 'up' },
    { m: 'pull_connect_rate', label: 'Pull connect rate', fmt: 'pct', better: 'up' },
    { m: 'push_connect_rate', label: 'Push connect rate', fmt: 'pct', better: 'up' },
    { m: 'push_drop_rate', label: 'Push drop rate', fmt: 'pct', better: 'down' },
  ];
  // A tile's rate or quantile over fewer than this many users, attempts or
  // samples is dimmed: 1 of 1 pushes dropped reads 100 % (the same floor as
  // the worst-streams ranking's min_users).
  const FEW = 20;
  const STATUS = {
    ok: { icon: '✓', text: 'bitrate OK' },
    low_bitrate: { icon: '▼', text: 'LOW BITRATE' },
    low_fps: { icon: '◆', text: 'LOW FRAME RATE' },
    no_data: { icon: '—', text: 'N/A · no data this minute' },
  };
  // Problems first: a red card, then a silent line, then a low frame rate;
  // the healthy lines last, as compact chips (docs/WALL.md).
  const STATUS_ORDER = { low_bitrate: 0, no_data: 1, low_fps: 2, ok: 3 };

  const $ = (id) => document.getElementById(id);
  const q0 = new URLSearchParams(location.search);
  const view = {
    kiosk: q0.get('kiosk') === '1',
    range: RANGES[q0.get('range')] ? q0.get('range') : '60m',
    to: parseTo(q0.get('to')),
    stale: Number(q0.get('stale')) > 0 ? Number(q0.get('stale')) : 30,
    filters: {},
  };
  for (const f of FILTERS) view.filters[f] = (q0.get(f) || '').trim();

  let token = takeToken();
  // clock.offset: the server's clock minus this page's, from the newest
  // answer's Date header.
  const clock = { offset: 0 };
  const serverNow = () => Date.now() + clock.offset;
  const live = { info: null, received: 0, lastId: '', connected: false };
  const compareCache = new Map();
  let seen = loadSeen();
  let firstAlerts = true;

  // ---- helpers --------------------------------------------------------

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of kids.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
    return el;
  }

  function parseTo(s) {
    if (!s) return null;
    const d = /^\d+$/.test(s) ? new Date(Number(s) * 1000) : new Date(s);
    return isNaN(d) ? null : d;
  }

  function iso(d) { return new Date(d).toISOString().replace('.000Z', 'Z'); }
  function hhmm(d) { return iso(d).slice(11, 16) + ' UTC'; }

  const nf = (digits) => new Intl.NumberFormat('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  const fmtInt = nf(0), fmt1 = nf(1), fmt2 = nf(2);

  // fmt writes v as the wall shows it; tests compare the DOM's data-v
  // attribute (the raw number) with the API, and the text with this rule.
  function fmt(v, kind) {
    if (v === null || v === undefined || !isFinite(v)) return '—';
    switch (kind) {
      case 'pct': return fmt2.format(v * 100) + ' %';
      case 'ms': return fmtInt.format(v) + ' ms';
      case 'int': return fmtInt.format(v);
      case 'kbps': return fmtInt.format(v) + ' kbit/s';
      case 'fps': return fmt1.format(v) + ' fps';
      default: return fmt2.format(v);
    }
  }

  function filterParams(q, dims) {
    for (const f of dims) {
      const v = view.filters[f];
      if (v) q.append('filter', (f === 'stream' ? 'stream_id' : f) + ':' + v);
    }
    return q;
  }

  class ApiError extends Error {
    constructor(status, msg) { super(msg); this.status = status; }
  }

  async function api(path, params, init) {
    const url = path + (params ? '?' + params.toString() : '');
    const headers = Object.assign({ Authorization: 'Bearer ' + token }, (init && init.headers) || {});
    const r = await fetch(url, Object.assign({ cache: 'no-store' }, init, { headers }));
    // The server's clock (Date, whole seconds, so never ahead of it): which
    // minute has ended is judged by it, not by this screen's clock.
    const date = Date.parse(r.headers.get('Date') || '');
    if (!isNaN(date)) clock.offset = date - Date.now();
    // A shared answer past its ttl comes back while serve refreshes it
    // (docs/API.md, X-Cache: stale): ask again once the fresh one is in.
    if (r.headers.get('X-Cache') === 'stale') staleSeen = true;
    let body = null;
    try { body = await r.json(); } catch (_) { /* not JSON: say the status */ }
    if (r.status === 401) needLogin((body && body.error) || 'the token was refused');
    if (!r.ok) throw new ApiError(r.status, (body && body.error) || r.status + ' ' + r.statusText);
    return body;
  }

  // A panel fed by an endpoint that another part of serve provides (alerts,
  // blacklist, scores) hides itself while that endpoint answers 404.
  function optional(panel, p) {
    return p.then((v) => { $(panel).hidden = false; return v; }, (e) => {
      if (e instanceof ApiError && e.status === 404) { $(panel).hidden = true; return null; }
      throw e;
    });
  }

  function panelError(panel, e) {
    const el = $(panel).querySelector('.err');
    if (!el) return;
    el.hidden = !e;
    el.textContent = e ? (e.message || String(e)) : '';
  }

  function toast(msg) {
    const t = $('toast');
    t.textContent = msg;
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.hidden = true; }, 5000);
  }

  // ---- token -------------------------------------------------------------

  // The token comes in the URL fragment (never sent to a server, never in
  // access logs), moves to this tab's sessionStorage and leaves the URL, so
  // a copied link or a screenshot of the address bar does not carry it.
  function takeToken() {
    if (location.hash.length > 1) {
      const hp = new URLSearchParams(location.hash.slice(1));
      const t = hp.get('token');
      if (t) {
        try { sessionStorage.setItem(TOKEN_KEY, t); } catch (_) { /* storage off: keep it in memory */ }
        hp.delete('token');
        const rest = hp.toString();
        history.replaceState(null, '', location.pathname + location.search + (rest ? '#' + rest : ''));
        return t;
      }
    }
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (_) { return ''; }
  }

  // A new #token=… in the address bar of an open tab (another token
  // pasted in) changes no page: the browser only fires hashchange.
  window.addEventListener('hashchange', () => {
    const t = takeToken();
    if (t && t !== token) { token = t; start(); }
  });

  function needLogin(why) {
    if (view.kiosk) { banner('no valid token: open this screen as /?kiosk=1#token=… (' + why + ')'); return; }
    $('login').hidden = false;
    const e = $('login-err');
    e.hidden = !why;
    e.textContent = why || '';
  }

  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    token = ev.target.token.value.trim();
    try { sessionStorage.setItem(TOKEN_KEY, token); } catch (_) { /* memory only */ }
    $('login').hidden = true;
    start();
  });

  function banner(msg) {
    const b = $('banner');
    b.hidden = !msg;
    b.textContent = msg || '';
  }

  // ---- filters in the URL ---------------------------------------------------

  function writeURL() {
    const q = new URLSearchParams();
    for (const f of FILTERS) if (view.filters[f]) q.set(f, view.filters[f]);
    if (view.range !== '60m') q.set('range', view.range);
    if (view.to) q.set('to', iso(view.to));
    if (view.kiosk) q.set('kiosk', '1');
    if (q0.get('stale')) q.set('stale', q0.get('stale'));
    const s = q.toString();
    history.replaceState(null, '', location.pathname + (s ? '?' + s : ''));
  }

  function fillForm() {
    const f = $('filters');
    for (const k of FILTERS) f[k].value = view.filters[k];
    f.range.value = view.range;
    f.to.value = view.to ? iso(view.to).slice(0, 16) : '';
  }

  $('filters').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = ev.target;
    for (const k of FILTERS) view.filters[k] = f[k].value.trim();
    view.range = RANGES[f.range.value] ? f.range.value : '60m';
    view.to = f.to.value ? parseTo(f.to.value + 'Z') : null;
    writeURL();
    compareCache.clear();
    refresh();
  });
  $('clear').addEventListener('click', () => {
    for (const k of FILTERS) view.filters[k] = '';
    view.range = '60m';
    view.to = null;
    fillForm();
    writeURL();
    compareCache.clear();
    refresh();
  });

  const known = { vendor: new Set(), province: new Set(), isp: new Set(), stream: new Set() };
  function learn(kind, v) {
    if (!v || known[kind].has(v) || known[kind].size > 500) return;
    known[kind].add(v);
    $('dl-' + kind).append(h('option', { value: v }));
  }

  // ---- live --------------------------------------------------------------

  // EventSource cannot send an Authorization header, so the stream is read
  // with fetch; reconnects follow the server's retry with a growing delay
  // and Last-Event-ID, forever (a kiosk recovers by itself).
  async function liveLoop() {
    let delay = 1000;
    for (;;) {
      const ctl = new AbortController();
      let watchdog = 0;
      const arm = () => { clearTimeout(watchdog); watchdog = setTimeout(() => ctl.abort(), 45e3); };
      try {
        const headers = { Authorization: 'Bearer ' + token, Accept: 'text/event-stream' };
        if (live.lastId) headers['Last-Event-ID'] = live.lastId;
        arm();
        const r = await fetch('/api/v1/live', { headers, cache: 'no-store', signal: ctl.signal });
        if (r.status === 401) needLogin('the token was refused');
        if (!r.ok || !r.body) throw new Error('live stream: HTTP ' + r.status);
        setConn(true, 'live');
        delay = 1000;
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          arm(); // heartbeats (serve.live.heartbeat) keep the watchdog quiet
          buf = (buf + value).replace(/\r\n?/g, '\n');
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const ev = parseEvent(block);
            if (ev.retry) delay = Math.max(1000, ev.retry);
            if (ev.id) live.lastId = ev.id;
            if (ev.event === 'latest' && ev.data) onLive(JSON.parse(ev.data));
          }
        }
        setConn(false, 'live stream ended; reconnecting');
      } catch (e) {
        setConn(false, 'live stream lost (' + (e.message || e) + '); reconnecting');
      } finally {
        clearTimeout(watchdog);
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 15000);
    }
  }

  function parseEvent(block) {
    const ev = { data: '' };
    for (const line of block.split('\n')) {
      if (!line || line[0] === ':') continue;
      const i = line.indexOf(':');
      const k = i < 0 ? line : line.slice(0, i);
      const v = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (k === 'data') ev.data += (ev.data ? '\n' : '') + v;
      else if (k === 'id') ev.id = v;
      else if (k === 'event') ev.event = v;
      else if (k === 'retry') ev.retry = Number(v);
    }
    return ev;
  }

  function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

  function setConn(ok, text) {
    live.connected = ok;
    const c = $('conn');
    c.textContent = ok ? '● ' + text : '⚠ ' + text;
    c.classList.toggle('bad', !ok);
  }

  function onLive(ev) {
    const client = (ev.headlines || []).find((x) => x.source === 'client') || (ev.headlines || [])[0];
    if (client) {
      live.info = client;
      live.received = Date.now();
      tickAge();
    }
    if (!view.to) refresh();
  }

  // The data's age: the event's age_seconds plus the time since it came.
  function tickAge() {
    const a = $('age');
    if (view.to) {
      a.className = 'age';
      a.textContent = 'history view at ' + iso(view.to) + ' (not live)';
      return;
    }
    if (!live.info) {
      a.className = 'age stale';
      a.textContent = 'no data yet';
      return;
    }
    const age = live.info.age_seconds + (Date.now() - live.received) / 1000;
    const stale = age > view.stale;
    a.className = 'age ' + (stale ? 'stale' : 'fresh');
    a.dataset.age = age.toFixed(1);
    a.textContent = (stale ? 'STALE · ' : '') + 'data age ' + (age < 120 ? Math.round(age) + ' s' : Math.round(age / 60) + ' min');
  }

  // ---- refresh -------------------------------------------------------------

  let running = false;
  let again = false;
  let staleSeen = false;
  let staleTimer = 0;
  async function refresh() {
    if (running) { again = true; return; }
    running = true;
    staleSeen = false;
    try {
      const m = await shownMinute();
      await Promise.all([tiles(m), streams(m), regions(m), vendors(m), worst(m), scores(), blacklist()].map((p) => p.catch((e) => console.warn(e))));
    } finally {
      running = false;
      if (again) { again = false; refresh(); }
      else if (staleSeen) { clearTimeout(staleTimer); staleTimer = setTimeout(refresh, 1000); }
    }
  }

  // ---- the minute shown ------------------------------------------------------

  // shownMinute picks the one minute every panel shows (docs/WALL.md, "Which
  // minute"): the newest minute that has ENDED, so no panel shows the few
  // seconds of the minute in progress. Live, that is the minute before the
  // newest minute with client rows (the aggregator writes the minute in
  // progress every few seconds: its newest minute is the one in progress),
  // never later than the last minute ended by the server's clock (a fast
  // device clock can open a window up to max_future_skew ahead). In a
  // history view (`to`), the newest minute before `to`, capped the same way.
  // Neither depends on this screen's clock. Returns {at, inProgress} in ms.
  async function shownMinute() {
    const limit = () => (view.to ? Math.min(view.to.getTime(), serverNow()) : serverNow());
    const cap = () => Math.floor(limit() / MINUTE) * MINUTE - MINUTE;
    // Rounded to the minute (and past a page clock a little off), so that
    // screens ask the same question and share serve's answer.
    const to = view.to ? view.to.getTime() : Math.floor(Date.now() / MINUTE) * MINUTE + 3 * MINUTE;
    let newest = null;
    try {
      const s = await api('/api/v1/series', new URLSearchParams({ metric: 'users', step: '1m', from: iso(to - 90 * MINUTE), to: iso(to) }));
      const pts = ((s.groups[0] && s.groups[0].points) || []).filter((p) => p.v !== null);
      if (pts.length) newest = Date.parse(pts[pts.length - 1].t);
    } catch (e) {
      console.warn('the newest minute:', e.message);
    }
    if (newest === null) return { at: cap(), inProgress: null };
    const at = Math.min(view.to ? newest : newest - MINUTE, cap());
    return { at, inProgress: newest > at ? newest : null };
  }

  // when writes a panel's minute into its header: HH:MM UTC and whether
  // any of its rows is still provisional.
  function when(id, at, rows) {
    const el = $(id);
    if (!el) return;
    const prov = rows.some((r) => !r.final);
    el.textContent = hhmm(at) + (rows.length ? (prov ? ' · provisional' : ' · final') : ' · no rows');
    el.classList.toggle('prov-mark', prov);
  }

  // ---- tiles ---------------------------------------------------------------

  function tileEl(t) {
    let el = document.querySelector('.tile[data-metric="' + t.m + '"]');
    if (el) return el;
    el = h('article', { class: 'tile', 'data-metric': t.m },
      h('div', { class: 'name' }, h('span', { text: t.label }), h('span', { class: 'badge' })),
      h('div', { class: 'value', text: '—' }),
      h('div', { class: 'cmp' }, h('span', { class: 'dod', text: 'd/d —' }), h('span', { class: 'wow', text: 'w/w —' }), h('span', { class: 'over' })),
      h('p', { class: 'err', hidden: true }));
    $('tiles').append(el);
    return el;
  }

  // Each tile: the value of the shown minute (m.at), its badge, d/d and
  // w/w, and a sparkline of the range ending with that minute. The 24 h
  // range draws 5-minute points and asks for the minute's value apart.
  async function tiles(m) {
    const minutes = RANGES[view.range];
    const step = minutes > 360 ? '5m' : '1m';
    const stepMs = step === '5m' ? 5 * MINUTE : MINUTE;
    const to = Math.floor((m.at + MINUTE) / stepMs) * stepMs;
    const from = to - minutes * MINUTE;
    await Promise.all(TILES.map(async (t) => {
      const el = tileEl(t);
      const err = el.querySelector('.err');
      try {
        const q = filterParams(new URLSearchParams({ metric: t.m, step, from: iso(from), to: iso(to) }), FILTERS);
        const s = await api('/api/v1/series', q);
        const pts = (s.groups[0] && s.groups[0].points) || [];
        let pt = step === '1m' ? pts.find((p) => Date.parse(p.t) === m.at) : null;
        if (step !== '1m') {
          const one = await api('/api/v1/series', filterParams(new URLSearchParams({ metric: t.m, step: '1m', from: iso(m.at), to: iso(m.at + MINUTE) }), FILTERS));
          pt = one.groups[0] && one.groups[0].points[0];
        }
        err.hidden = true;
        drawTile(el, t, pt || null, m.at, pts, step, s.n_unit);
        await compare(el, t, pt || { t: iso(m.at), v: null });
      } catch (e) {
        err.hidden = false;
        err.textContent = e.message;
      }
    }));
    $('minute').textContent = 'minute ' + hhmm(m.at) + ' (last ended)' +
      (m.inProgress ? ' · ' + hhmm(m.inProgress).slice(0, 5) + ' in progress, not shown' : '');
  }

  function drawTile(el, t, last, at, pts, step, nUnit) {
    const v = el.querySelector('.value');
    v.textContent = fmt(last ? last.v : null, t.fmt);
    // What the value is over (the API's n), so that a rate over a handful
    // is not read as one over thousands.
    const over = el.querySelector('.over');
    const n = last && last.n !== undefined ? last.n : null;
    const few = n !== null && n < FEW;
    over.textContent = n !== null ? 'of ' + fmtInt.format(n) + ' ' + (n === 1 ? singular(nUnit) : nUnit) : '';
    over.classList.toggle('few', few);
    over.title = few ? 'fewer than ' + FEW + ' ' + nUnit + ': this value is noise' : '';
    el.classList.toggle('thin', few);
    v.dataset.v = last && last.v !== null ? String(last.v) : '';
    v.dataset.t = last ? last.t : '';
    const b = el.querySelector('.badge');
    b.className = 'badge ' + (last ? (last.final ? 'final' : 'prov') : '');
    b.textContent = (last ? (last.final ? 'final ' : 'provisional ') : 'no data ') + hhmm(at).slice(0, 5);
    b.title = last && !last.final ? 'this minute can still change (its allowed lateness has not passed)' : '';
    el.querySelector('svg') && el.querySelector('svg').remove();
    el.insertBefore(sparkline(pts, step), el.querySelector('.err'));
  }

  // The API's units are plural nouns: pushes, users, user-minutes.
  function singular(unit) {
    return unit.endsWith('shes') ? unit.slice(0, -2) : unit.replace(/s$/, '');
  }

  // One SVG polyline per run of points; the provisional tail is dashed.
  function sparkline(pts, step) {
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('class', 'spark');
    svg.setAttribute('viewBox', '0 0 100 30');
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('role', 'img');
    const vals = pts.filter((p) => p.v !== null);
    svg.setAttribute('aria-label', 'last ' + view.range + ' at ' + step + ', ' + vals.length + ' points');
    if (vals.length === 0) return svg;
    const t0 = Date.parse(pts[0].t);
    const t1 = Math.max(Date.parse(pts[pts.length - 1].t), t0 + 1);
    let lo = Infinity, hi = -Infinity;
    for (const p of vals) { lo = Math.min(lo, p.v); hi = Math.max(hi, p.v); }
    if (hi === lo) { hi += 1; lo -= 1; }
    const xy = (p) => ((Date.parse(p.t) - t0) / (t1 - t0) * 98 + 1).toFixed(2) + ',' + (28 - (p.v - lo) / (hi - lo) * 26).toFixed(2);
    const fin = vals.filter((p) => p.final);
    const firstProv = vals.findIndex((p) => !p.final);
    const prov = firstProv < 0 ? [] : vals.slice(Math.max(0, firstProv - 1));
    for (const [set, cls] of [[fin, ''], [prov, 'prov']]) {
      if (set.length === 0) continue;
      const pl = document.createElementNS(SVG, 'polyline');
      pl.setAttribute('points', set.map(xy).join(' '));
      if (cls) pl.setAttribute('class', cls);
      svg.append(pl);
    }
    const last = vals[vals.length - 1];
    const [cx, cy] = xy(last).split(',');
    const c = document.createElementNS(SVG, 'circle');
    c.setAttribute('cx', cx); c.setAttribute('cy', cy); c.setAttribute('r', '1.6');
    svg.append(c);
    return svg;
  }

  // The same minute yesterday and a week ago (a final minute does not
  // change, so each is asked once per minute and filter set).
  async function compare(el, t, last) {
    const at = Date.parse(last.t);
    for (const [cls, back, label] of [['dod', 1440, 'd/d'], ['wow', 10080, 'w/w']]) {
      const when = new Date(at - back * MINUTE);
      const key = [t.m, cls, when.getTime(), JSON.stringify(view.filters)].join('|');
      let old = compareCache.get(key);
      if (old === undefined) {
        const q = filterParams(new URLSearchParams({ metric: t.m, step: '1m', from: iso(when), to: iso(when.getTime() + MINUTE) }), FILTERS);
        const s = await api('/api/v1/series', q);
        const p = s.groups[0] && s.groups[0].points[0];
        old = p ? p.v : null;
        if (compareCache.size > 2000) compareCache.clear();
        compareCache.set(key, old);
      }
      const span = el.querySelector('.' + cls);
      span.className = cls;
      span.title = label + ': against ' + iso(when) + ' (' + fmt(old, t.fmt) + ')';
      if (old === null || last.v === null) { span.textContent = label + ' —'; continue; }
      let d, text;
      if (t.fmt === 'pct') { d = (last.v - old) * 100; text = (d >= 0 ? '+' : '−') + fmt2.format(Math.abs(d)) + ' pp'; }
      else if (old === 0) { d = last.v; text = d === 0 ? '±0' : 'new'; }
      else { d = (last.v - old) / Math.abs(old) * 100; text = (d >= 0 ? '+' : '−') + fmt1.format(Math.abs(d)) + ' %'; }
      const up = d > 0, flat = d === 0;
      const good = flat ? null : (up === (t.better === 'up'));
      span.classList.add(good === null ? 'flat' : good ? 'better' : 'worse');
      span.textContent = label + ' ' + (flat ? '→ ' : up ? '▲ ' : '▼ ') + text + (good === null ? '' : good ? ' better' : ' worse');
    }
  }

  // ---- upstream cards ------------------------------------------------------

  const MAX_CARDS = 96, MAX_CHIPS = 400;
  async function streams(m) {
    try {
      const s = await api('/api/v1/streams', new URLSearchParams({ at: iso(m.at) }));
      let cards = s.cards || [];
      for (const c of cards) learn('stream', c.stream_id);
      if (view.filters.stream) cards = cards.filter((c) => c.stream_id === view.filters.stream);
      cards.sort((a, b) => (STATUS_ORDER[a.status] ?? 9) - (STATUS_ORDER[b.status] ?? 9) ||
        a.stream_id.localeCompare(b.stream_id) || (a.line === 'primary' ? -1 : 1));
      when('streams-at', m.at, cards);
      // Problems full-size, first; the healthy lines as one small chip per
      // stream, so 40 lines take two rows and the panels below stay on the
      // first screen.
      const problems = cards.filter((c) => c.status !== 'ok');
      const healthy = cards.filter((c) => c.status === 'ok').slice(0, MAX_CHIPS);
      const count = (st) => cards.filter((c) => c.status === st).length;
      $('streams-sum').textContent = [['low_bitrate', '▼ %d low bitrate'], ['no_data', '— %d no data'], ['low_fps', '◆ %d low frame rate'], ['ok', '✓ %d OK']]
        .filter(([st]) => count(st) > 0).map(([st, f]) => f.replace('%d', count(st))).join(' · ');
      const box = $('streams');
      box.hidden = problems.length === 0;
      box.replaceChildren(...problems.slice(0, MAX_CARDS).map(card));
      if (problems.length > MAX_CARDS) box.append(h('div', { class: 'more', text: '+' + (problems.length - MAX_CARDS) + ' more problems' }));
      const byStream = new Map();
      for (const c of healthy) {
        if (!byStream.has(c.stream_id)) byStream.set(c.stream_id, []);
        byStream.get(c.stream_id).push(c);
      }
      const chips = $('chips');
      chips.replaceChildren(...[...byStream.entries()].map(([sid, lines]) => chip(sid, lines)));
      if (cards.filter((c) => c.status === 'ok').length > MAX_CHIPS) chips.append(h('div', { class: 'more', text: '+ more OK lines' }));
      if (cards.length === 0) chips.append(h('div', { class: 'more', text: 'no upstream lines at this minute' }));
      panelError('p-streams', null);
    } catch (e) { panelError('p-streams', e); }
  }

  const LINE_ABBR = { primary: 'P', backup: 'B' };
  // chip: a stream's healthy lines, one row each (P/B, fps in blue,
  // bitrate in green); the card's full text is its title.
  function chip(sid, lines) {
    return h('div', { class: 'chip', 'data-stream': sid },
      // The spaces are for textContent (and screen readers); a flex box
      // does not draw them.
      h('div', { class: 'cid' }, h('span', { class: 'sid', text: sid }), ' ', h('span', { class: 'okmark', text: '✓ OK' })),
      ...lines.map((c) => h('div', { class: 'card mini st-ok', 'data-stream': c.stream_id, 'data-line': c.line, 'data-status': c.status,
        title: c.stream_id + ' ' + c.line + ': ✓ bitrate OK, ' + fmt(c.fps_avg, 'fps') + ', ' + fmt(c.bitrate_kbps_avg, 'kbps') +
          ', RTT ' + fmt(c.rtt_ms_avg, 'ms') + (c.final ? ' (final)' : ' (provisional)') },
      h('span', { class: 'ln', text: LINE_ABBR[c.line] || c.line }), ' ', h('span', { class: 'fps', text: fmt(c.fps_avg, 'fps') }), ' ',
      h('span', { class: 'br', text: fmt(c.bitrate_kbps_avg, 'kbps') }))));
  }

  function card(c) {
    const st = STATUS[c.status] || { icon: '?', text: c.status };
    const th = c.thresholds || {};
    let status = st.icon + ' ' + st.text;
    if (c.status === 'low_bitrate') status += ' (< ' + fmt(th.min_bitrate_kbps, 'kbps') + ')';
    if (c.status === 'low_fps') status += ' (< ' + fmt(th.min_fps, 'fps') + ')';
    const na = c.status === 'no_data';
    return h('div', { class: 'card st-' + c.status, 'data-stream': c.stream_id, 'data-line': c.line, 'data-status': c.status,
      title: c.stream_id + ' ' + c.line + (c.final ? ' (final)' : ' (provisional)') },
      h('div', { class: 'head' }, h('span', { class: 'sid', text: c.stream_id }), h('span', { class: 'lineName', text: c.line })),
      h('div', { class: 'status', text: status }),
      h('div', { class: 'fps', text: na ? 'fps N/A' : fmt(c.fps_avg, 'fps') }),
      h('div', { class: 'br', text: na ? 'bitrate N/A' : fmt(c.bitrate_kbps_avg, 'kbps') + (c.status === 'low_bitrate' ? ' ▼' : '') }),
      h('div', { class: 'rtt', text: na ? 'RTT N/A' : 'RTT ' + fmt(c.rtt_ms_avg, 'ms') }));
  }

  // ---- province × ISP ------------------------------------------------------

  // A filter on a dimension the ranking groups by is refused by the API
  // (docs/API.md): those filters are applied to the rows here instead.
  async function breakdown(m, metric, by, extra, more) {
    // Always the shown minute: without `at` the API picks the newest
    // minute, the one in progress.
    const q = new URLSearchParams(Object.assign({ metric, by, extra, at: iso(m.at) }, more));
    const dims = by.split(',');
    const local = [];
    for (const f of FILTERS) {
      const d = f === 'stream' ? 'stream_id' : f;
      const v = view.filters[f];
      if (!v) continue;
      if (dims.includes(d)) local.push([d, v]);
      else q.append('filter', d + ':' + v);
    }
    const b = await api('/api/v1/breakdown', q);
    b.rows = (b.rows || []).filter((r) => local.every(([d, v]) => r.dims[d] === v));
    return b;
  }

  async function regions(m) {
    try {
      const b = await breakdown(m, 'stutter_rate_uv', 'province,isp', 'zero_stutter_rate', { sort: 'users', limit: '200' });
      for (const r of b.rows) { learn('province', r.dims.province); learn('isp', r.dims.isp); }
      when('heat-at', m.at, b.rows);
      when('regions-at', m.at, b.rows);
      regionTable(b.rows.slice(0, 15));
      heatMap(b.rows);
      panelError('p-regions', null);
      panelError('p-heat', null);
    } catch (e) { panelError('p-regions', e); panelError('p-heat', e); }
  }

  function regionTable(rows) {
    const t = $('regions');
    t.replaceChildren(h('tr', {}, h('th', { class: 'txt', text: 'province' }), h('th', { class: 'txt', text: 'ISP' }),
      h('th', { text: 'users' }), h('th', { text: 'zero-stutter' }), h('th', { text: 'stutter UV' })));
    rows.forEach((r) => {
      const z = r.extra && r.extra.zero_stutter_rate;
      t.append(h('tr', { 'data-province': r.dims.province, 'data-isp': r.dims.isp },
        h('td', { class: 'txt', text: r.dims.province }), h('td', { class: 'txt', text: r.dims.isp }),
        h('td', { text: fmt(r.volume, 'int') }), h('td', { text: fmt(z, 'pct') }),
        h('td', { class: heatClass(r.value) === 'h4' ? 'bad' : '', text: fmt(r.value, 'pct') + (heatClass(r.value) === 'h4' ? ' ▲' : '') })));
    });
  }

  // Stutter rate classes: < 1 %, < 2 %, < 5 %, < 10 %, ≥ 10 %.
  const HEAT = [0.01, 0.02, 0.05, 0.10];
  function heatClass(v) {
    if (v === null || v === undefined) return 'empty';
    let i = 0;
    while (i < HEAT.length && v >= HEAT[i]) i++;
    return 'h' + i;
  }

  function heatMap(rows) {
    const prov = new Map(), isp = new Map(), cell = new Map();
    for (const r of rows) {
      const p = r.dims.province, s = r.dims.isp, u = r.volume || 0;
      prov.set(p, (prov.get(p) || 0) + u);
      isp.set(s, (isp.get(s) || 0) + u);
      cell.set(p + '\u0000' + s, r);
    }
    const ps = [...prov.keys()].sort((a, b) => prov.get(b) - prov.get(a)).slice(0, 16);
    const is = [...isp.keys()].sort((a, b) => isp.get(b) - isp.get(a)).slice(0, 6);
    const g = $('heat');
    g.style.gridTemplateColumns = 'minmax(6em, auto) repeat(' + Math.max(1, is.length) + ', minmax(4.6em, 1fr))';
    const kids = [h('div', { class: 'hc hh hr', text: 'province · users' })];
    for (const s of is) kids.push(h('div', { class: 'hc hh', text: s }));
    for (const p of ps) {
      kids.push(h('div', { class: 'hc hr', title: p + ': ' + fmt(prov.get(p), 'int') + ' users' }, p, h('span', { class: 'u', text: ' ' + fmt(prov.get(p), 'int') })));
      for (const s of is) {
        const r = cell.get(p + '\u0000' + s);
        const cls = heatClass(r ? r.value : null);
        kids.push(h('div', { class: 'hc ' + cls, 'data-province': p, 'data-isp': s,
          title: r ? p + ' / ' + s + ': stutter ' + fmt(r.value, 'pct') + ', ' + fmt(r.volume, 'int') + ' users' : p + ' / ' + s + ': no data',
          // One decimal: the cell must never be cut ("25.00 …"); the
          // table beside it and the title have two.
          text: r ? fmt1.format(r.value * 100) + ' %' + (cls === 'h4' ? ' ▲' : '') : 'N/A' }));
      }
    }
    g.replaceChildren(...kids);
    const sc = $('heat-scale');
    if (!sc.childElementCount) {
      const labels = ['< 1 %', '1–2 %', '2–5 %', '5–10 %', '≥ 10 % ▲'];
      sc.append('stutter rate: ', ...labels.map((l, i) => h('span', { class: 'h' + i, text: l })), h('span', { class: 'empty', text: 'N/A no data' }));
    }
  }

  // ---- vendors per region ------------------------------------------------

  async function vendors(m) {
    try {
      const b = await breakdown(m, 'stutter_rate_uv', 'vendor,province,isp', 'zero_stutter_rate', { sort: 'users', limit: '120' });
      const regs = new Map();
      for (const r of b.rows) {
        learn('vendor', r.dims.vendor);
        const k = r.dims.province + ' / ' + r.dims.isp;
        if (!regs.has(k)) regs.set(k, { users: 0, rows: [] });
        const g = regs.get(k);
        g.users += r.volume || 0;
        g.rows.push(r);
      }
      when('vendors-at', m.at, b.rows);
      const top = [...regs.entries()].sort((a, b) => b[1].users - a[1].users).slice(0, 8);
      $('vendors').replaceChildren(...top.map(([k, g]) => {
        const max = Math.max(0.001, ...g.rows.map((r) => r.value || 0));
        // The worst vendor: strictly worse than every other one of the
        // region (a tie names nobody).
        const worstRow = g.rows.length > 1 && g.rows.find((r) => (r.value || 0) > 0 && g.rows.every((o) => o === r || (o.value || 0) < (r.value || 0)));
        return h('div', { class: 'region', 'data-region': k }, h('h3', { title: k + ': ' + fmt(g.users, 'int') + ' users' }, k, h('span', { class: 'u', text: ' ' + fmt(g.users, 'int') })),
          ...g.rows.sort((a, b) => a.dims.vendor.localeCompare(b.dims.vendor)).map((r) => {
            const bar = h('div', { class: 'bar' });
            bar.style.width = ((r.value || 0) / max * 100).toFixed(1) + '%';
            const worst = worstRow === r && (r.value || 0) > 0;
            return h('div', { class: 'vrow' + (worst ? ' worst' : ''), 'data-vendor': r.dims.vendor },
              h('span', { class: 'vname', text: r.dims.vendor }), bar, h('span', { text: fmt(r.value, 'pct') }));
          }));
      }));
      panelError('p-vendors', null);
    } catch (e) { panelError('p-vendors', e); }
  }

  // ---- worst streams -------------------------------------------------------

  async function worst(m) {
    try {
      const b = await breakdown(m, 'stutter_rate_uv', 'stream_id', 'zero_stutter_rate,first_frame_ms_p90', { order: 'desc', limit: '10', min_users: String(FEW) });
      $('worst-hint').textContent = 'stutter UV, ≥ ' + FEW + ' users';
      when('worst-at', m.at, b.rows);
      const t = $('worst');
      t.replaceChildren(h('tr', {}, h('th', { class: 'txt', text: 'stream' }), h('th', { text: 'users' }), h('th', { text: 'stutter UV' }),
        h('th', { text: 'zero-stutter' }), h('th', { text: 'first frame p90' })));
      for (const r of b.rows) {
        learn('stream', r.dims.stream_id);
        t.append(h('tr', { 'data-stream': r.dims.stream_id }, h('td', { class: 'txt nw', text: r.dims.stream_id }), h('td', { text: fmt(r.volume, 'int') }),
          h('td', { class: heatClass(r.value) === 'h4' ? 'bad' : '', text: fmt(r.value, 'pct') }),
          h('td', { text: fmt(r.extra && r.extra.zero_stutter_rate, 'pct') }), h('td', { text: fmt(r.extra && r.extra.first_frame_ms_p90, 'ms') })));
      }
      panelError('p-worst', null);
    } catch (e) { panelError('p-worst', e); }
  }

  // ---- scores and blacklist (served when scores are configured) ---------

  async function scores() {
    try {
      const q = new URLSearchParams();
      if (view.filters.province) q.set('province', view.filters.province);
      if (view.filters.isp) q.set('isp', view.filters.isp);
      const s = await optional('p-scores', api('/api/v1/scores', q));
      if (!s) return;
      $('scores-at').textContent = s.at ? hhmm(s.at) : '';
      const regs = (s.regions || []).slice().sort((a, b) => b.demand_mbps - a.demand_mbps).slice(0, 12);
      $('scores').replaceChildren(...regs.map((r) => {
        const vs = r.vendors || [];
        const bar = h('div', { class: 'ratio', role: 'img', 'aria-label': vs.map((v) => v.vendor + ' ' + fmt(v.ratio, 'pct')).join(', ') });
        vs.forEach((v, i) => {
          if (v.ratio <= 0) return;
          const sp = h('span', { class: 'c' + (i % 6), title: v.vendor + ' ' + fmt(v.ratio, 'pct') });
          sp.style.width = (v.ratio * 100).toFixed(2) + '%';
          bar.append(sp);
        });
        return h('div', { class: 'region', 'data-province': r.province, 'data-isp': r.isp },
          h('h3', { title: r.province + ' / ' + r.isp + ': demand ' + fmt(r.demand_mbps, 'int') + ' Mbit/s' },
            // the name gives way (…), the demand is never cut
            h('span', { class: 'rn', text: r.province + ' / ' + r.isp }), ' ', h('span', { class: 'u', text: fmt(r.demand_mbps, 'int') + ' Mbit/s' })),
          r.overloaded ? h('div', { class: 'ovl', title: 'demand above what the eligible vendors\' max_mbps can carry (docs/SCORES.md)', text: '⚠ OVERLOADED' }) : null,
          bar,
          // Each vendor's share in words; a blacklisted one keeps its 0 %
          // and says why in its title (the entry's reason).
          h('div', { class: 'rl' }, ...vs.map((v, i) => h('span', { class: v.blacklisted ? 'off' : '', title: v.reason || '',
            'data-vendor': v.vendor, 'data-ratio': String(v.ratio), 'data-blacklisted': String(!!v.blacklisted) },
            h('span', { class: 'sw c' + (i % 6) }), h('span', { class: 'vn', text: v.vendor }), ' ' + fmt(v.ratio, 'pct'),
            v.blacklisted ? h('strong', { text: ' ⊘ blacklisted' }) : null))));
      }));
      panelError('p-scores', null);
    } catch (e) { panelError('p-scores', e); }
  }

  // GET /api/v1/blacklist's entries (score/live.Entry): by is the
  // operator's token name, alert:<rule> or file; until is set only for an
  // alert that resolved (its hold time).
  const UNTIL = { alert: 'while firing', operator: 'until switched off', file: 'while in the file' };
  function whoText(e) {
    if (e.source === 'alert') return 'alert ' + String(e.by || '').replace(/^alert:/, '');
    if (e.source === 'operator') return 'operator ' + (e.by || '');
    return e.source;
  }

  async function blacklist() {
    try {
      const b = await optional('p-blacklist', api('/api/v1/blacklist'));
      if (!b) return;
      const t = $('blacklist');
      t.replaceChildren(h('tr', {}, h('th', { class: 'txt', text: 'vendor' }), h('th', { class: 'txt', text: 'province / ISP' }),
        h('th', { class: 'txt', text: 'source' }), h('th', { class: 'txt', text: 'reason' }), h('th', { text: 'since' }), h('th', { text: 'until' }),
        h('th', { class: 'admin-only' })));
      for (const e of b.entries || []) {
        learn('vendor', e.vendor);
        // An entry the snapshot could not apply (the region's last
        // eligible vendor, no rows there) says so, with the server's note.
        const reason = (e.reason || '') + (e.applied === false ? ' · ⚠ not applied: ' + (e.note || 'see the scores') : '');
        t.append(h('tr', { 'data-vendor': e.vendor, 'data-province': e.province, 'data-isp': e.isp, 'data-source': e.source,
          class: e.applied === false ? 'unapplied' : '' },
          h('td', { class: 'txt nw', text: '⊘ ' + e.vendor }), h('td', { class: 'txt', text: e.province + ' / ' + e.isp }),
          h('td', { class: 'txt', text: whoText(e) }), h('td', { class: 'txt', text: reason }),
          h('td', { class: 'wrap', text: e.since ? hhmm(e.since) : '' }), h('td', { class: 'wrap', text: e.until ? hhmm(e.until) : (UNTIL[e.source] || '') }),
          // Only the operator's own entry is switched here; an alert's
          // ends with the alert, the file's with the file (docs/SCORES.md).
          h('td', { class: 'admin-only' }, e.source === 'operator' ?
            h('button', { type: 'button', class: 'lift', text: 'lift…', onclick: () => blacklistDialog(e, false) }) : null)));
      }
      if (!(b.entries || []).length) t.append(h('tr', {}, h('td', { class: 'txt', colspan: 7, text: '✓ nothing blacklisted' })));
      panelError('p-blacklist', null);
    } catch (e) { panelError('p-blacklist', e); }
  }

  // ---- alerts ----------------------------------------------------------------

  function loadSeen() {
    try { return new Set(JSON.parse(sessionStorage.getItem(SEEN_KEY) || '[]')); } catch (_) { return new Set(); }
  }
  function saveSeen() {
    try { sessionStorage.setItem(SEEN_KEY, JSON.stringify([...seen].slice(-500))); } catch (_) { /* memory only */ }
  }

  // labelText writes an alert's labels but alertname and severity, which
  // the line already shows.
  function labelText(labels) {
    return Object.entries(labels || {}).filter(([k]) => k !== 'alertname' && k !== 'severity').map(([k, v]) => k + '=' + v).join(' ');
  }

  // Alerts are polled every 2 s: they change with the evaluator (when the
  // aggregators' checkpoints complete a minute), not with the minute rows,
  // and a newly firing one must pop up within seconds. The answer is the
  // evaluator's memory, cheap to ask for.
  async function alerts() {
    try {
      // Silences exist when serve delivers notifications (alert.notify);
      // otherwise the endpoint answers 404 and nothing is marked.
      const [a, sil] = await Promise.all([optional('p-alerts', api('/api/v1/alerts', new URLSearchParams({ state: 'active' }))),
        api('/api/v1/silences').catch((e) => { if (e instanceof ApiError && e.status === 404) return null; throw e; })]);
      if (!a) return;
      const active = ((sil && sil.silences) || []).filter((x) => x.state === 'active');
      // Firing before pending, then critical, warning, info (a stable sort
      // keeps the API's rule order within each).
      const sev = { critical: 0, warning: 1, info: 2 };
      const list = (a.alerts || []).slice().sort((x, y) => ((x.state === 'firing' ? 0 : 1) - (y.state === 'firing' ? 0 : 1)) ||
        ((sev[x.severity] ?? 3) - (sev[y.severity] ?? 3)));
      $('p-alerts').hidden = list.length === 0;
      $('alerts-count').textContent = list.length ? '(' + list.filter((x) => x.state === 'firing').length + ' firing, ' +
        list.filter((x) => x.state !== 'firing').length + ' pending)' : '';
      $('alerts').replaceChildren(...list.map((x) => h('li', { class: x.state, 'data-fingerprint': x.fingerprint, 'data-rule': x.rule },
        h('span', { class: 'sev', text: (x.state === 'firing' ? '● FIRING ' : '◌ pending ') + (x.severity || '') }),
        h('strong', { text: x.rule }),
        h('span', { text: labelText(x.labels) }),
        // The rule's summary says the value in its unit; the bare value
        // when the rule has none.
        x.annotations && x.annotations.summary ? h('span', { class: 'summary', text: x.annotations.summary }) :
          x.value !== null && x.value !== undefined ? h('span', { text: 'value ' + fmt(x.value) }) : null,
        h('span', { class: 'diag', text: (x.diagnosis || []).map((d) => d.text).filter(Boolean).slice(0, 2).join(' · ') }),
        silencedBy(x, active),
        h('button', { type: 'button', class: 'admin-only silence', text: 'silence…', onclick: () => silenceDialog(x) }))));
      const fresh = list.filter((x) => x.state === 'firing' && !seen.has(x.fingerprint + '@' + (x.fired_at || '')));
      for (const x of fresh) seen.add(x.fingerprint + '@' + (x.fired_at || ''));
      if (fresh.length) { saveSeen(); popup(fresh); }
      firstAlerts = false;
    } catch (e) {
      if (!firstAlerts) console.warn('alerts:', e.message);
    }
  }

  // silencedBy names the active silence that mutes alert x (its labels
  // plus alertname, as notify matches them; docs/ALERTS.md "Delivery"):
  // the one ending last. Its notifications are held; the alert still shows.
  function silencedBy(x, silences) {
    const labels = Object.assign({ alertname: x.rule }, x.labels || {});
    const mutes = silences.filter((s) => (s.matchers || []).length > 0 && s.matchers.every((m) => matches(m, labels[m.name] || '')));
    if (!mutes.length) return null;
    const s = mutes.reduce((a, b) => (Date.parse(b.ends_at) > Date.parse(a.ends_at) ? b : a));
    return h('span', { class: 'silenced', title: s.comment || '', text: 'SILENCED until ' + hhmm(s.ends_at) + ' by ' + (s.created_by || '?') });
  }

  // matches is an Alertmanager matcher: =, !=, and the anchored regular
  // expressions =~ and !~.
  function matches(m, v) {
    switch (m.op) {
      case '=': return v === m.value;
      case '!=': return v !== m.value;
      case '=~': case '!~': {
        let re;
        try { re = new RegExp('^(?:' + m.value + ')$'); } catch (_) { return false; }
        return re.test(v) === (m.op === '=~');
      }
      default: return false;
    }
  }

  let popupTimer = 0;
  function popup(list) {
    const body = $('popup-body');
    body.replaceChildren(...list.map((x) => h('div', { class: 'pop-alert', 'data-fingerprint': x.fingerprint, 'data-rule': x.rule },
      h('h3', { text: (x.severity ? x.severity.toUpperCase() + ' · ' : '') + x.rule }),
      h('p', { text: labelText(x.labels) + (!(x.annotations && x.annotations.summary) && x.value !== null && x.value !== undefined ? ' · value ' + fmt(x.value) : '') +
        (x.users ? ' · ' + fmt(x.users, 'int') + ' users' : '') }),
      x.annotations && (x.annotations.summary || x.annotations.description) ?
        h('p', { text: x.annotations.summary || x.annotations.description }) : null,
      h('ul', { class: 'diag' }, ...(x.diagnosis || []).map((d) => h('li', { text: d.text || labelText(d.labels) }))))));
    $('popup-title').textContent = '⚠ ' + (list.length === 1 ? 'alert firing' : list.length + ' alerts firing');
    $('popup').hidden = false;
    clearTimeout(popupTimer);
    if (view.kiosk) popupTimer = setTimeout(() => { $('popup').hidden = true; }, 60e3);
  }
  $('popup-close').addEventListener('click', () => { $('popup').hidden = true; });

  // ---- admin -----------------------------------------------------------------

  let dialogSubmit = null;
  function dialog(title, fields, submit) {
    $('dialog-title').textContent = title;
    $('dialog-fields').replaceChildren(...fields);
    const f = $('dialog-form');
    f.reason.value = '';
    $('dialog-err').hidden = true;
    dialogSubmit = submit;
    $('dialog').hidden = false;
    f.reason.focus();
  }
  $('dialog-cancel').addEventListener('click', () => { $('dialog').hidden = true; });
  $('dialog-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    const reason = f.reason.value.trim();
    if (reason.length < 3) { showDialogErr('a reason is required'); return; }
    try {
      const done = await dialogSubmit(f, reason);
      $('dialog').hidden = true;
      toast(done);
      refresh();
      alerts();
    } catch (e) { showDialogErr(e.message); }
  });
  function showDialogErr(m) { const e = $('dialog-err'); e.hidden = false; e.textContent = m; }

  function field(name, label, value, extra) {
    return h('label', { class: 'block' }, label, h('input', Object.assign({ name, value: value || '', required: true }, extra || {})));
  }

  function post(path, body) {
    return api(path, null, { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });
  }

  function blacklistDialog(e, on) {
    const sel = h('select', { name: 'on' }, h('option', { value: 'true', text: 'on: blacklist (stop sending traffic)' }),
      h('option', { value: 'false', text: 'off: lift the blacklist' }));
    sel.value = on ? 'true' : 'false';
    dialog('Blacklist switch', [field('vendor', 'vendor', e.vendor, { list: 'dl-vendor' }), field('province', 'province', e.province, { list: 'dl-province' }),
      field('isp', 'ISP', e.isp, { list: 'dl-isp' }), h('label', { class: 'block' }, 'switch', sel)],
    async (f, reason) => {
      const a = await post('/api/v1/admin/blacklist', { vendor: f.vendor.value.trim(), province: f.province.value.trim(), isp: f.isp.value.trim(), on: f.on.value === 'true', reason });
      const c = a.change || {};
      // The answer's entry says whether the snapshot applied it.
      const note = a.note || (a.entry && a.entry.applied === false ? 'not applied: ' + (a.entry.note || '') : '');
      return (c.action === 'off' ? 'lifted ' : 'blacklisted ') + c.vendor + ' in ' + c.province + ' / ' + c.isp + (note ? ' · ' + note : '');
    });
  }
  $('admin-blacklist').addEventListener('click', () => blacklistDialog({ vendor: view.filters.vendor, province: view.filters.province, isp: view.filters.isp }, true));

  function silenceDialog(x) {
    const dur = h('select', { name: 'duration' }, ...['30m', '1h', '2h', '6h', '24h'].map((d) => h('option', { value: d, text: d })));
    dur.value = '1h';
    dialog('Silence ' + x.rule, [h('p', { text: labelText(x.labels) }), h('label', { class: 'block' }, 'for', dur)],
      async (f, reason) => {
        const s = await post('/api/v1/admin/silences', silenceBody(x, f.duration.value, reason, new Date()));
        return 'silenced ' + x.rule + ' until ' + hhmm(s.ends_at);
      });
  }

  // silenceBody is POST /api/v1/admin/silences' body (docs/ALERTS.md,
  // "Silences"): one equality matcher per label of the alert, so the
  // silence mutes exactly this alert, from now for the chosen duration.
  function silenceBody(x, duration, reason, now) {
    const labels = Object.assign({ alertname: x.rule }, x.labels || {});
    const matchers = Object.keys(labels).sort().map((k) => ({ name: k, op: '=', value: String(labels[k]) }));
    const mins = { '30m': 30, '1h': 60, '2h': 120, '6h': 360, '24h': 1440 }[duration] || 60;
    return { matchers, ends_at: new Date(now.getTime() + mins * 60000).toISOString(), comment: reason };
  }

  // The admin controls show only for a token with scope admin.
  async function whoami() {
    try {
      const w = await api('/api/v1/whoami');
      document.body.classList.toggle('admin', (w.scopes || []).includes('admin'));
      if (!(w.scopes || []).includes('read')) banner('token "' + w.name + '" lacks scope read: the panels stay empty');
    } catch (e) {
      document.body.classList.remove('admin');
    }
  }

  // ---- start -------------------------------------------------------------------

  let started = false;
  function start() {
    if (!token) { needLogin(''); return; }
    banner('');
    whoami();
    refresh();
    alerts();
    if (started) return;
    started = true;
    liveLoop();
    setInterval(tickAge, 1000);
    setInterval(alerts, 2000);
    // The scores are rebuilt every scores.interval and the blacklist
    // changes with the alerts, not with the minute rows: polled too.
    setInterval(() => { if (!view.to) { scores(); blacklist(); } }, 10000);
    // A safety net when the live stream is down or in a history view, and
    // for panels whose data does not come with a new minute row (scores).
    setInterval(() => { if (!live.connected || view.to) refresh(); }, 15000);
    setInterval(() => { if (live.connected && !view.to) refresh(); }, 30000);
  }

  if (view.kiosk) {
    document.body.classList.add('kiosk');
    // A kiosk has no one to press reload: an unexpected error reloads the
    // page after a pause (the token stays in sessionStorage).
    window.addEventListener('error', () => { setTimeout(() => location.reload(), 30e3); });
  }
  fillForm();
  tickAge();
  start();
})();
