/* scenic-twin: draws the wall and console panels from the pushed view model.
 *
 * The server pushes only the changed top-level keys of each view ("wall",
 * "ops") into the live-state store; this module merges them into its copy
 * and redraws the panels.  Text from the model is set with textContent,
 * never as HTML: feed text cannot become markup.  A watchdog notices a
 * silent socket (no push for 25 s: the server pushes at least every 10 s),
 * shows since when the screen is disconnected, and sends a ping callback,
 * which makes Dash reopen the socket and restart the push.
 */
(function () {
  "use strict";
  const S = { wall: {}, ops: {}, lang: "zh", lastBeat: Date.now(), downSince: null, pings: 0, seq: null, gaps: 0,
              filters: { tier: "", family: "", zone: "" } };
  window.scenicWall = S;

  const T = {
    disconnected: ["连接中断，自", "Disconnected since"], stale: ["数据延迟", "stale"],
    feedStale: ["数据中断：", "Feed stopped: "], minutes: ["分钟", "min"], none: ["暂无", "None"],
    ack: ["确认", "Ack"], assign: ["指派给我", "Assign to me"], silence: ["静默30分钟", "Silence 30 min"],
    case: ["立案", "Open case"], escalate: ["上报升级", "Escalate"], escalated: ["已升级", "escalated to level"], nearest: ["就近空闲（建议）", "Nearest (suggested)"],
    ackedBy: ["已确认：", "Acked by "],
    allTiers: ["全部等级", "All tiers"], allFamilies: ["全部类别", "All kinds"], allZones: ["全部片区", "All zones"],
    more: ["另有", "and"],
    alertsMore: ["条告警", "more alerts"], casesMore: ["另有 {n} 件未列出（超时的排在最前）", "{n} more not listed (overdue first)"], joined: ["另有 {n} 条同一事件的告警", "+{n} alerts of the same incident"],
    member: ["↳ 同一事件", "↳ same incident"], logOnly: ["仅记录", "log only"], reason: ["请输入原因", "Reason"], note: ["处理说明", "Note"],
    gaps: ["12小时内未巡路段", "Not patrolled in 12 hours"], noGaps: ["12小时内全线已巡", "Whole route patrolled in the last 12 hours"],
    virtual: ["虚拟巡查", "virtual"], onFoot: ["步行巡查", "on foot"], ongoing: ["进行中", "in progress"],
    provisional: ["暂定", "provisional"],
    provisionalHint: ["迟到数据到齐后将修正；终值截至", "late data may still change these; final values up to"],
    cps: ["巡查点", "checkpoints"], cams: ["摄像头", "cameras"], anom: ["异常", "anomalies"],
    done: ["完成", "Done"], accepted: ["已接单", "accepted"], arrivedAt: ["已到场", "on site"], overdue: ["超时", "overdue"], noplan: ["无启动中的预案", "No plan active"],
    degraded: ["组件异常：", "Degraded: "], level: ["级", ""], since: ["自", "since"],
    legend: { bus: ["公交车辆", "Buses"], video: ["视频AI事件", "AI video events"], staff: ["巡查人员", "Patrol staff"],
              marker: ["告警设施", "Alerting assets"] },
    tiers: { red: ["红色", "Red"], orange: ["橙色", "Orange"], yellow: ["黄色", "Yellow"], blue: ["蓝色", "Blue"],
             none: ["无", "None"] },
  };
  const tr = (k) => (T[k] ? T[k][S.lang === "en" ? 1 : 0] : k);
  const pick = (o, base) => (o ? (S.lang === "en" ? o[base + "en"] : o[base + "zh"]) || "" : "");
  // the pages' fixed labels carry both languages (data-zh / data-en, dashboard/i18n.py `label`):
  // a language switch relabels them in place, without drawing the page again (on every render:
  // a few dozen elements, and a page drawn with a stale stored language is put right too)
  function relabel() {
    const k = S.lang === "en" ? "en" : "zh";
    for (const e of document.querySelectorAll("[data-zh][data-en]")) {
      const text = e.dataset[k];
      if (e.textContent !== text) e.textContent = text;
    }
  }
  function el(tag, cls, text, attrs) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (attrs) for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    return e;
  }
  const $ = (id) => document.getElementById(id);
  function fill(id, nodes) { const e = $(id); if (!e) return; e.replaceChildren(...nodes); }
  // A list whose items keep their element while their key stays: ``create``
  // makes it once, ``update`` refreshes it when the item (or the language)
  // changed; the children are re-ordered only when the order changed.
  function keyed(id, items, keyOf, create, update, hold) {
    const box = $(id); if (!box) return;
    const old = box._rows || new Map();
    const rows = new Map();
    const nodes = items.map((it) => {
      const k = keyOf(it);
      const sig = JSON.stringify(it) + S.lang;
      let r = old.get(k);
      if (!r || r.lang !== S.lang) r = { node: create(it), sig: null, lang: S.lang };   // button labels too
      if (r.gone) gone(r, false);
      if (r.sig !== sig) { update(r.node, it); r.sig = sig; }
      rows.set(k, r);
      return r.node;
    });
    if (hold) {
      // held (see holdList): every row stays where it is, a new one comes in at the end, a gone
      // one stays in its place, dimmed and without buttons, until the hold ends
      for (const [k, r] of old) {
        if (rows.has(k) || r.node.parentNode !== box) continue;
        gone(r, true);
        rows.set(k, r);
      }
      box._rows = rows;
      nodes.forEach((n) => { if (n.parentNode !== box) box.appendChild(n); });
      return;
    }
    box._rows = rows;
    // into order by moving only the rows out of place: a row that stays (or only shifts because
    // one above came or went) is never taken out of the page, so a click on it is not lost
    nodes.forEach((n, i) => { const at = box.children[i]; if (at !== n) box.insertBefore(n, at || null); });
    while (box.children.length > nodes.length) box.lastChild.remove();
  }

  function gone(r, on) {
    r.gone = on;
    r.node.classList.toggle("st-gone", on);
    // a disabled control loses the focus, and focus leaving the list ends its hold: when the row
    // that holds a keyboard user's focus ends, the row itself takes the focus (the list stays
    // held, the next Tab goes on from there)
    if (on && r.node.contains(document.activeElement) && document.activeElement !== r.node) {
      r.node.tabIndex = -1; r.node.focus({ preventScroll: true });
    }
    r.node.querySelectorAll("button, select").forEach((b) => { b.disabled = on; });
  }

  // A dispatcher's pointer on a list holds its rows still: a push updates them in place but moves
  // none, so the button about to be clicked stays under the pointer.  The hold ends when the
  // pointer leaves the list, or rests HOLD_MS without moving (a new red alert waits at the end of
  // the list no longer than that); then the list takes its order again.
  const HOLD_MS = 8000;
  function holdList(id, render) {
    const box = $(id); if (!box || box._hold !== undefined) return;
    box._hold = false;
    const shown = (on) => { const hint = $(id + "-held"); if (hint) hint.classList.toggle("st-on", on); };
    const release = () => {
      clearTimeout(box._holdTimer);
      if (box._hold) { box._hold = false; shown(false); render(); }
    };
    const hold = () => {
      box._hold = true; shown(true);
      clearTimeout(box._holdTimer); box._holdTimer = setTimeout(release, HOLD_MS);
    };
    box.addEventListener("mousemove", hold);
    box.addEventListener("mouseleave", release);
    box.addEventListener("focusin", hold);
    // tabbing from one button of the list to the next keeps the hold; leaving the list ends it
    box.addEventListener("focusout", (e) => { if (!box.contains(e.relatedTarget)) release(); });
  }

  function spark(values) {
    const vs = (values || []).filter((v) => v !== null && v !== undefined);
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 100 24"); svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("class", "st-spark");
    if (vs.length > 1) {
      const lo = Math.min(...vs), hi = Math.max(...vs), span = hi - lo || 1;
      const pts = vs.map((v, i) => `${(i / (vs.length - 1)) * 100},${22 - ((v - lo) / span) * 20}`).join(" ");
      const pl = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
      pl.setAttribute("points", pts); svg.appendChild(pl);
    }
    return svg;
  }

  // ------------------------------------------------------------------ wall
  function renderHeader(w) {
    const asof = $("asof");
    if (asof && w.asof !== undefined) asof.textContent = w.asof;
    const state = $("asof-state");
    if (state && w.provisional !== undefined) {
      // provisional values: shown at once, final when the allowed lateness has passed
      state.textContent = w.provisional ? tr("provisional") : "";
      state.title = w.provisional ? tr("provisionalHint") + " " + w.final_asof : "";
      state.dataset.provisional = w.provisional ? "1" : "0";
    }
    const banners = [];
    if (w.warning) {
      const b = el("div", "st-banner st-warning st-colour-" + w.warning.colour, pick(w.warning, ""));
      b.appendChild(el("span", "st-headline", w.warning.headline));
      banners.push(b);
    }
    if (w.stale_feeds && w.stale_feeds.length) {
      banners.push(el("div", "st-banner st-stale-banner",
        tr("feedStale") + w.stale_feeds.map((f) => pick(f, "") + (f.minutes !== null ? ` (${f.minutes}${tr("minutes")})` : "")).join("、")));
    }
    if (w.degraded && w.degraded.length) {
      banners.push(el("div", "st-banner st-degraded", tr("degraded") + w.degraded.map((d) => pick(d, "")).join("；")));
    }
    fill("banners", banners);
  }

  function renderKpis(w) {
    if (!w.kpis) return;
    const staleKinds = new Set((w.stale_feeds || []).map((f) => f.kind));
    const groupFeed = { crowd: "crowd", facility: "facility", traffic: "traffic", weather: "weather", video: "video", cases: "case" };
    fill("kpi-panel", w.kpis.map((g) => {
      const tile = el("div", "st-kpi-tile" + (staleKinds.has(groupFeed[g.group]) ? " st-stale" : ""), null, { "data-group": g.group });
      tile.appendChild(el("div", "st-kpi-group", pick(g, "")));
      for (const it of g.items) {
        const row = el("div", "st-kpi-row", null, { "data-kpi": it.key });
        row.appendChild(el("span", "st-kpi-label", pick(it, "")));
        row.appendChild(el("span", "st-kpi-value", it.value + (pick(it, "unit_") && it.value !== "—" ? " " + pick(it, "unit_") : "")));
        row.appendChild(spark(it.trend));
        tile.appendChild(row);
      }
      return tile;
    }));
  }

  function alertLi(a) {
    const li = el("li", "st-alert st-tier-" + a.tier + (a.acked_by ? " st-acked" : ""), null, { "data-alert": a.id });
    li.appendChild(el("span", "st-badge st-bg-" + a.tier, (T.tiers[a.tier] || T.tiers.none)[S.lang === "en" ? 1 : 0]));
    const body = el("div", "st-alert-body");
    body.appendChild(el("div", "st-alert-title", pick(a, "place_") + " · " + pick(a, "title_")));
    body.appendChild(el("div", "st-alert-why", pick(a, "why_")));
    const meta = [tr("since") + " " + a.since];
    if (a.members) meta.push(tr("joined").replace("{n}", a.members));
    if (a.acked_by) meta.push(tr("ackedBy") + a.acked_by);
    if (a.status !== "firing") meta.push(pick(a, "status_"));
    body.appendChild(el("div", "st-alert-meta", meta.join(" · ")));
    li.appendChild(body);
    return li;
  }

  function renderAlerts(w) {
    if (!w.alerts) return;
    fill("alert-list", w.alerts.slice(0, 14).map(alertLi));
    const c = w.alert_counts || {};
    fill("alert-counts", ["red", "orange", "yellow", "blue"].map((t) =>
      el("span", "st-count st-bg-" + t, `${(T.tiers[t])[S.lang === "en" ? 1 : 0]} ${c[t] || 0}`, { "data-tier": t })));
  }

  function planNodes(plans) {
    if (!plans || !plans.length) return [el("p", "st-hint", tr("noplan"))];
    return plans.map((p) => {
      const box = el("div", "st-plan", null, { "data-plan": p.id });
      box.appendChild(el("div", "st-plan-title", `${pick(p, "")} · ${p.level}${tr("level")}`));
      const ol = el("ol", "st-steps");
      for (const s of p.steps) {
        const li = el("li", "st-step" + (s.done ? " st-done" : "") + (s.overdue ? " st-overdue" : ""), null, { "data-step": s.id });
        li.appendChild(el("span", "st-step-text", pick(s, "")));
        li.appendChild(el("span", "st-step-dept", pick(s, "dept_") + " · " + s.due + (s.overdue ? " " + tr("overdue") : "")));
        ol.appendChild(li);
      }
      box.appendChild(ol);
      return box;
    });
  }

  function renderCases(w) {
    if (!w.cases) return;
    fill("case-board", w.cases.map((st) => {
      const col = el("div", "st-stage", null, { "data-stage": st.key });
      col.appendChild(el("div", "st-stage-title", `${pick(st, "")} ${st.count}`));
      for (const c of st.items) {
        col.appendChild(el("div", "st-case" + (c.overdue ? " st-overdue" : ""), `${pick(c, "")} · ${pick(c, "place_")}`, { "data-case": c.id }));
      }
      return col;
    }));
  }

  function renderLegend() {
    const box = $("tier-legend");
    if (!box || box.dataset.lang === S.lang) return;
    box.dataset.lang = S.lang;
    const i = S.lang === "en" ? 1 : 0;
    const items = ["red", "orange", "yellow", "blue"].map((t) => el("span", "st-leg st-leg-" + t, T.tiers[t][i]));
    for (const k of ["marker", "bus", "video", "staff"]) items.push(el("span", "st-leg st-leg-" + k, T.legend[k][i]));
    box.replaceChildren(...items);
  }

  function renderWall(w) {
    renderHeader(w);
    renderLegend();
    if (!$("alert-list")) return;
    renderKpis(w); renderAlerts(w); renderCases(w);
    if (w.plans) fill("plan-panel", planNodes(w.plans));
    // the 3D scene is drawn again only when what it shows changed: a push that moves a tile's number
    // (a provisional value, the clock) leaves the GPU - or a wall's software renderer - alone
    if (S.twinDirty && window.scenicTwin && window.scenicTwin.applyLive) {
      S.twinDirty = false;
      window.scenicTwin.applyLive(w);
    }
  }
  const TWIN_KEYS = ["zones", "markers", "video", "buses", "staff"];     // what twin.js reads of the wall view

  // ------------------------------------------------------------------ console
  function act(payload) {
    window.dash_clientside.set_props("action", { data: Object.assign({ t: Date.now() }, payload) });
  }

  function options(id, label, values) {
    const sel = $(id); if (!sel) return;
    const cur = sel.value;
    const opts = [el("option", null, label, { value: "" })];
    for (const [v, text] of values) opts.push(el("option", null, text, { value: v }));
    sel.replaceChildren(...opts);
    sel.value = cur;
    if (!sel.dataset.bound) {
      sel.dataset.bound = "1";
      sel.addEventListener("change", () => { S.filters[id.replace("filter-", "")] = sel.value; renderOps(S.ops); });
    }
  }

  function btn(text, cls, onclick) {
    const b = el("button", "st-btn " + cls, text, { type: "button" });
    b.addEventListener("click", onclick);
    return b;
  }

  function staffChoice() {
    const sel = el("select", "st-select st-staff-choice", null, { "aria-label": tr("nearest") });
    sel.appendChild(el("option", null, tr("nearest"), { value: "" }));
    for (const p of (S.ops.staff || [])) sel.appendChild(el("option", null, pick(p, "") + " · " + pick(p, "status_"), { value: p.id }));
    return sel;
  }

  // today's patrols and the stretches of the route nobody has covered
  function renderPatrols(d) {
    if (!$("ops-patrols") || !d) return;
    const gaps = d.gaps || [];
    const head = el("p", "st-gaps" + (gaps.length ? "" : " st-none"),
      gaps.length ? tr("gaps") + " " + gaps.length + "/" + d.segments + "：" + gaps.map((g) => pick(g, "")).join("；")
                  : tr("noGaps"), { "data-gaps": gaps.length });
    const table = el("table", "st-table");
    const body = el("tbody");
    for (const p of (d.patrols || []).slice().reverse()) {
      const r = el("tr", "st-patrol-row", null, { "data-patrol": p.id });
      r.appendChild(el("td", null, pick(p, "who_")));
      r.appendChild(el("td", null, (p.mode === "virtual" ? tr("virtual") : tr("onFoot")) + " " + p.start
                                   + (p.ended ? "" : " · " + tr("ongoing"))));
      r.appendChild(el("td", null, `${p.checkpoints}/${p.of} ${tr("cps")} · ${p.km} km · ${p.minutes} ${tr("minutes")}`
                                   + ` · ${tr("cams")} ${p.cameras} · ${tr("anom")} ${p.anomalies}`));
      body.appendChild(r);
    }
    table.appendChild(body);
    fill("ops-patrols", [head, table]);
  }

  function renderOps(o) {
    if (!$("ops-alerts") || !o || !o.alerts) return;
    options("filter-tier", tr("allTiers"), ["red", "orange", "yellow", "blue"].map((t) => [t, T.tiers[t][S.lang === "en" ? 1 : 0]]));
    options("filter-family", tr("allFamilies"), (o.families || []).map((f) => [f.id, pick(f, "")]));
    options("filter-zone", tr("allZones"), (o.zones || []).map((z) => [z.id, pick(z, "")]));
    const f = S.filters;
    const rows = o.alerts.filter((a) => (!f.tier || a.tier === f.tier) && (!f.family || a.family.startsWith(f.family + "."))
      && (!f.zone || a.zone === f.zone));
    // Rows are keyed and updated in place: a push must never replace the
    // button under the dispatcher's pointer, nor move it while the pointer is on the list.
    holdList("ops-alerts", () => renderOps(S.ops));
    keyed("ops-alerts", rows.slice(0, 200), (a) => a.id, (a) => {
      const tr_ = el("tr", null, null, { "data-alert": a.id });
      for (let i = 0; i < 4; i++) tr_.appendChild(el("td"));
      const td = el("td", "st-actions");
      td.appendChild(btn(tr("ack"), "st-ack", () => act({ kind: "ack", id: a.id })));
      td.appendChild(btn(tr("assign"), "st-assign", () => act({ kind: "assign", id: a.id })));
      td.appendChild(btn(tr("silence"), "st-silence", () => {
        const why = window.prompt(tr("reason")); if (why) act({ kind: "silence", id: a.id, minutes: 30, note: why });
      }));
      td.appendChild(btn(tr("escalate"), "st-escalate", () => {
        const why = window.prompt(tr("reason")); if (why) act({ kind: "escalate", id: a.id, note: why });
      }));
      td.appendChild(btn(tr("case"), "st-open-case", () => act({ kind: "case", id: a.id })));
      tr_.appendChild(td);
      return tr_;
    }, (tr_, a) => {
      tr_.className = "st-tier-" + a.tier + (a.head ? " st-member" : "") + (a.members ? " st-incident" : "")
        + (a.log_only ? " st-log" : "");
      const td = tr_.children;
      // a log-only alert (no operator action at this tier) is listed, marked, after the calls to act
      td[0].textContent = (T.tiers[a.tier] || T.tiers.none)[S.lang === "en" ? 1 : 0] + (a.log_only ? " · " + tr("logOnly") : "");
      td[1].textContent = (a.head ? tr("member") + " · " : "") + pick(a, "place_");
      const joined = tr("joined").replace("{n}", a.members);
      td[2].textContent = pick(a, "why_") + (a.members ? (S.lang === "en" ? " (" + joined + ")" : "（" + joined + "）") : "");
      td[3].textContent = a.since + (a.escalation ? " · " + tr("escalated") + " " + a.escalation + tr("level") : "")
        + (a.acked_by ? " · " + tr("ackedBy") + a.acked_by : "") + (a.assignee ? " → " + pick(a, "assignee_") : "");
    }, $("ops-alerts")._hold);
    keyed("ops-cases", o.cases || [], (c) => c.id, (c) => {
      const r = el("tr", null, null, { "data-case": c.id });
      for (let i = 0; i < 3; i++) r.appendChild(el("td"));
      r.appendChild(el("td", "st-actions"));
      return r;
    }, (r, c) => {
      r.className = "st-case-row" + (c.overdue ? " st-overdue" : "");
      r.dataset.stage = c.stage;
      const td = r.children;
      td[0].textContent = pick(c, "");
      td[1].textContent = pick(c, "place_");
      td[2].textContent = c.opened + (c.assignee ? " → " + pick(c, "assignee_") : "")
        + (c.arrived ? " · " + tr("arrivedAt") + " " + c.arrived : c.accepted ? " · " + tr("accepted") : "");
      const steps = (c.actions || []).map((a) => a.step).join(",") + S.lang;
      if (td[3].dataset.steps !== steps) {          // the buttons change only with the case's stage
        td[3].dataset.steps = steps;
        // dispatch goes to the suggested nearest person unless the dispatcher picks another
        const acts = c.actions || [];
        const who = acts.some((a) => a.step === "dispatch") ? staffChoice() : null;
        const step = (a) => btn(pick(a, ""), "st-step-" + a.step, () => act({ kind: "case_step", id: c.id, step: a.step,
                                                                             note: "", to: a.step === "dispatch" && who ? who.value : "" }));
        const nodes = acts.filter((a) => a.step !== "dispatch").map(step);
        if (who) {                                  // the person and 派遣 together (one choice, one click), first
          const pair = el("span", "st-dispatch");
          pair.append(who, ...acts.filter((a) => a.step === "dispatch").map(step));
          nodes.unshift(pair);
        }
        td[3].replaceChildren(...nodes);
      }
    });
    const moreCases = $("ops-cases-more");
    if (moreCases) {                                // the server lists the first 200 in the order to work them
      const n = (o.cases_total || 0) - (o.cases || []).length;
      moreCases.textContent = n > 0 ? tr("casesMore").replace("{n}", n) : "";
    }
    renderPatrols(S.patrols);
    fill("ops-plans", !(o.plans && o.plans.length) ? planNodes([]) : o.plans.map((p) => {
      const box = planNodes([p])[0];
      box.querySelectorAll("li.st-step").forEach((li, i) => {
        const s = p.steps[i];
        if (!s.done) li.appendChild(btn(tr("done"), "st-plan-done", () => act({ kind: "plan_step", id: p.id, step: s.id })));
      });
      return box;
    }));
  }

  // ------------------------------------------------------------------ watchdog
  setInterval(() => {
    const quiet = Date.now() - S.lastBeat;
    const conn = $("conn");
    if (quiet > 25000) {
      if (!S.downSince) S.downSince = new Date(S.lastBeat);
      if (conn) { conn.textContent = tr("disconnected") + " " + S.downSince.toLocaleTimeString("zh-CN", { hour12: false }); conn.className = "st-conn st-down"; }
      document.body.classList.add("st-disconnected");
      S.pings += 1;
      if (window.dash_clientside && window.dash_clientside.set_props) window.dash_clientside.set_props("ping", { data: S.pings });
    }
  }, 5000);

  // Each push carries the beat of the one before it.  When the page was busy, Dash runs the render
  // once with the newest of the pushes that came meanwhile: the keys the earlier ones changed never
  // arrive (the next push sends only what changed since).  Seen as a gap in the beats, the page
  // asks for everything again (at most every 3 s until a full push comes).
  function checkBeats(live) {
    if (typeof live.beat !== "number" || live.beat === S.seq) return;
    if (live.full) S.needFull = false;
    if (live.prev !== null && live.prev !== undefined && live.prev !== S.seq) {
      S.gaps = (S.gaps || 0) + 1;
      S.needFull = true;
    }
    S.seq = live.beat;
    const now = Date.now();
    if (S.needFull && now - (S.resyncAt || 0) > 3000 && window.dash_clientside && window.dash_clientside.set_props) {
      S.resyncAt = now;
      window.dash_clientside.set_props("live-resync", { data: S.gaps });
    }
  }

  function merge(live) {
    checkBeats(live);
    S.lastBeat = Date.now();
    S.pushes = (S.pushes || 0) + 1;
    S.pushBytes = (S.pushBytes || 0) + JSON.stringify(live).length;   // for `scenic-twin bench wall`
    if (S.downSince) {
      S.downSince = null;
      document.body.classList.remove("st-disconnected");
      const conn = $("conn"); if (conn) { conn.textContent = ""; conn.className = "st-conn"; }
    }
    if (live.wall) {
      Object.assign(S.wall, live.wall);
      if (TWIN_KEYS.some((k) => k in live.wall)) S.twinDirty = true;
    }
    if (live.ops) Object.assign(S.ops, live.ops);
    // a push carries only the keys that changed since the last one: merge, never replace
    // (the patrol list's window start moves every push, its rows seldom)
    if (live.patrols) S.patrols = Object.assign(S.patrols || {}, live.patrols);
    if ((live.patrol || live.mine) && window.scenicPatrol) window.scenicPatrol.apply(live, S.lang);
    // Dash keeps every change of a callback input for undo, without a bound:
    // each push (live-state is an input) would stay in memory for the life
    // of the page (~60 KB a push, measured).  The wall never undoes.
    const h = window.store && window.store.getState && window.store.getState().history;
    if (h && Array.isArray(h.past) && h.past.length > 2) h.past.splice(0, h.past.length - 2);
  }

  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    st: {
      render: function (live, lang) {
        const langChanged = lang && lang !== S.lang;
        S.lang = lang === "en" ? "en" : "zh";
        document.documentElement.lang = S.lang === "en" ? "en" : "zh-CN";
        relabel();
        const trig = (window.dash_clientside.callback_context || {}).triggered || [];
        if (live && trig.some((t) => t.prop_id === "live-state.data")) merge(live);
        else if (live && !langChanged && S.wall.v === undefined) merge(live);
        renderWall(S.wall);
        renderOps(S.ops);
        if (langChanged && window.scenicPatrol) window.scenicPatrol.apply(null, S.lang);
        return { v: S.wall.v || 0, lang: S.lang };
      },
      lang_init: function (_path, stored) { return stored === "en" ? "en" : "zh"; },
      lang_save: function (lang) { document.documentElement.lang = lang === "en" ? "en" : "zh-CN"; return lang; },
    },
  });
})();
