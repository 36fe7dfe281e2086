/* scenic-twin: the patrol officer's phone page (/patrol).
 *
 * The virtual roaming patrol: the scene's camera walks the riverside route
 * (the route comes in the twin configuration, in the scene's local metres),
 * stops at each checkpoint and shows what is around it from the pushed
 * patrol view, calls out alerting assets as it passes them, and logs what it
 * covered: chainage intervals walked and checkpoints stopped at, sent to the
 * server, which keeps their union (a resend changes nothing).
 *
 * Writes (reports, case steps, patrol progress) go through one queue kept in
 * localStorage: a phone on a weak network loses its socket, and what it did
 * meanwhile is sent when the socket is back - each action carries a key the
 * server makes idempotent (a report's request id: sent twice, one case).
 * Text from the server is set with textContent, never as HTML.
 */
(function () {
  "use strict";
  const BASE_SPEED = 12.5;     // m/s at 1x: 2,943 m in 235 s, plus 9 stops of 6 s = 289 s (the goal: <= 300 s)
  const DWELL_S = 6;           // seconds the camera stays at a checkpoint at 1x
  const LONG_PRESS_MS = 600;
  const RESEND_MS = 8000;
  const QKEY = "st-patrol-queue";
  const VIEWS = { eye: { zoom: 19.4, pitch: 72, ahead: 25 }, above: { zoom: 17.7, pitch: 45, ahead: 0 } };

  const P = { route: null, s: 0, playing: false, speed: 1, view: "eye", timeScale: 1, stopLeft: 0, elapsed: 0,
              visited: [], intervals: [], cur: null, anomalies: [], patrolId: null, ended: false, lastFrame: null,
              lastCam: 0, lastProgress: 0, atCp: null, live: {}, mine: {}, lang: "zh", reportXY: null,
              reportWhere: null, queue: [], inflight: null, results: [], callouts: [], tab: "roam", photo: null,
              askedNote: new Set(), mineSig: null };
  window.scenicPatrol = P;

  const T = {
    play: ["▶", "▶"], pause: ["❚❚", "❚❚"], cp: ["巡查点", "Checkpoint"], of: ["/", "/"], km: ["公里", "km"],
    walked: ["已巡", "covered"], time: ["用时", "time"], done: ["巡查完成", "Patrol finished"],
    load: ["人流负荷", "Load"], normal: ["正常", "normal"], alerts: ["附近告警", "Alerts near"],
    cases: ["附近案件", "Cases near"], video: ["近15分钟视频AI事件", "AI video events, last 15 min"],
    cameras: ["附近摄像头", "Cameras near"], none: ["无", "none"], ahead: ["注意：", "Watch: "],
    walk: ["步行约", "walk"], m: ["米", "m"], due: ["时限", "due"], noCases: ["暂无派给我的案件", "No cases assigned to me"],
    notStaff: ["此账号不是巡查员编号（如 patrol-07），没有派给它的案件", "This account is not a patrol staff number (such as patrol-07): no cases are dispatched to it"],
    accept: ["接单", "Accept"], arrive: ["已到场", "Arrived"], handle: ["处置完成", "Handled"],
    notePh: ["处置说明（必填）", "What was done (required)"], needNote: ["请填写处置说明", "Write what was done"],
    queued: ["待发送", "waiting to send"], sent: ["已上报", "Sent"], refused: ["未受理", "Refused"],
    where: ["位置：", "Where: "], here: ["当前巡查位置", "the patrol's position"], pressed: ["长按选定的位置", "the point you long-pressed"],
    photo: ["照片（可选）", "Photo (optional)"], uploading: ["正在上传照片…", "Uploading the photo…"],
    arrived: ["已到场", "on site"], stage: { open: ["待派遣", "to dispatch"], dispatch: ["已派遣", "dispatched"],
      handle: ["处置中", "handling"], verify: ["待核查", "to verify"], close: ["已结案", "closed"] },
    tiers: { red: ["红色", "red"], orange: ["橙色", "orange"], yellow: ["黄色", "yellow"], blue: ["蓝色", "blue"] },
  };
  const tr = (k) => (T[k] ? T[k][P.lang === "en" ? 1 : 0] : k);
  const pick = (o, base) => (o ? (P.lang === "en" ? o[base + "en"] : o[base + "zh"]) || "" : "");
  const $ = (id) => document.getElementById(id);
  function el(tag, cls, text, attrs) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (attrs) for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    return e;
  }
  function uuid() {          // crypto.randomUUID needs a secure context; a control-room LAN may be plain http
    const b = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  // ------------------------------------------------------------------ the route
  function prepare(route) {
    const pts = route.path, cum = [0];
    for (let i = 1; i < pts.length; i++) cum.push(cum[i - 1] + Math.hypot(pts[i][0] - pts[i - 1][0], pts[i][1] - pts[i - 1][1]));
    route.cum = cum;
    return route;
  }
  function at(s) {
    const R = P.route, pts = R.path, cum = R.cum;
    s = Math.max(0, Math.min(s, cum[cum.length - 1]));
    let lo = 0, hi = cum.length - 1;
    while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (cum[mid] <= s) lo = mid; else hi = mid; }
    let i = lo;
    while (i < pts.length - 2 && cum[i + 1] - cum[i] === 0) i++;
    const len = cum[i + 1] - cum[i] || 1, f = (s - cum[i]) / len;
    return [pts[i][0] + f * (pts[i + 1][0] - pts[i][0]), pts[i][1] + f * (pts[i + 1][1] - pts[i][1])];
  }
  function lonlat(xy) {
    const o = window.scenicTwin.spec.origin;
    return [o[0] + xy[0] / (111320 * Math.cos((o[1] * Math.PI) / 180)), o[1] + xy[1] / 110574];
  }
  function toXY(lon, lat) {
    const o = window.scenicTwin.spec.origin;
    return [(lon - o[0]) * 111320 * Math.cos((o[1] * Math.PI) / 180), (lat - o[1]) * 110574];
  }

  function camera(force) {
    const tw = window.scenicTwin;
    if (!tw || !tw.deck || !P.route) return;
    const now = performance.now();
    if (!force && now - P.lastCam < 90) return;        // ~10 camera moves a second is smooth enough on a phone
    P.lastCam = now;
    const v = VIEWS[P.view] || VIEWS.eye;
    const here = at(P.s), ahead = at(P.s + 30);
    let bearing = (Math.atan2(ahead[0] - here[0], ahead[1] - here[1]) * 180) / Math.PI;
    if (Math.hypot(ahead[0] - here[0], ahead[1] - here[1]) < 1) bearing = P.bearing || 0;   // at the very end
    P.bearing = bearing;
    const target = at(P.s + v.ahead);
    const [lon, lat] = lonlat(target);
    tw.deck.setProps({ initialViewState: { longitude: lon, latitude: lat, zoom: v.zoom, pitch: v.pitch, bearing,
      minZoom: tw.home.minZoom, maxZoom: 20, maxPitch: 80, transitionDuration: 0 } });
    const d = tw.deck.props.parent;
    if (d) { d.dataset.roamS = P.s.toFixed(1); }
  }

  // ------------------------------------------------------------------ roaming
  function startPatrol() {
    P.patrolId = uuid();
    P.visited = []; P.intervals = []; P.anomalies = []; P.elapsed = 0; P.ended = false; P.callouts = [];
    P.s = 0; P.cur = [0, 0]; P.stopLeft = 0; P.atCp = null;
    arrive(0);
  }
  function play() {
    if (!P.route) return;
    if (P.ended || !P.patrolId) startPatrol();
    P.playing = !P.playing;
    if (P.playing && !P.cur) P.cur = [P.s, P.s];
    P.lastFrame = null;
    renderControls();
  }
  function checkpointsBetween(a, b) {
    return P.route.checkpoints.filter((c) => c.s > a + 1e-6 && c.s <= b + 1e-6);
  }
  function arrive(i) {
    const cp = P.route.checkpoints[i];
    if (!cp) return;
    if (!P.visited.includes(cp.id)) P.visited.push(cp.id);
    P.atCp = cp.id;
    P.stopLeft = DWELL_S;
    renderCard();
    progress(false);
  }
  function step(dt) {
    if (P.stopLeft > 0) { P.stopLeft -= dt * P.speed; P.elapsed += dt; return; }
    const len = P.route.length_m;
    const before = P.s;
    let after = Math.min(len, P.s + BASE_SPEED * P.speed * dt);
    const cps = checkpointsBetween(before, after);
    if (cps.length) after = cps[0].s;                      // stop at the first checkpoint reached
    // the time actually used for the distance covered (a stop cuts the step short)
    P.elapsed += (after - before) / (BASE_SPEED * P.speed);
    P.s = after;
    P.cur[1] = Math.max(P.cur[1], after);
    for (const a of (P.live.along || [])) {
      if (a.s > before && a.s <= after + 0.01) callout(a);
    }
    if (cps.length) arrive(P.route.checkpoints.indexOf(cps[0]));
    else P.atCp = null;
    if (P.s >= len - 1e-6 && P.stopLeft <= 0) finish();
  }
  function finish() {
    P.playing = false;
    P.ended = true;
    progress(true);
    renderControls();
  }
  function frame(now) {
    if (P.route && P.playing) {
      const dt = P.lastFrame === null ? 0 : Math.min(1.0, (now - P.lastFrame) / 1000) * P.timeScale;
      P.lastFrame = now;
      let left = dt;
      // a slow frame (a software-rendered phone) may cover several checkpoints: take them one by one
      while (left > 0 && P.playing) {
        const chunk = Math.min(left, 0.25);
        step(chunk);
        left -= chunk;
        if (P.s >= P.route.length_m - 1e-6 && P.stopLeft <= 0) break;
      }
      if (P.s >= P.route.length_m - 1e-6 && P.stopLeft <= 0 && !P.ended) finish();
      camera(false);
      renderStatus();
      if (performance.now() - P.lastProgress > 15000) progress(false);
    } else {
      P.lastFrame = null;
    }
    requestAnimationFrame(frame);
  }
  function scrubTo(s) {
    if (!P.route) return;
    if (!P.patrolId || P.ended) startPatrol();
    if (P.cur && P.cur[1] > P.cur[0]) P.intervals.push(P.cur);
    P.s = Math.max(0, Math.min(P.route.length_m, s));
    P.cur = [P.s, P.s];
    P.stopLeft = 0;
    const near = P.route.checkpoints.find((c) => Math.abs(c.s - P.s) < 3);
    P.atCp = near ? near.id : null;
    camera(true);
    renderStatus();
    renderCard();
  }
  function callout(a) {
    if (!P.anomalies.includes(a.id)) P.anomalies.push(a.id);
    P.callouts.push(a.id);
    const box = $("patrol-callout");
    if (!box) return;
    box.textContent = tr("ahead") + pick(a, "") + " · " + pick(a, "place_");
    box.className = "st-callout st-callout-on st-tier-" + (a.tier || "none");
    clearTimeout(P.calloutTimer);
    P.calloutTimer = setTimeout(() => { box.className = "st-callout"; }, 4000);
  }

  // ------------------------------------------------------------------ the queue of writes
  function loadQueue() {
    try { P.queue = JSON.parse(localStorage.getItem(QKEY) || "[]").filter((a) => a && a.kind && a.key); }
    catch (e) { P.queue = []; }
  }
  function saveQueue() {
    // a photo waiting for the network lives in memory only: after a reload its report goes without it
    const plain = P.queue.map((a) => { const { _file, ...rest } = a; return rest; });
    try { localStorage.setItem(QKEY, JSON.stringify(plain)); } catch (e) { /* storage full: kept in memory */ }
    renderQueue();
  }
  function enqueue(action) {
    if (action.kind === "progress") {
      P.queue = P.queue.filter((a) => !(a.kind === "progress" && a.key === action.key));
      if (P.inflight && P.inflight.key === action.key) P.inflight = null;     // send the newer one now
    }
    P.queue.push(action);
    saveQueue();
    pump();
  }
  function pump() {
    if (!P.queue.length) return;
    const head = P.queue[0];
    if (P.inflight && P.inflight.key === head.key && Date.now() - P.inflight.at < RESEND_MS) return;
    if (!window.dash_clientside || !window.dash_clientside.set_props) return;
    P.inflight = { key: head.key, at: Date.now() };
    if (head._file) {                       // made offline with a photo: upload it first
      fetch("/patrol/photo", { method: "POST", body: head._file, credentials: "same-origin" })
        .then((r) => r.json().then((j) => ({ r, j })))
        .then(({ r, j }) => { if (r.ok && j.ok) head.photo = j.sha256; delete head._file; P.inflight = null; saveQueue(); pump(); })
        .catch(() => { P.inflight = { key: head.key, at: Date.now() }; });
      return;
    }
    head.t = Date.now();
    const { _file, ...plain } = head;
    window.dash_clientside.set_props("patrol-action", { data: plain });
  }
  P.pump = pump;
  setInterval(pump, 2000);
  function result(r) {
    if (!r || !r.key) return;
    P.results.push(r);
    // the answer to this very send: a newer version of the same action (the patrol's progress
    // replaced while the older one was on its way) stays queued and goes next
    const i = P.queue.findIndex((a) => a.key === r.key && a.kind === r.kind && a.t === r.t);
    if (i >= 0) {
      const a = P.queue[i];
      // a refusal is final (the server said why); only a lost answer is resent
      P.queue.splice(i, 1);
      if (a.kind !== "progress") P.lastResult = r;
    }
    if (P.inflight && P.inflight.key === r.key) P.inflight = null;
    saveQueue();
    pump();
  }
  function progress(ended) {
    if (!P.patrolId) return;
    P.lastProgress = performance.now();
    const iv = [...P.intervals, ...(P.cur ? [P.cur] : [])].map((p) => [Math.round(p[0] * 10) / 10, Math.round(p[1] * 10) / 10]);
    enqueue({ kind: "progress", key: P.patrolId, intervals: iv, checkpoints: P.visited.slice(),
              anomalies: P.anomalies.slice(0, 500), ended: !!ended });
  }

  // ------------------------------------------------------------------ rendering
  function renderControls() {
    const b = $("roam-play");
    if (b) { b.textContent = P.playing ? tr("pause") : tr("play"); b.setAttribute("aria-pressed", P.playing ? "true" : "false"); }
    const d = window.scenicTwin && window.scenicTwin.deck && window.scenicTwin.deck.props.parent;
    if (d) d.dataset.roam = P.ended ? "ended" : P.playing ? "playing" : "paused";
  }
  function fmtTime(s) { s = Math.round(s); return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0"); }
  function renderStatus() {
    const box = $("roam-status");
    if (!box || !P.route) return;
    const n = P.route.checkpoints.length;
    const done = P.visited.length;
    const parts = [`${tr("cp")} ${done}${tr("of")}${n}`,
                   `${tr("walked")} ${(P.s / 1000).toFixed(2)}/${(P.route.length_m / 1000).toFixed(2)} ${tr("km")}`,
                   `${tr("time")} ${fmtTime(P.elapsed)}`];
    if (P.ended) parts.unshift(tr("done"));
    box.textContent = parts.join(" · ");
    box.dataset.elapsed = P.elapsed.toFixed(1);
    box.dataset.visited = String(done);
    const sc = $("roam-scrub");
    if (sc && document.activeElement !== sc) sc.value = String(Math.round(P.s));
  }
  function renderCard() {
    const box = $("checkpoint-card");
    if (!box || !P.route) return;
    let cp = P.route.checkpoints.find((c) => c.id === P.atCp);
    if (!cp) {                                           // between checkpoints: the last one passed
      const passed = P.route.checkpoints.filter((c) => c.s <= P.s + 0.5);
      cp = passed[passed.length - 1] || P.route.checkpoints[0];
    }
    const d = (P.live.checkpoints || {})[cp.id] || {};
    const nodes = [el("h3", "st-cp-name", `${cp.order}. ${pick(cp, "")}`)];
    const tier = d.tier && d.tier !== "none" ? d.tier : null;
    const load = d.load === null || d.load === undefined ? "—" : Math.round(d.load) + "%";
    nodes.push(el("p", "st-cp-line st-tier-" + (tier || "none"),
                  `${pick(d, "zone_")} · ${tr("load")} ${load}` + (tier ? ` · ${T.tiers[tier][P.lang === "en" ? 1 : 0]}` : "")));
    const al = d.alerts || [];
    nodes.push(el("p", "st-cp-label", `${tr("alerts")}：${al.length || tr("none")}`));
    if (al.length) {
      const ul = el("ul", "st-cp-list");
      for (const a of al) ul.appendChild(el("li", "st-tier-" + a.tier, pick(a, "why_")));
      nodes.push(ul);
    }
    const cs = d.cases || [];
    nodes.push(el("p", "st-cp-label", `${tr("cases")}：${d.case_count || tr("none")}`));
    if (cs.length) {
      const ul = el("ul", "st-cp-list");
      for (const c of cs) ul.appendChild(el("li", null, `${pick(c, "")} · ${pick(c, "place_")}`));
      nodes.push(ul);
    }
    nodes.push(el("p", "st-cp-label", `${tr("video")}：${d.video || 0} · ${tr("cameras")}：${d.cameras || 0}`));
    box.replaceChildren(...nodes);
    box.dataset.checkpoint = cp.id;
  }
  function renderMine() {
    const box = $("my-cases");
    if (!box) return;
    const m = P.mine || {};
    const items = m.items || [];
    // a push that changes nothing here leaves the list alone: a button being tapped stays in the page
    const sig = JSON.stringify([items, m.staff, P.lang]);
    if (sig === P.mineSig && box.children.length) return;
    P.mineSig = sig;
    // what the officer is typing survives the redraw a push causes (every second or so)
    const typed = {};
    let focused = null;
    for (const t of box.querySelectorAll("textarea[data-case]")) {
      typed[t.dataset.case] = t.value;
      if (document.activeElement === t) focused = { id: t.dataset.case, a: t.selectionStart, b: t.selectionEnd };
    }
    if (!items.length) {
      box.replaceChildren(el("li", "st-hint", m.staff === false ? tr("notStaff") : tr("noCases")));
      return;
    }
    box.replaceChildren(...items.map((c) => {
      const li = el("li", "st-my-case st-prio-" + c.priority, null, { "data-case": c.id, "data-status": c.status });
      li.appendChild(el("div", "st-my-title", `${pick(c, "")} · ${pick(c, "place_")}`));
      const meta = [];
      if (c.walk_m !== null && c.walk_m !== undefined) meta.push(`${tr("walk")} ${c.walk_m} ${tr("m")}`);
      meta.push(T.stage[c.stage] ? T.stage[c.stage][P.lang === "en" ? 1 : 0] : c.stage);
      if (c.arrived) meta.push(tr("arrived"));
      if (c.due) meta.push(`${tr("due")} ${c.due}`);
      li.appendChild(el("div", "st-my-meta" + (c.overdue ? " st-overdue" : ""), meta.join(" · ")));
      if (c.note) li.appendChild(el("div", "st-my-note", c.note));
      const row = el("div", "st-my-actions");
      let note = null;
      if ((c.steps || []).includes("handle")) {
        // once the officer was asked for a note, the redraw keeps asking
        note = el("textarea", "st-my-notes", null, { placeholder: tr(P.askedNote.has(c.id) ? "needNote" : "notePh"),
                                                     maxlength: "500", rows: "2", "data-case": c.id });
        if (typed[c.id]) note.value = typed[c.id];
        li.appendChild(note);
      }
      for (const s of c.steps || []) {
        const b = el("button", "st-step st-step-" + s, tr(s), { type: "button" });
        b.addEventListener("click", () => {
          const text = note ? note.value.trim() : "";
          if (s === "handle" && !text) { P.askedNote.add(c.id); note.focus(); note.placeholder = tr("needNote"); return; }
          const act = { kind: "case_step", key: `${c.id}|${s}`, id: c.id, step: s, note: text,
                        xy: P.route ? at(P.s).map((v) => Math.round(v * 10) / 10) : null };
          if (s === "handle" && P.photo) return withPhoto(act);
          enqueue(act);
        });
        row.appendChild(b);
      }
      li.appendChild(row);
      return li;
    }));
    if (focused) {
      const t = box.querySelector(`textarea[data-case="${CSS.escape(focused.id)}"]`);
      if (t) { t.focus(); try { t.setSelectionRange(focused.a, focused.b); } catch (e) { /* not a text field */ } }
    }
  }
  function renderQueue() {
    const box = $("report-queue");
    if (!box) return;
    const waiting = P.queue.filter((a) => a.kind !== "progress").length;
    const parts = [];
    if (waiting) parts.push(`${tr("queued")}: ${waiting}`);
    if (P.lastResult) parts.push(`${P.lastResult.ok ? tr("sent") : tr("refused")}: ${P.lastResult.message || ""}`);
    box.textContent = parts.join(" · ");
    box.dataset.waiting = String(waiting);
  }
  function renderWhere() {
    const box = $("report-where");
    if (!box) return;
    box.textContent = tr("where") + (P.reportXY ? tr("pressed") : tr("here"));
  }

  // ------------------------------------------------------------------ report, photo
  function reportXY() {
    if (P.reportXY) return P.reportXY;
    return P.route ? at(P.s).map((v) => Math.round(v * 10) / 10) : null;
  }
  async function withPhoto(act) {
    const box = $("report-queue");
    if (box) box.textContent = tr("uploading");
    try {
      const r = await fetch("/patrol/photo", { method: "POST", body: P.photo, credentials: "same-origin",
                                               headers: { "Content-Type": "application/octet-stream" } });
      const j = await r.json().catch(() => ({}));
      if (!r.ok || !j.ok) { P.lastResult = { ok: false, message: j.error || String(r.status) }; renderQueue(); return; }
      act.photo = j.sha256;
    } catch (e) {
      // offline: the report goes without waiting; the photo is kept for a retry of the upload
      act._file = P.photo;
    }
    P.photo = null;
    const input = document.querySelector("#report-photo input");
    if (input) input.value = "";
    enqueue(act);
  }
  function sendReport() {
    const type = $("report-type"), note = $("report-note");
    const act = { kind: "report", key: uuid(), category: type ? type.value : "other",
                  note: note ? note.value.trim().slice(0, 500) : "", xy: reportXY() };
    if (note) note.value = "";
    P.reportXY = null;
    renderWhere();
    if (P.photo) return withPhoto(act);
    enqueue(act);
  }
  function photoInput() {
    const box = $("report-photo");
    if (!box || box.querySelector("input")) return;
    box.appendChild(el("span", "st-photo-label", tr("photo")));
    const input = el("input", "st-photo-input", null, { type: "file", accept: "image/jpeg,image/png,image/webp",
                                                         capture: "environment" });
    input.addEventListener("change", () => { P.photo = input.files && input.files[0] ? input.files[0] : null; });
    box.appendChild(input);
  }

  // ------------------------------------------------------------------ tabs, long-press
  function showTab(name) {
    P.tab = name;
    for (const b of document.querySelectorAll(".st-tab")) b.classList.toggle("st-tab-on", b.dataset.tab === name);
    for (const s of document.querySelectorAll(".st-sheet")) s.hidden = !s.classList.contains("st-sheet-" + name);
    if (name === "report") renderWhere();
  }
  function bindLongPress(el0) {
    let down = null, timer = null;
    el0.addEventListener("pointerdown", (e) => {
      down = { x: e.clientX, y: e.clientY, t: e.timeStamp };
      clearTimeout(timer);
      timer = setTimeout(() => {
        const tw = window.scenicTwin;
        if (!down || !tw || !tw.deck) return;
        const r = el0.getBoundingClientRect();
        const vp = tw.deck.getViewports()[0];
        const ll = vp && vp.unproject([down.x - r.left, down.y - r.top]);
        if (!ll) return;
        P.reportXY = toXY(ll[0], ll[1]).map((v) => Math.round(v * 10) / 10);
        el0.dataset.longPress = P.reportXY.join(",");
        P.pressAt = down.t;
        P.tabBefore = P.tab;
        showTab("report");
      }, LONG_PRESS_MS);
    }, true);
    const cancel = (e) => {
      if (down && e.type === "pointermove" && Math.hypot(e.clientX - down.x, e.clientY - down.y) < 8) return;
      // a release handled late (a busy page) that came before the long-press time was a tap after all
      if (down && e.type === "pointerup" && e.timeStamp - down.t < LONG_PRESS_MS && el0.dataset.longPress
          && P.pressAt === down.t) { P.reportXY = null; delete el0.dataset.longPress; showTab(P.tabBefore || "roam"); }
      down = null; clearTimeout(timer);
    };
    for (const ev of ["pointerup", "pointercancel", "pointermove"]) el0.addEventListener(ev, cancel, true);
  }

  // ------------------------------------------------------------------ wiring
  // the page's controls work as soon as they exist, before the scene has loaded
  function bindUI() {
    const bind = (id, ev, fn) => { const e = $(id); if (e && !e._stBound) { e.addEventListener(ev, fn); e._stBound = true; } };
    bind("roam-play", "click", play);
    bind("roam-scrub", "input", (e) => { P.playing = false; renderControls(); scrubTo(Number(e.target.value)); });
    bind("roam-speed", "change", (e) => { P.speed = Number(e.target.value) || 1; });
    bind("roam-view", "change", (e) => { P.view = e.target.value in VIEWS ? e.target.value : "eye"; camera(true); });
    bind("report-send", "click", sendReport);
    for (const b of document.querySelectorAll(".st-tab")) {
      if (!b._stBound) { b.addEventListener("click", () => showTab(b.dataset.tab)); b._stBound = true; }
    }
    photoInput();
  }
  new MutationObserver(() => { if (document.getElementById("roam-play")) bindUI(); })
    .observe(document.documentElement, { childList: true, subtree: true });

  P.attach = function (route, container) {
    P.route = prepare(route);
    window.scenicTwin.tapMaxMs = LONG_PRESS_MS - 50;
    loadQueue();
    bindUI();
    if (!container._stLong) { bindLongPress(container); container._stLong = true; }
    camera(true);
    renderControls(); renderStatus(); renderCard(); renderMine(); renderQueue();
    pump();
  };
  P.apply = function (live, lang) {
    if (lang) P.lang = lang;
    if (live && live.patrol) Object.assign(P.live, live.patrol);
    if (live && live.mine) P.mine = Object.assign(P.mine || {}, live.mine);   // pushes carry changed keys only
    if (!P.route) return;
    renderCard(); renderMine(); renderQueue(); renderStatus(); renderControls();
    pump();                                  // a push means the socket is back: send what waits
  };
  P.at = (s) => at(s);
  requestAnimationFrame(frame);

  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    patrol: {
      result: function (r) { result(r); return Date.now(); },
    },
  });
})();
