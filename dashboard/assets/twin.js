/* scenic-twin: draws the 3D twin with deck.gl (vendored, see vendor/README.md).
 *
 * The scene is built in Python (dashboard/scene.py): static layers arrive as
 * deck.gl JSON and are converted with JSONConverter; street furniture and the
 * tower shell arrive as binary buffers fetched from plain HTTP routes.  One
 * Deck per container; layer ids are stable so that live updates only swap
 * data.  Clicking an asset writes the pick into the `twin-selected` store;
 * the server looks it up and renders the details.
 */
(function () {
  "use strict";
  const state = { deck: null, frames: 0, spec: null, errors: [], selections: [] };
  window.scenicTwin = state;

  function u32(view, off) { return view.getUint32(off, true); }

  function decodeFurniture(buf) {
    const view = new DataView(buf);
    const magic = String.fromCharCode(...new Uint8Array(buf, 0, 4));
    if (magic !== "STF2") throw new Error("furniture buffer: bad magic " + magic);
    const n = u32(view, 4), hlen = u32(view, 8);
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 12, hlen)));
    let off = 12 + hlen;
    const positions = new Float32Array(buf, off, n * 3); off += n * 12;
    const colors = new Uint8Array(buf, off, n * 4); off += n * 4;
    const codes = new Uint8Array(buf, off, n); off += n + ((4 - (n % 4)) % 4);
    const heights = new Float32Array(buf, off, n);
    const radii = new Float32Array(n);
    for (let i = 0; i < n; i++) radii[i] = header.radius[codes[i]];
    return { n, header, positions, colors, codes, radii, heights };
  }

  // Unit shapes for furniture seen from the side: a column (radius 1, from the ground up to 1)
  // and a crown (radius 1 across, from 0 up to 1), with normals for shading.
  function meshOf(pos, nor, idx) {
    return { attributes: { POSITION: { value: new Float32Array(pos), size: 3 },
                           NORMAL: { value: new Float32Array(nor), size: 3 },
                           TEXCOORD_0: { value: new Float32Array((pos.length / 3) * 2), size: 2 } },
             indices: { value: new Uint32Array(idx), size: 1 } };
  }
  function columnMesh(sides) {
    const pos = [], nor = [], idx = [];
    for (let k = 0; k <= sides; k++) {
      const a = (2 * Math.PI * k) / sides, c = Math.cos(a), s = Math.sin(a);
      pos.push(c, s, 0, c, s, 1); nor.push(c, s, 0, c, s, 0);
      if (k < sides) { const b = 2 * k; idx.push(b, b + 2, b + 1, b + 1, b + 2, b + 3); }
    }
    const top = pos.length / 3;
    pos.push(0, 0, 1); nor.push(0, 0, 1);
    for (let k = 0; k <= sides; k++) {
      const a = (2 * Math.PI * k) / sides;
      pos.push(Math.cos(a), Math.sin(a), 1); nor.push(0, 0, 1);
      if (k < sides) idx.push(top, top + 1 + k, top + 2 + k);
    }
    return meshOf(pos, nor, idx);
  }
  function crownMesh(seg, rings) {
    const pos = [], nor = [], idx = [];
    for (let r = 0; r <= rings; r++) {
      const th = (Math.PI * r) / rings, z = Math.cos(th), w = Math.sin(th);
      for (let k = 0; k <= seg; k++) {
        const a = (2 * Math.PI * k) / seg, x = w * Math.cos(a), y = w * Math.sin(a);
        pos.push(x, y, 0.5 + 0.5 * z); nor.push(x, y, z);
        if (r < rings && k < seg) {
          const i = r * (seg + 1) + k, j = i + seg + 1;
          idx.push(i, j, i + 1, i + 1, j, j + 1);
        }
      }
    }
    return meshOf(pos, nor, idx);
  }

  // The patrol phone's eye view looks along the route from a few metres up: there lamp poles,
  // hydrants, trees and the like stand at their inventory heights (header.stand says how each
  // type stands), and only what lies in the ground stays a disc.  Seen from above (the wall, the
  // console, a steep view) every piece is a disc: a map symbol that stays visible at any zoom.
  const TRUNK_RGBA = [120, 90, 62, 255];
  const STAND_PITCH = 60;                              // degrees: the eye view is 72, "from above" 45
  // Only what stands within STAND_NEAR_M of the view's centre stands up (the eye view looks ~25 m
  // ahead of the walker; beyond a few hundred metres a pole is a pixel): a phone draws a few
  // thousand shapes, not 13,000.  The set is rebuilt when the centre has moved STAND_STEP_M.
  const STAND_NEAR_M = 300, STAND_STEP_M = 40;
  function viewCentre() {
    const vp = viewport(), o = state.spec && state.spec.origin;
    if (!vp || !o) return null;
    return [(vp.longitude - o[0]) * 111320 * Math.cos((o[1] * Math.PI) / 180), (vp.latitude - o[1]) * 110574];
  }
  function standingLayers(common, centre) {
    const D = window.deck, f = state.furn, P = f.positions, C = f.colors;
    const columns = [], crowns = [], flat = [];
    const r2 = STAND_NEAR_M * STAND_NEAR_M;
    for (let i = 0; i < f.n; i++) {
      const how = f.header.stand[f.codes[i]];
      if (!how || !(f.heights[i] > 0)) { flat.push(i); continue; }
      const dx = P[3 * i] - centre[0], dy = P[3 * i + 1] - centre[1];
      if (dx * dx + dy * dy > r2) continue;
      columns.push(i);
      if (how[0] === "tree") crowns.push(i);
    }
    const ground = (i) => P[3 * i + 2] - 0.3;
    const colour = (i) => [C[4 * i], C[4 * i + 1], C[4 * i + 2], 255];
    const width = (i) => f.header.stand[f.codes[i]][1];
    const isTree = (i) => f.header.stand[f.codes[i]][0] === "tree";
    state.standCentre = centre;
    return [
      new D.ScatterplotLayer({
        id: "furniture-flat", ...common, pickable: true, radiusUnits: "meters", radiusMinPixels: 1.2,
        data: flat, getPosition: (i) => [P[3 * i], P[3 * i + 1], P[3 * i + 2]],
        getFillColor: (i) => [C[4 * i], C[4 * i + 1], C[4 * i + 2], C[4 * i + 3]], getRadius: (i) => f.radii[i],
      }),
      new D.SimpleMeshLayer({
        id: "furniture-columns", ...common, pickable: true, mesh: COLUMN, data: columns,
        getPosition: (i) => [P[3 * i], P[3 * i + 1], ground(i)],
        getScale: (i) => (isTree(i) ? [0.25, 0.25, 0.45 * f.heights[i]] : [width(i), width(i), f.heights[i]]),
        getColor: (i) => (isTree(i) ? TRUNK_RGBA : colour(i)),
      }),
      new D.SimpleMeshLayer({
        id: "furniture-crowns", ...common, pickable: true, mesh: CROWN, data: crowns,
        getPosition: (i) => [P[3 * i], P[3 * i + 1], ground(i) + 0.35 * f.heights[i]],
        getScale: (i) => [width(i), width(i), 0.65 * f.heights[i]],
        getColor: colour,
      }),
    ];
  }
  const COLUMN = columnMesh(6), CROWN = crownMesh(7, 4);
  // Whether the drawn furniture no longer fits the view: seen from the side now (or from above
  // again), or walked on past STAND_STEP_M.  The view is the one last drawn.
  function wantStanding() {
    const vp = state.standAllowed ? viewport() : null;
    return Boolean(vp && vp.pitch >= STAND_PITCH);
  }
  function walkedOn(c) {
    return Boolean(c && state.standCentre
      && Math.hypot(c[0] - state.standCentre[0], c[1] - state.standCentre[1]) > STAND_STEP_M);
  }
  function standingDue() {
    const want = wantStanding();
    return want !== state.standing || (want && walkedOn(viewCentre()));
  }
  function syncStanding() {
    if (!state.deck || !standingDue()) return false;
    state.standing = wantStanding();
    state.deck.props.parent.dataset.standing = state.standing ? "3d" : "flat";
    redraw();
    return true;
  }
  // the furniture index a pick stands for (null: not furniture)
  function furnitureOf(info) {
    const id = info.layer && info.layer.id;
    if (id === "furniture") return info.index >= 0 ? info.index : null;
    if (id === "furniture-flat" || id === "furniture-columns" || id === "furniture-crowns") {
      return typeof info.object === "number" ? info.object : null;
    }
    return null;
  }

  function decodeTower(buf) {
    const view = new DataView(buf);
    const nv = u32(view, 4), ni = u32(view, 8);
    let off = 12;
    const pos = new Float32Array(buf, off, nv * 3); off += nv * 12;
    const nor = new Float32Array(buf, off, nv * 3); off += nv * 12;
    const idx = new Uint32Array(buf, off, ni);
    return {
      attributes: {
        POSITION: { value: pos, size: 3 },
        NORMAL: { value: nor, size: 3 },
        TEXCOORD_0: { value: new Float32Array(nv * 2), size: 2 },
      },
      indices: { value: idx, size: 1 },
    };
  }

  function select(payload) {
    state.selections.push(payload);
    if (window.dash_clientside && window.dash_clientside.set_props) {
      window.dash_clientside.set_props("twin-selected", { data: payload });
    }
  }

  // Small street furniture wins over what is drawn on or around it: a hydrant
  // or a lamp under a tree canopy is what the operator means.
  // Then the smaller wins: checkpoints and stops, structures, the zone (it
  // carries the live load), and last the walkways, river and ground it lies on.
  // Standing furniture (hydrant, lamp, camera …) wins over a cover flush with
  // the ground beside it (a hydrant's valve chamber sits next to it).
  const LOW = new Set(["street_tree", "gully_grate", "ground_light", "bollard"]);
  const FLUSH = new Set(["manhole_cover"]);
  const LAYER_RANK = { "alert-markers": 0, places: 2, tower: 4, buildings: 4, bridges: 4, arches: 4, zones: 5 };
  function rank(info) {
    const id = info.layer && info.layer.id;
    const fi = furnitureOf(info);
    if (fi !== null) {
      const t = state.furn.header.types[state.furn.codes[fi]];
      return LOW.has(t) ? 3 : FLUSH.has(t) ? 1.5 : 1;
    }
    return id in LAYER_RANK ? LAYER_RANK[id] : 6;
  }
  function pickAt(x, y) {
    if (!state.deck) return null;
    syncStanding();             // a view set a moment ago may not have been drawn with its furniture yet
    const infos = state.deck.pickMultipleObjects({ x, y, radius: 6, depth: 12 }) || [];
    const usable = infos.filter((i) => i.layer && (furnitureOf(i) !== null || (i.object && typeof i.object === "object")));
    usable.sort((a, b) => rank(a) - rank(b));
    return usable[0] || null;
  }
  function selectInfo(info) {
    if (!info) return;
    const id = info.layer.id;
    const fi = furnitureOf(info);
    if (fi !== null) select({ kind: "furniture", index: fi, t: Date.now() });
    else if (id === "zones" && info.object.zone_id) select({ kind: "zone", id: info.object.zone_id, t: Date.now() });
    else if (id === "alert-markers" && info.object.asset) select({ kind: "asset", id: info.object.asset, t: Date.now() });
    else if (info.object && info.object.id) select({ kind: "asset", id: info.object.id, t: Date.now() });
  }
  // A tap is judged by our own pointer events (down and up close in place and
  // time), not deck.gl's gesture recogniser, whose 250 ms tap limit a slow
  // software-rendered pick can exceed.
  function bindTaps(el) {
    let down = null;
    // durations from the events' own time stamps: a busy page (a software-rendered frame) may
    // handle the release late, but it still happened when the finger lifted
    el.addEventListener("pointerdown", (e) => { down = { x: e.clientX, y: e.clientY, t: e.timeStamp }; }, true);
    el.addEventListener("pointerup", (e) => {
      if (!down) return;
      const moved = Math.hypot(e.clientX - down.x, e.clientY - down.y);
      const long = e.timeStamp - down.t;
      down = null;
      // what each release was taken for (kept short): tests and a puzzled operator's console can read it
      const taken = { moved: Math.round(moved), ms: Math.round(long), picked: null };
      state.taps = [...(state.taps || []).slice(-4), taken];
      if (moved > 8 || long > (state.tapMaxMs || 1500)) return;      // the patrol page: a long press reports
      const r = el.getBoundingClientRect();
      const info = pickAt(e.clientX - r.left, e.clientY - r.top);
      taken.picked = info && [info.layer.id, info.index];
      selectInfo(info);
    }, true);
  }
  state.pickAt = pickAt;

  function tooltip(info) {
    if (!info || !info.object || !info.object.id) return null;
    const o = info.object;
    return { text: (o.name_zh || "") + "\n" + (o.name_en || "") };  // text, never HTML
  }

  // The first view fits the scenic area to the screen it is on (a 4K wall and
  // a laptop see the same area, not a third of it).
  function fitView(view, layers, el) {
    const ground = layers.find((l) => l.id === "ground");
    const rings = ground && ground.props.data;
    if (!rings || !rings.length || !el.clientWidth || !el.clientHeight) return view;
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const r of rings) {
      const parts = typeof r.polygon[0][0] === "number" ? [r.polygon] : r.polygon;   // a ring, or rings
      for (const part of parts) for (const [x, y] of part) {
        x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
      }
    }
    if (!(x1 > x0 && y1 > y0)) return view;
    const mPerPxAtZ0 = 40075016 * Math.cos((view.latitude * Math.PI) / 180) / 512;
    const tilt = Math.max(0.55, Math.cos(((view.pitch || 0) * Math.PI) / 180));   // a pitched view is shorter
    const zx = Math.log2((mPerPxAtZ0 * el.clientWidth * 0.85) / (x1 - x0));
    const zy = Math.log2((mPerPxAtZ0 * el.clientHeight * 0.85) / ((y1 - y0) * tilt));
    const zoom = Math.min(zx, zy);
    return Number.isFinite(zoom) ? Object.assign({}, view, { zoom: Math.max(view.minZoom || 0, zoom) }) : view;
  }

  // The unattended wall's camera tour: the hottest zones first, then the
  // configured stops, then the overview; any input pauses it until the room
  // has left the screen alone for ``resume_after_s``.
  function startTour(T, el) {
    if (state.tour) return;
    const D = window.deck;
    const tour = { paused: false, lastInput: 0, i: -1, next: Date.now() + T.dwell_s * 1000 };
    state.tour = tour;
    el.dataset.tour = "on";
    const pause = () => {
      tour.lastInput = Date.now();
      if (!tour.paused) { tour.paused = true; el.dataset.tour = "paused"; }
    };
    state.tourPause = pause;
    for (const ev of ["pointerdown", "wheel", "touchstart"]) el.addEventListener(ev, pause, { capture: true, passive: true });
    window.addEventListener("keydown", pause, true);
    const origin = state.spec.origin;
    const toLonLat = (p) => [origin[0] + p[0] / (111320 * Math.cos((origin[1] * Math.PI) / 180)), origin[1] + p[1] / 110574];
    const RANK = { red: 0, orange: 1 };
    function stops() {
      const zones = Object.entries((state.live && state.live.zones) || {})
        .filter(([, z]) => z.p && z.tier in RANK)
        .sort((a, b) => RANK[a[1].tier] - RANK[b[1].tier] || (b[1].load || 0) - (a[1].load || 0))
        .slice(0, T.hot_zones)
        .map(([id, z]) => { const [lon, lat] = toLonLat(z.p); return { name: "zone:" + id, longitude: lon, latitude: lat, zoom: 17.5, pitch: 55, bearing: 0 }; });
      return [...zones, ...T.stops, Object.assign({ name: "overview" }, state.home)];
    }
    setInterval(() => {
      if (tour.paused) {
        if (Date.now() - tour.lastInput < T.resume_after_s * 1000) return;
        tour.paused = false; el.dataset.tour = "on"; tour.next = 0;
      }
      if (Date.now() < tour.next || !state.deck) return;
      const list = stops();
      tour.i = (tour.i + 1) % list.length;
      const s = list[tour.i];
      state.deck.setProps({ initialViewState: {
        longitude: s.longitude, latitude: s.latitude, zoom: s.zoom, pitch: s.pitch, bearing: s.bearing,
        minZoom: state.home.minZoom, maxZoom: state.home.maxZoom, maxPitch: state.home.maxPitch,
        transitionDuration: T.fly_s * 1000, transitionInterpolator: new D.FlyToInterpolator() } });
      el.dataset.tourStop = tour.i + ":" + s.name;
      el.dataset.tourHot = String(list.length - T.stops.length - 1);   // hot zones when this stop was chosen
      tour.next = Date.now() + (T.dwell_s + T.fly_s) * 1000;
    }, 1000);
  }

  async function mount(cfg) {
    const el = document.getElementById(cfg.container);
    if (!el) return window.dash_clientside.no_update;
    if (state.deck) {                     // the page was re-rendered (language, route): start again
      try { state.deck.finalize(); } catch (e) { /* already gone */ }
      state.deck = null;
    }
    const D = window.deck;
    const [specR, furnR, towR] = await Promise.all([
      fetch(cfg.scene_url), fetch(cfg.furniture_url), fetch(cfg.tower_url)]);
    if (!specR.ok || !furnR.ok || !towR.ok) throw new Error("twin: scene data could not be loaded");
    const spec = await specR.json();
    const furn = decodeFurniture(await furnR.arrayBuffer());
    const mesh = decodeTower(await towR.arrayBuffer());
    const classes = {};
    for (const k of Object.keys(D)) if (/Layer$|View$/.test(k)) classes[k] = D[k];
    const converter = new D.JSONConverter({
      configuration: { classes, enumerations: { COORDINATE_SYSTEM: D.COORDINATE_SYSTEM } },
    });
    const props = converter.convert(spec);
    const common = { coordinateSystem: D.COORDINATE_SYSTEM.METER_OFFSETS, coordinateOrigin: spec.origin };
    const furniture = new D.ScatterplotLayer({
      id: "furniture", ...common, pickable: true, radiusUnits: "meters", radiusMinPixels: 1.2,
      data: { length: furn.n, attributes: {
        getPosition: { value: furn.positions, size: 3 },
        getFillColor: { value: furn.colors, size: 4 },
        getRadius: { value: furn.radii, size: 1 },
      } },
    });
    const shell = new D.SimpleMeshLayer({
      id: "tower-shell", ...common, data: [{ position: [0, 0, 0] }], mesh,
      getPosition: (d) => d.position, getColor: [255, 140, 60, 70], pickable: false,
    });
    state.furn = furn;
    state.spec = spec;
    state.staticLayers = props.layers;
    state.extraLayers = [furniture, shell];
    state.flatLayers = [furniture, shell];
    state.standing3d = null;
    state.standCentre = null;
    state.standing = false;
    state.standAllowed = Boolean(cfg.route);          // the patrol page's eye view
    state.common = common;
    state.deck = new D.Deck({
      parent: el,
      views: props.views,
      initialViewState: fitView(props.initialViewState, props.layers, el),
      controller: true,
      layers: [...props.layers, ...state.extraLayers],
      getTooltip: tooltip,
      onAfterRender: () => {
        state.frames += 1; el.dataset.frames = String(state.frames);
        if (standingDue()) setTimeout(syncStanding, 0);      // not from inside deck's render
      },
      onError: (e) => { state.errors.push(String(e)); console.error("deck.gl:", e); },
    });
    el.dataset.assets = String(furn.n);
    bindTaps(el);
    state.home = fitView(props.initialViewState, props.layers, el);
    if (cfg.tour) startTour(cfg.tour, el);
    if (cfg.route && window.scenicPatrol) window.scenicPatrol.attach(cfg.route, el);
    if (state.pendingLive) applyLive(state.pendingLive);
    return { mounted: true, furniture: furn.n };
  }

  // Pushed live state (the wall view model): zones by alert tier, alerting
  // assets as pulsing markers, staff positions.  Only these layers change.
  const TIER_RGB = { red: [230, 30, 30], orange: [255, 140, 0], yellow: [250, 210, 30], blue: [30, 120, 255] };
  function overlayLayers() {
    const D = window.deck, common = { coordinateSystem: D.COORDINATE_SYSTEM.METER_OFFSETS, coordinateOrigin: state.spec.origin };
    const phase = state.phase || 0;
    const markers = (state.live.markers || []).map((m) => ({ ...m, asset: m.asset }));
    const scale = Math.max(1, window.innerHeight / 1080);
    const labels = declutter(Object.entries(state.live.zones || {})
      .filter(([, z]) => z.p && z.load !== null && z.load !== undefined)
      .map(([id, z]) => ({ id, p: z.p, text: Math.round(z.load) + "%", tier: z.tier, stale: z.stale,
                           load: z.load })), 15 * scale);
    return [
      new D.TextLayer({
        id: "zone-labels", ...common, data: labels, pickable: false,
        getPosition: (d) => [d.p[0], d.p[1], 4], getText: (d) => d.text, sizeUnits: "pixels",
        getSize: 15 * scale, fontWeight: 700, background: true, backgroundPadding: [4 * scale, 2 * scale],
        getColor: (d) => (d.tier === "yellow" || d.tier === "orange" ? [10, 12, 18, 255] : [245, 248, 255, 255]),
        getBackgroundColor: (d) => (d.stale ? [90, 90, 90, 220] : [...(TIER_RGB[d.tier] || [40, 60, 90]), 230]),
        updateTriggers: { getColor: state.liveVersion, getBackgroundColor: state.liveVersion },
      }),
      new D.ScatterplotLayer({
        id: "alert-markers", ...common, data: markers, pickable: true, stroked: true, filled: true,
        getPosition: (m) => [m.p[0], m.p[1], 2], radiusUnits: "pixels",
        getRadius: (m) => (m.tier === "red" ? 14 : m.tier === "orange" ? 12 : 10) * (1 + 0.35 * phase),
        getFillColor: (m) => [...(TIER_RGB[m.tier] || [200, 200, 200]), 110 + Math.round(100 * (1 - phase))],
        getLineColor: [255, 255, 255, 230], lineWidthMinPixels: 2,
        updateTriggers: { getRadius: phase, getFillColor: phase },
      }),
      new D.ScatterplotLayer({
        id: "video-events", ...common, data: state.live.video || [], pickable: false,
        getPosition: (v) => [v[0], v[1], 6], radiusUnits: "pixels", stroked: true, filled: false,
        getRadius: (v) => 9 * scale * (1 + Math.min(v[2], 15) / 15), lineWidthMinPixels: 2,
        getLineColor: (v) => [200, 110, 255, Math.max(60, 255 - v[2] * 12)],
      }),
      new D.ScatterplotLayer({
        id: "buses", ...common, data: state.live.buses || [], pickable: false,
        getPosition: (b) => [b[0], b[1], 3], radiusUnits: "pixels", getRadius: 6 * scale, stroked: true,
        getFillColor: (b) => (b[2] === 2 ? [230, 60, 60, 255] : b[2] === 1 ? [255, 170, 40, 255] : [40, 200, 255, 255]),
        getLineColor: [10, 20, 40, 255], lineWidthMinPixels: 1.5,
      }),
      new D.ScatterplotLayer({
        id: "staff", ...common, data: state.live.staff || [], pickable: false,
        getPosition: (s) => [s[0], s[1], 1], radiusUnits: "pixels", getRadius: 5,
        getFillColor: (s) => (s[2] === "available" ? [80, 255, 160, 230] : [255, 255, 255, 200]),
      }),
    ];
  }
  // Zone labels that would overlap on screen (the small zones round the tower at the overview)
  // give way: the higher tier, then the higher load, keeps its place.  Redone when the view moves.
  const LABEL_RANK = { red: 4, orange: 3, yellow: 2, blue: 1 };
  function viewport() {
    // before its first render deck.gl has no viewports (getViewports asserts): no decluttering yet
    try { return state.deck && state.deck.isInitialized ? state.deck.getViewports()[0] || null : null; }
    catch (e) { return null; }
  }
  function viewKey() {
    const vp = viewport();
    return vp ? [vp.longitude, vp.latitude, vp.zoom, vp.pitch, vp.bearing, vp.width, vp.height]
      .map((x) => Number(x).toFixed(5)).join(",") : "";
  }
  function declutter(labels, size) {
    const vp = viewport();
    state.labelView = viewKey();
    if (!vp || !state.spec) return labels;
    const o = state.spec.origin, kx = 111320 * Math.cos((o[1] * Math.PI) / 180), ky = 110574;
    const order = [...labels].sort((a, b) => (b.stale ? 0 : LABEL_RANK[b.tier] || 0) - (a.stale ? 0 : LABEL_RANK[a.tier] || 0)
      || (b.load || 0) - (a.load || 0));
    const kept = [];
    const out = [];
    for (const d of order) {
      const [x, y] = vp.project([o[0] + d.p[0] / kx, o[1] + d.p[1] / ky, 4]);
      const w = d.text.length * 0.62 * size + 10, h = size + 6;
      const box = [x - w / 2, y - h / 2, x + w / 2, y + h / 2];
      if (kept.some((k) => box[0] < k[2] && box[2] > k[0] && box[1] < k[3] && box[3] > k[1])) continue;
      kept.push(box);
      out.push(d);
    }
    if (state.deck && state.deck.props && state.deck.props.parent) state.deck.props.parent.dataset.labels = String(out.length);
    return out;
  }
  function redraw() {
    if (!state.deck) return;
    if (state.standing) {
      const c = viewCentre();
      if (!state.standing3d || walkedOn(c)) state.standing3d = standingLayers(state.common, c || [0, 0]);
      state.extraLayers = [...state.standing3d, state.flatLayers[1]];
    } else {
      if (state.standing3d) {
        // deck.gl does not take back a layer it has finalised: coming back from the side view
        // the discs are new instances of the same layer (and the side view's are built anew)
        state.flatLayers = state.flatLayers.map((l) => l.clone({}));
        state.standing3d = null;
        state.standCentre = null;
      }
      state.extraLayers = state.flatLayers;
    }
    state.deck.setProps({ layers: [...state.staticLayers, ...state.extraLayers, ...(state.live ? overlayLayers() : [])] });
  }
  function applyLive(live) {
    state.live = Object.assign(state.live || {}, live || {});
    if (!state.deck) { state.pendingLive = state.live; return false; }
    state.liveVersion = (state.liveVersion || 0) + 1;
    const zones = state.live.zones || {};
    state.staticLayers = state.staticLayers.map((layer) => {
      if (layer.id !== "zones") return layer;
      for (const o of layer.props.data) {
        const z = zones[o.zone_id];
        if (z && Array.isArray(z.color)) { o.color = z.color; o.load = z.load; o.tier = z.tier; }
      }
      // the outline carries the tier too: readable from across the room, not only a tint
      return layer.clone({
        getLineColor: (o) => (TIER_RGB[o.tier] ? [...TIER_RGB[o.tier], 255] : [140, 200, 255, 160]),
        getLineWidth: (o) => (TIER_RGB[o.tier] ? 4 : 1), lineWidthUnits: "pixels",
        updateTriggers: { getFillColor: state.liveVersion, getLineColor: state.liveVersion, getLineWidth: state.liveVersion },
      });
    });
    redraw();
    const el = document.getElementById("twin-deck");
    if (el) {
      el.dataset.liveVersion = String(state.liveVersion);
      el.dataset.markers = String((state.live.markers || []).length);
    }
    return true;
  }
  state.applyLive = applyLive;
  // markers pulse twice a second (a layer prop change, not a per-frame loop)
  setInterval(() => {
    if (!state.deck || !state.live) return;
    const pulse = (state.live.markers || []).length > 0;
    if (!pulse && viewKey() === state.labelView) return;          // labels follow a moved view
    if (pulse) state.phase = state.phase ? 0 : 1;
    redraw();
  }, 700);

  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    twin: {
      mount: function (cfg) {
        if (!cfg) return window.dash_clientside.no_update;
        return mount(cfg).catch((e) => { console.error("twin mount failed:", e); return { mounted: false, error: String(e) }; });
      },
    },
  });
})();
