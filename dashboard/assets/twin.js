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
    if (magic !== "STF1") throw new Error("furniture buffer: bad magic " + magic);
    const n = u32(view, 4), hlen = u32(view, 8);
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 12, hlen)));
    let off = 12 + hlen;
    const positions = new Float32Array(buf, off, n * 3); off += n * 12;
    const colors = new Uint8Array(buf, off, n * 4); off += n * 4;
    const codes = new Uint8Array(buf, off, n);
    const radii = new Float32Array(n);
    for (let i = 0; i < n; i++) radii[i] = header.radius[codes[i]];
    return { n, header, positions, colors, codes, radii };
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

  function onClick(info) {
    if (!info || !info.layer) return;
    if (info.layer.id === "furniture" && info.index >= 0) {
      select({ kind: "furniture", index: info.index, t: Date.now() });
    } else if (info.object && info.object.id) {
      select({ kind: "asset", id: info.object.id, t: Date.now() });
    }
  }

  function tooltip(info) {
    if (!info || !info.object || !info.object.id) return null;
    const o = info.object;
    return { text: (o.name_zh || "") + "\n" + (o.name_en || "") };  // text, never HTML
  }

  async function mount(cfg) {
    const el = document.getElementById(cfg.container);
    if (!el || state.deck) return window.dash_clientside.no_update;
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
    state.spec = spec;
    state.staticLayers = props.layers;
    state.extraLayers = [furniture, shell];
    state.deck = new D.Deck({
      parent: el,
      views: props.views,
      initialViewState: props.initialViewState,
      controller: true,
      layers: [...props.layers, ...state.extraLayers],
      onClick,
      getTooltip: tooltip,
      onAfterRender: () => { state.frames += 1; el.dataset.frames = String(state.frames); },
      onError: (e) => { state.errors.push(String(e)); console.error("deck.gl:", e); },
    });
    el.dataset.assets = String(furn.n);
    return { mounted: true, furniture: furn.n };
  }

  // Pushed live state: recolour the zones by tier.  Only the zones layer's
  // fill accessor is re-run (updateTriggers), the rest of the scene stays.
  function applyLive(live) {
    if (!live || !state.deck || !live.zones) return false;
    state.liveVersion = (state.liveVersion || 0) + 1;
    state.staticLayers = state.staticLayers.map((layer) => {
      if (layer.id !== "zones") return layer;
      for (const o of layer.props.data) {
        const z = live.zones[o.zone_id];
        if (z && Array.isArray(z.color)) { o.color = z.color; o.load = z.load; o.tier = z.tier; }
      }
      return layer.clone({ updateTriggers: { getFillColor: state.liveVersion } });
    });
    state.deck.setProps({ layers: [...state.staticLayers, ...state.extraLayers] });
    const el = document.getElementById("twin-deck");
    if (el) el.dataset.liveVersion = String(state.liveVersion);
    return true;
  }

  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    twin: {
      live: function (live) { return { applied: applyLive(live), version: state.liveVersion || 0 }; },
      mount: function (cfg) {
        if (!cfg) return window.dash_clientside.no_update;
        return mount(cfg).catch((e) => { console.error("twin mount failed:", e); return { mounted: false, error: String(e) }; });
      },
    },
  });
})();
