// The binding editor in the inspect panel: for the selected machine, pick one of its nodes, a property of its twin,
// a field and a mapping; see what the mapping makes of the property's value now — in the form and on the node in
// the 3D view (a local override, sent nowhere) — as the values come in; save it into the plant's bindings.json
// (GET, edit, PUT /api/plant/bindings.json: the server checks, writes and applies it live) or cancel. Shown only
// to those the server lets read bindings.json (admins; in open mode, anyone).
import * as B from './bindings.mjs';

const $ = (id) => document.getElementById(id);
const PATH = '/api/plant/bindings.json';
const FIELD_NAMES = {
  label: 'label (text)', color: 'colour', visible: 'visible', 'translation.x': 'position x (m)', 'translation.y': 'position y (m)',
  'translation.z': 'position z (m)', 'rotation.x': 'rotation about x (rad)', 'rotation.y': 'rotation about y (rad)',
  'rotation.z': 'rotation about z (rad)', scale: 'scale (all axes)', 'scale.x': 'scale x', 'scale.y': 'scale y', 'scale.z': 'scale z',
  pose: 'pose (position and heading)',
};
const KIND_NAMES = { linear: 'linear (value × scale + offset)', rangeColor: 'colour by range', threshold: 'threshold (above → then, else)', format: 'text format', pose: 'pose from properties' };
const DEFAULT_STOPS = [[0, '#3a7bd5ff'], [50, '#f2c94cff'], [100, '#eb3b2fff']];

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'text') e.textContent = v;
    else if (k === 'className') e.className = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  e.append(...children);
  return e;
}

function options(select, list, value) {
  const sig = JSON.stringify(list);
  if (select.dataset.sig !== sig) {
    select.dataset.sig = sig;
    select.innerHTML = '';
    for (const [v, text] of list) select.appendChild(el('option', { value: v, text }));
  }
  if (value != null) select.value = value;
}

const num = (input) => (input.value.trim() === '' ? null : Number(input.value));

export class BindingEditor {
  /** `plant`: the PlantView; `replica`: () → the stream's replica; `state`: the page state (inspect, twins);
   * `request(path, {method, body})` → {status, text}, with the page's identity. */
  constructor({ plant, replica, state, request }) {
    this.plant = plant;
    this.replica = replica;
    this.state = state;
    this.request = request;
    this.allowed = null;      // may this user author? null: not known yet
    this.machine = null;      // { index, path, twin }
    this.file = null;         // bindings.json as last read
    this.draft = null;        // { node, scope, twins, pattern, property, field, map }
    this.previewing = false;
    this.shown = null;        // { index, key }: the override on the view now
    this.releaseTimer = null;
    this.saving = false;
    this.lastSave = null;     // { status, text, replaced }
    this.output = null;       // what the preview shows: { text, value, note }
    this.root = $('author');
    this.root.addEventListener('toggle', () => { if (this.root.open) this.begin(); else this.cancel(); });
    $('author-save').onclick = () => this.save();
    $('author-cancel').onclick = () => this.cancel();
    $('author-node').onchange = () => { this.draft.node = $('author-node').value; this.loadNode(); };
    $('author-property').onchange = () => { this.draft.property = $('author-property').value; this.edited(); };
    $('author-field').onchange = () => this.setField($('author-field').value);
    $('author-kind').onchange = () => { this.draft.map = this.defaultMap($('author-kind').value); this.renderParams(); this.edited(); };
    $('author-scope').onchange = () => { this.draft.scope = $('author-scope').value; this.fillScope(); this.edited(); };
    for (const id of ['author-twins', 'author-pattern']) {
      $(id).oninput = () => {
        this.draft.twins = $('author-twins').value.trim();
        this.draft.pattern = $('author-pattern').value.trim();
        this.draft.scope = 'custom';
        $('author-scope').value = 'custom';
        this.edited();
      };
    }
    const params = $('author-params');
    params.addEventListener('input', () => { this.readParams(); this.edited(); });
    params.addEventListener('change', () => { this.readParams(); this.edited(); });
    params.addEventListener('click', (ev) => {
      const b = ev.target.closest('button');
      if (!b || !this.draft) return;
      this.readParams();
      const stops = this.draft.map.stops;
      if (b.dataset.remove != null) stops.splice(Number(b.dataset.remove), 1);
      else if (b.id === 'author-add-stop') {
        const last = stops[stops.length - 1];
        stops.push(last ? [last[0] + 10, last[1]] : [0, '#3a7bd5ff']);
      } else return;
      this.renderParams();
      this.edited();
    });
  }

  /** Whether the user may author (a 200 from GET bindings.json); the section shows only then. */
  setAllowed(allowed) {
    this.allowed = allowed;
    this.root.hidden = !(allowed && this.machine);
  }

  /** The inspect panel shows machine `index` (path, twin id), or nothing: an open edit is dropped. */
  select(machine) {
    if (this.machine && machine && this.machine.index === machine.index && this.machine.twin === machine.twin) return;
    this.cancel();
    this.machine = machine && machine.twin ? machine : null;
    this.root.hidden = !(this.allowed && this.machine);
  }

  /** New values of the selected twin (/api/twin): the preview follows them. */
  values() {
    if (!this.root.open || !this.draft) return;
    this.renderProperties();
    this.update();
  }

  /** The index of the node the preview is on (its label is drawn first), or null. */
  get previewIndex() { return this.shown ? this.shown.index : null; }

  /** After the stream changed the view: a keyframe drops every override (the preview is put back); after a save, the
   * preview goes once the node's saved value came (or after a second). */
  afterChange(change) {
    if (!this.shown) return;
    if (change.keyframe || change.removed.includes(this.shown.index)) {
      this.shown = null;
      if (this.previewing) this.update();
      return;
    }
    if (this.releaseTimer && change.updated.includes(this.shown.index)) this.unshow();
  }

  /** For tests: what the editor shows now. */
  snapshot() {
    return {
      allowed: this.allowed, open: this.root.open, visible: !this.root.hidden, previewing: this.previewing,
      previewNode: this.shown ? this.plant.path(this.shown.index) : null, draft: this.draft && JSON.parse(JSON.stringify(this.draft)),
      binding: this.draft ? this.binding() : null, output: this.output, saving: this.saving, lastSave: this.lastSave, file: this.file,
    };
  }

  // ------------------------------------------------------------------------------------------------ the form

  /** The section was opened: read the file, start from what the machine's own node has bound. */
  async begin() {
    if (!this.machine) return;
    $('author-result').textContent = '';
    $('author-result').className = '';
    const m = this.machine;
    // Named from the machine's parent down: press-01, press-01/temp … (the values are the nodes' ids).
    const base = m.path.slice(0, m.path.length - m.path.split('/').pop().length);
    options($('author-node'), this.nodesOf(m.index).map((p) => [p, p === m.path ? `${p.slice(base.length)} (the machine)` : p.slice(base.length)]), null);
    options($('author-field'), B.FIELDS.map((f) => [f, FIELD_NAMES[f]]), null);
    const first = this.firstProperty();
    this.draft = { node: m.path, scope: 'all', twins: '', pattern: '', property: first, field: 'label', map: this.defaultMap('format', 'label', first) };
    await this.reload();
    if (!this.draft || this.machine !== m) return;
    this.loadNode();
  }

  /** Reads bindings.json (for the list of what is bound, and what a save replaces). */
  async reload() {
    try {
      const r = await this.request(PATH);
      if (r.status !== 200) throw new Error(`${r.status} ${r.text.trim()}`);
      this.file = JSON.parse(r.text);
    } catch (e) {
      this.file = null;
      this.showResult(false, 'Could not read bindings.json', e.message);
    }
  }

  /** The node changed: list its bindings and start from the first of them (or keep the form as it is). */
  loadNode() {
    const d = this.draft, twin = this.machine.twin;
    const existing = B.bindingsOf(this.file, twin, d.node);
    if (existing.length) this.fromBinding(existing[0].b);
    else { d.scope = B.nodePattern(twin, d.node) == null ? 'one' : 'all'; this.fillScope(); }
    this.renderAll();
    this.edited();
  }

  /** Fills the form from a binding of the file. */
  fromBinding(b) {
    const d = this.draft, twin = this.machine.twin;
    d.field = b.field;
    d.property = b.property || '';
    d.map = JSON.parse(JSON.stringify(b.map || {}));
    if (d.map.kind === 'rangeColor') d.map.blend = d.map.blend ?? true;
    if (d.map.kind === 'format') d.map.precision = d.map.precision ?? 1;
    d.twins = b.twins;
    d.pattern = b.node;
    const all = this.scopePatterns('all'), one = this.scopePatterns('one');
    d.scope = all && all.twins === b.twins && all.pattern === b.node ? 'all' : one.twins === b.twins && one.pattern === b.node ? 'one' : 'custom';
    if (!B.globMatches(b.twins, twin)) d.scope = 'custom';
  }

  /** The twins glob and node template for `scope` ('all': every machine like this one; 'one': this machine). */
  scopePatterns(scope) {
    const twin = this.machine.twin, node = this.draft.node;
    if (scope === 'one') return { twins: twin, pattern: node };
    const pattern = B.nodePattern(twin, node);
    return pattern == null ? null : { twins: B.twinsPattern(twin), pattern };
  }

  fillScope() {
    const d = this.draft;
    if (d.scope === 'custom') return;
    const p = this.scopePatterns(d.scope) || this.scopePatterns((d.scope = 'one'));
    d.twins = p.twins;
    d.pattern = p.pattern;
  }

  setField(field) {
    const d = this.draft, before = B.fieldType(d.field);
    d.field = field;
    if (field !== 'pose' && !d.property) d.property = this.firstProperty();
    if (B.fieldType(field) !== before || !B.kindsFor(field).includes(d.map.kind)) d.map = this.defaultMap(B.kindsFor(field)[0]);
    this.renderAll();
    this.edited();
  }

  properties() { return Object.keys(this.state.inspect?.properties || {}).sort(); }

  /** The property to start from: the one the trend shows, else the first numeric one. */
  firstProperty() {
    const props = this.properties(), values = this.state.inspect?.properties || {};
    return props.find((k) => k === this.state.chartData?.property) || props.find((k) => B.numberOf(values[k].value) != null) || props[0] || '';
  }

  /** A mapping of `kind` to start from, for the draft's field and property. */
  defaultMap(kind, field = this.draft.field, property = this.draft.property) {
    const p = this.state.inspect?.properties?.[property], v = p ? B.numberOf(p.value) : null;
    switch (kind) {
      case 'linear': return { kind, scale: 1, offset: 0 };
      case 'rangeColor': return { kind, stops: DEFAULT_STOPS.map((s) => [...s]), blend: true };
      case 'format': return { kind, format: p && p.unit ? `{value} ${p.unit}` : '{value}', precision: 0 };
      case 'pose': {
        const names = this.properties(), has = (k) => names.includes(k);
        const m = { kind };
        for (const [k, candidates] of [['x', ['x']], ['y', ['y']], ['z', ['z']], ['yaw', ['heading', 'yaw']]]) {
          const found = candidates.find(has);
          if (found) m[k] = found;
        }
        if (!m.x && !m.y && !m.z && !m.yaw && names[0]) m.x = names[0];
        return m;
      }
      default: {
        const above = v != null && Number.isFinite(v) ? Math.round(v) : 0;
        const type = B.fieldType(field);
        const pair = type === 'color' ? ['#ff2222ff', '#22cc44ff'] : type === 'visible' ? [true, false] : type === 'label' ? ['high', 'normal'] : [1, 0];
        return { kind: 'threshold', above, then: pair[0], else: pair[1] };
      }
    }
  }

  /** The binding the form describes, as bindings.json holds it. */
  binding() {
    const d = this.draft;
    if (d.field === 'pose') return { twins: d.twins, node: d.pattern, field: d.field, map: d.map };
    return { twins: d.twins, property: d.property, node: d.pattern, field: d.field, map: d.map };
  }

  // ---------------------------------------------------------------------------------------------- rendering

  renderAll() {
    const d = this.draft;
    $('author-node').value = d.node;
    this.renderProperties();
    $('author-field').value = d.field;
    options($('author-kind'), B.kindsFor(d.field).map((k) => [k, KIND_NAMES[k]]), d.map.kind);
    const all = this.scopePatterns('all');
    const scope = $('author-scope');
    scope.options[0].textContent = all ? `every machine like this (${all.twins})` : 'every machine like this (not for this node)';
    scope.options[0].disabled = !all;
    scope.options[1].textContent = `only ${this.machine.twin.split('/').pop()}`;
    scope.value = d.scope;
    this.renderParams();
  }

  renderProperties() {
    const d = this.draft, names = this.properties();
    if (d.property && !names.includes(d.property)) names.push(d.property);
    const sel = $('author-property');
    options(sel, names.map((k) => [k, k]), d.property);
    const pose = d.field === 'pose';
    sel.disabled = pose;
    sel.title = pose ? 'a pose names its properties below' : '';
    if (pose) this.renderPoseOptions();
  }

  renderPoseOptions() {
    const names = this.properties();
    for (const k of ['x', 'y', 'z', 'yaw']) {
      const s = $(`author-pose-${k}`);
      if (!s) continue;
      const list = [['', '(none)'], ...names.map((n) => [n, n])];
      if (this.draft.map[k] && !names.includes(this.draft.map[k])) list.push([this.draft.map[k], this.draft.map[k]]);
      options(s, list, this.draft.map[k] || '');
    }
  }

  /** The mapping's parameters, for its kind. */
  renderParams() {
    const box = $('author-params'), m = this.draft.map, type = B.fieldType(this.draft.field);
    box.innerHTML = '';
    const row = (id, text, input) => { input.id = id; box.append(el('label', { for: id, text }), input); };
    const number = (value, extra = {}) => el('input', { type: 'number', step: 'any', value: value ?? '', ...extra });
    const typed = (value) => {
      if (type === 'color') return el('input', { type: 'color', value: String(value || '#000000ff').slice(0, 7), 'data-alpha': String(value || '').slice(7, 9) || 'ff' });
      if (type === 'visible') { const s = el('select'); options(s, [['true', 'visible'], ['false', 'hidden']], String(value)); return s; }
      if (type === 'label') return el('input', { type: 'text', value: value ?? '', autocomplete: 'off' });
      return number(value);
    };
    switch (m.kind) {
      case 'linear':
        row('author-scale', 'Scale', number(m.scale));
        row('author-offset', 'Offset', number(m.offset));
        row('author-min', 'Min', number(m.min, { placeholder: 'none' }));
        row('author-max', 'Max', number(m.max, { placeholder: 'none' }));
        break;
      case 'rangeColor': {
        const list = el('div', { className: 'span stops', role: 'group', 'aria-label': 'Colour stops' });
        m.stops.forEach(([v, c], k) => {
          list.appendChild(el('div', { className: 'stop' },
            el('input', { type: 'number', step: 'any', className: 'stop-value', value: v, 'aria-label': `Stop ${k + 1} value` }),
            el('input', { type: 'color', className: 'stop-color', value: String(c).slice(0, 7), 'data-alpha': String(c).slice(7, 9) || 'ff', 'aria-label': `Stop ${k + 1} colour` }),
            el('span', { className: 'muted', text: String(c) }),
            el('button', { type: 'button', className: 'secondary', 'data-remove': k, 'aria-label': `Remove stop ${k + 1}`, title: 'Remove this stop', text: '✕' })));
        });
        if (!m.stops.length) list.appendChild(el('div', { className: 'muted', text: 'no stops' }));
        box.appendChild(list);
        box.appendChild(el('div', { className: 'span row' },
          el('button', { type: 'button', id: 'author-add-stop', className: 'secondary', text: 'Add stop' }),
          el('label', {}, el('input', { type: 'checkbox', id: 'author-blend', checked: m.blend !== false }), ' blend between stops')));
        break;
      }
      case 'threshold':
        row('author-above', 'At or above', number(m.above));
        row('author-then', 'Then', typed(m.then));
        row('author-else', 'Else', typed(m.else));
        break;
      case 'format':
        row('author-format', 'Format', el('input', { type: 'text', value: m.format ?? '', autocomplete: 'off', spellcheck: 'false' }));
        row('author-precision', 'Decimals', number(m.precision, { min: 0, max: 9, step: 1 }));
        box.appendChild(el('div', { className: 'span muted', text: '{value}, {twin}, {property} and {quality} are filled in' }));
        break;
      case 'pose':
        for (const [k, text] of [['x', 'x (m)'], ['y', 'y (m)'], ['z', 'z (m)'], ['yaw', 'Heading (°)']]) row(`author-pose-${k}`, text, el('select'));
        this.renderPoseOptions();
        break;
      default:
        break;
    }
  }

  /** The parameters' inputs → the draft's map. */
  readParams() {
    const m = this.draft.map, type = B.fieldType(this.draft.field);
    const typed = (input) => {
      if (type === 'color') return `${input.value}${input.dataset.alpha || 'ff'}`;
      if (type === 'visible') return input.value === 'true';
      if (type === 'label') return input.value;
      return num(input);
    };
    const put = (k, v) => { if (v == null) delete m[k]; else m[k] = v; };
    switch (m.kind) {
      case 'linear':
        for (const k of ['scale', 'offset', 'min', 'max']) put(k, num($(`author-${k}`)));
        break;
      case 'rangeColor':
        m.stops = [...document.querySelectorAll('#author-params .stop')].map((s) => {
          const c = s.querySelector('.stop-color');
          return [num(s.querySelector('.stop-value')), `${c.value}${c.dataset.alpha || 'ff'}`];
        });
        m.blend = $('author-blend').checked;
        break;
      case 'threshold':
        m.above = num($('author-above'));
        m.then = typed($('author-then'));
        m.else = typed($('author-else'));
        break;
      case 'format':
        m.format = $('author-format').value;
        put('precision', num($('author-precision')));  // none: the server's default (1)
        break;
      case 'pose':
        for (const k of ['x', 'y', 'z', 'yaw']) put(k, $(`author-pose-${k}`).value || null);
        break;
      default:
        break;
    }
  }

  /** The user changed something: the preview (back) on, the list and the plan redrawn. */
  edited() {
    this.previewing = true;
    clearTimeout(this.releaseTimer);
    this.releaseTimer = null;
    // (Not under the user's fingers: what they type stays as typed.)
    if (document.activeElement !== $('author-twins')) $('author-twins').value = this.draft.twins;
    if (document.activeElement !== $('author-pattern')) $('author-pattern').value = this.draft.pattern;
    this.renderBound();
    this.update();
  }

  renderBound() {
    const ul = $('author-bound'), twin = this.machine.twin, d = this.draft;
    ul.innerHTML = '';
    const existing = B.bindingsOf(this.file, twin, d.node);
    if (!this.file) ul.appendChild(el('li', { className: 'muted', text: 'bindings.json not read' }));
    else if (!existing.length) ul.appendChild(el('li', { className: 'muted', text: 'nothing bound to this node yet' }));
    for (const { b, index } of existing) {
      const li = el('li', { 'data-index': index },
        el('span', { text: `${b.field} ← ${b.property || 'pose'}: ${B.describe(b)} ` }),
        el('small', { className: 'muted', text: `#${index + 1}, ${b.twins}` }));
      const edit = el('button', { type: 'button', className: 'secondary', text: 'Edit', 'aria-label': `Edit binding ${index + 1} (${b.field})` });
      edit.onclick = () => { this.fromBinding(b); this.renderAll(); this.edited(); };
      li.appendChild(edit);
      ul.appendChild(li);
    }
    // What saving does: replace one of the file's bindings, or add one; and which twins it reaches.
    const b = this.binding(), k = B.replaces(this.file, b, twin);
    const known = [...new Set([...this.state.twins.values()].map((t) => t.id))];
    const hits = b.twins ? known.filter((t) => { try { return B.globMatches(b.twins, t); } catch { return false; } }).length : 0;
    $('author-matches').textContent = `Matches ${hits} of the ${known.length} twin${known.length === 1 ? '' : 's'} this view knows`
      + (!b.node.includes('{twin}') && hits > 1 ? ' — all of them would write the same node' : '');
    $('author-plan').textContent = !this.file ? '' : k >= 0 ? `Saving replaces binding #${k + 1} (${this.file.bindings[k].twins} → ${this.file.bindings[k].node}, ${b.field}).`
      : `Saving adds binding #${this.file.bindings.length + 1}.`;
    for (const li of ul.children) if (li.dataset.index === String(k)) li.classList.add('target');
  }

  /** Computes the mapping on the twin's value now; shows it in the form and on the node. */
  update() {
    if (!this.draft || !this.machine) return;
    const b = this.binding();
    const ev = B.evaluate(b, this.machine.twin, this.state.inspect?.twin === this.machine.twin ? this.state.inspect.properties : null);
    const out = ev.out, field = this.draft.field;
    let text = '—', swatch = null;
    if (out) {
      switch (out.type) {
        case 'text': text = out.value; break;
        case 'color': text = B.formatColor(out.value); swatch = text; break;
        case 'bool': text = out.value ? 'visible' : 'hidden'; break;
        case 'pose': text = Object.entries(out.value).map(([k, v]) => (k === 'yaw' ? `heading ${v}°` : `${k} ${v} m`)).join(', '); break;
        default: {
          const v = out.value;
          text = field.startsWith('rotation') ? `${v} rad (${((v * 180) / Math.PI).toFixed(1)}°)` : field.startsWith('scale') ? `× ${v}` : `${v} m`;
        }
      }
    }
    this.output = { text, value: out ? out.value : null, note: ev.note, invalid: !!ev.invalid };
    $('author-input').textContent = ev.input || '—';
    $('author-output').textContent = text;
    const sw = $('author-swatch');
    sw.hidden = !swatch;
    if (swatch) sw.style.background = swatch.slice(0, 7);
    $('author-note').textContent = ev.note ? (ev.invalid ? `Not valid: ${ev.note}` : ev.note) : '';
    $('author-note').className = ev.invalid ? 'warn' : 'muted';
    // After a save the preview stays until the server's value has come (see afterChange).
    if (this.previewing) this.show(this.overrideFor(out));
    else if (!this.releaseTimer) this.show(null);
  }

  /** What the server would write on the node, as a PlantView override. */
  overrideFor(out) {
    if (!out) return null;
    const field = this.draft.field, axis = { x: 0, y: 1, z: 2 }[field.split('.')[1]];
    switch (out.type) {
      case 'text': return { label: out.value };
      case 'color': return { color: out.value };
      case 'bool': return { visible: out.value };
      case 'pose': return { pose: out.value };
      default:
        if (!Number.isFinite(out.value)) return null;
        if (field.startsWith('translation')) return { translation: [axis, out.value] };
        if (field.startsWith('rotation')) return { rotation: [axis, out.value] };
        return { scale: [field === 'scale' ? -1 : axis, out.value] };
    }
  }

  /** Puts override `o` on the draft's node (none: the stream's values again). */
  show(o) {
    const index = o ? this.plant.indexOf(this.draft.node) : null;
    const key = o && index != null ? JSON.stringify(o) : null;
    if (this.shown && (this.shown.index !== index || this.shown.key !== key)) this.unshow();
    if (key == null || (this.shown && this.shown.key === key)) return;
    this.shown = { index, key };
    this.plant.override(index, o, this.replica().nodes.get(index), this.replica());
  }

  unshow() {
    clearTimeout(this.releaseTimer);
    this.releaseTimer = null;
    if (!this.shown) return;
    const { index } = this.shown;
    this.shown = null;
    const r = this.replica().nodes.get(index);
    this.plant.override(index, null, r, this.replica());
  }

  /** Drops the preview and closes the section. */
  cancel() {
    this.previewing = false;
    this.unshow();
    this.draft = null;
    this.output = null;
    if (this.root.open) this.root.open = false;
  }

  nodesOf(index) {
    const out = [];
    const walk = (i, depth) => {
      const n = this.plant.nodes.get(i);
      if (!n || depth > 32 || n.name.startsWith('~')) return;
      out.push(this.plant.path(i));
      for (const c of n.children) walk(c, depth + 1);
    };
    walk(index, 0);
    return [out[0], ...out.slice(1).sort()].filter(Boolean);
  }

  // ---------------------------------------------------------------------------------------------------- save

  showResult(ok, head, text) {
    const r = $('author-result');
    r.className = ok ? 'ok' : 'err';
    r.innerHTML = '';
    r.appendChild(el('b', { text: head }));
    if (text) r.appendChild(el('pre', { className: 'reason', text }));
  }

  /** Reads the file as it is now, puts the binding in, saves it; shows the server's answer as it is. */
  async save() {
    if (!this.draft || this.saving) return;
    const b = JSON.parse(JSON.stringify(this.binding())), twin = this.machine.twin, draft = this.draft;
    this.saving = true;
    $('author-save').disabled = true;
    this.showResult(true, 'Saving…');
    try {
      const cur = await this.request(PATH);
      if (cur.status !== 200) { this.lastSave = { status: cur.status, text: cur.text }; this.showResult(false, `Could not read bindings.json (HTTP ${cur.status}):`, cur.text.trim()); return; }
      let file;
      try { file = JSON.parse(cur.text); } catch (e) { this.showResult(false, 'bindings.json on the server is not JSON:', e.message); return; }
      const { text, replaced } = B.withBinding(file, b, twin);
      // If-Match: refused (412) rather than overwriting an edit someone made since the read just above.
      const r = await this.request(PATH, { method: 'PUT', body: text, ifMatch: cur.etag || undefined });
      this.lastSave = { status: r.status, text: r.text, replaced };
      if (r.status === 200) {
        let changes = '';
        try { changes = JSON.parse(r.text).changes || ''; } catch { changes = r.text; }
        this.showResult(true, `Saved: ${replaced >= 0 ? `replaced binding #${replaced + 1}` : 'added a new binding'}, applied live.`, changes);
        this.file = JSON.parse(text);
        if (this.draft === draft) {
          // The server's value takes over from the preview once it has come (or after a second).
          this.previewing = false;
          if (this.shown) this.releaseTimer = setTimeout(() => this.unshow(), 1000);
          this.renderBound();
        }
        await this.reload();
        if (this.draft === draft) this.renderBound();
      } else {
        this.showResult(false, `Not saved (HTTP ${r.status}):`, r.text.trim());
      }
    } catch (e) {
      this.lastSave = { status: 0, text: e.message };
      this.showResult(false, 'Not saved:', e.message);
    } finally {
      this.saving = false;
      $('author-save').disabled = false;
    }
  }
}
