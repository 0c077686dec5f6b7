// Bindings as the server reads and applies them (Sources/SceneStreamCore/Bindings.swift), for the viewer's binding
// editor: the fields and mapping kinds there are, what a mapping makes of a value (the live preview must show what
// the server will write), the twins glob, and the edit of a bindings.json file. No DOM here.

export const FORMAT = 'scenestream.bindings/1';

/** Every field a binding may write, as bindings.json spells it. */
export const FIELDS = ['label', 'color', 'visible', 'translation.x', 'translation.y', 'translation.z',
  'rotation.x', 'rotation.y', 'rotation.z', 'scale', 'scale.x', 'scale.y', 'scale.z', 'pose'];

/** What a field holds: 'label', 'color', 'visible', 'pose' or 'number'. */
export function fieldType(field) {
  return field === 'label' || field === 'color' || field === 'visible' || field === 'pose' ? field : 'number';
}

/** The mapping kinds the server accepts for `field` (the first is the usual one). */
export function kindsFor(field) {
  switch (fieldType(field)) {
    case 'label': return ['format', 'threshold'];
    case 'color': return ['rangeColor', 'threshold'];
    case 'visible': return ['threshold'];
    case 'pose': return ['pose'];
    default: return ['linear', 'threshold'];
  }
}

/** The colour the server gives a bound node whose value is not good (BindingEngine.staleColor). */
export const STALE_COLOR = 0x7F7F7FFF;

/** `#rrggbb` or `#rrggbbaa` → RGBA (as the server's parseColor), or null. */
export function parseColor(s) {
  if (typeof s !== 'string' || !/^#([0-9a-fA-F]{6}|[0-9a-fA-F]{8})$/.test(s)) return null;
  const v = parseInt(s.slice(1), 16);
  return s.length === 7 ? ((v * 256) + 0xFF) >>> 0 : v >>> 0;
}

/** RGBA → `#rrggbbaa`. */
export function formatColor(c) { return `#${(c >>> 0).toString(16).padStart(8, '0')}`; }

/** Per channel `a + (b - a) * t`, rounded (BindingMap.blend). */
export function blend(a, b, t) {
  let out = 0;
  for (const shift of [24, 16, 8, 0]) {
    const ca = Math.floor(a / 2 ** shift) & 0xFF, cb = Math.floor(b / 2 ** shift) & 0xFF;
    out = out * 256 + Math.round(ca + (cb - ca) * t);
  }
  return out >>> 0;
}

/** The power of two of the lowest set bit of finite, non-zero `a` (0.5 → -1, 12 → 2). */
function lowestBit(a) {
  const dv = new DataView(new ArrayBuffer(8));
  dv.setFloat64(0, Math.abs(a));
  const hi = dv.getUint32(0), lo = dv.getUint32(4), exp = (hi >>> 20) & 0x7FF;
  let m = (BigInt(hi & 0xFFFFF) << 32n) | BigInt(lo), e = -1074;
  if (exp) { m |= 1n << 52n; e = exp - 1075; }
  let k = 0;
  while ((m & 1n) === 0n) { m >>= 1n; k++; }
  return k + e;
}

/** `v` with `p` decimals as the server's `String(format: "%.<p>f")` writes it: rounded from the exact binary value,
 * a tie to the even digit (JavaScript's toFixed takes the larger one), a sign on negative zero; not finite: "–". */
export function fixed(v, p) {
  if (!Number.isFinite(v)) return '–';
  const neg = v < 0 || Object.is(v, -0), a = Math.abs(v);
  let s;
  if (a >= 1e21) s = BigInt(a).toString() + (p ? `.${'0'.repeat(p)}` : '');
  else {
    s = a.toFixed(p);
    // An exact tie (a × 10^p ends in .5 exactly) is when a's lowest bit is 2^-(p+1).
    if (a !== 0 && lowestBit(a) === -(p + 1)) {
      let n = BigInt(s.replace('.', ''));
      if (n % 2n === 1n) {
        n -= 1n;
        const d = n.toString().padStart(p + 1, '0');
        s = p ? `${d.slice(0, -p)}.${d.slice(-p)}` : d;
      }
    }
  }
  return (neg ? '-' : '') + s;
}

/** `template` with {value}, {twin}, {property} and {quality} filled in, in one pass (BindingMap.fill). */
export function fill(template, value, twin, property, quality) {
  return template.replace(/\{(value|twin|property|quality)\}/g, (_, k) => ({ value, twin, property, quality })[k]);
}

/** A twin value as the server reads it as a number (TwinValue.number): booleans 1/0, text that parses. The HTTP
 * API writes non-finite numbers as text ("inf", "-inf", "nan"). */
export function numberOf(v) {
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v !== 'string') return null;
  const s = v.toLowerCase();
  if (/^[+-]?(inf|infinity)$/.test(s)) return s.startsWith('-') ? -Infinity : Infinity;
  if (/^[+-]?nan$/.test(s)) return NaN;
  if (/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/.test(s)) return Number(s);
  return null;
}

/** What a mapping writes: { type: 'number'|'color'|'bool'|'text', value }. */
function mapped(field, v) {
  switch (fieldType(field)) {
    case 'color': return { type: 'color', value: parseColor(v) };
    case 'visible': return { type: 'bool', value: v };
    case 'label': return { type: 'text', value: v };
    default: return { type: 'number', value: v };
  }
}

const isNum = (x) => typeof x === 'number' && Number.isFinite(x);

/** What is wrong with `binding` as the server would see it (the first problem), or ''. Advisory: the server's answer
 * on saving is what counts. */
export function problem(b) {
  const m = b.map || {}, type = fieldType(b.field);
  if (!b.twins) return 'twins: empty pattern';
  if (!FIELDS.includes(b.field)) return `field: unknown field '${b.field}'`;
  if (type !== 'pose' && !b.property) return 'property: empty property name';
  if (!kindsFor(b.field).includes(m.kind)) return `map.kind: ${m.kind} cannot drive ${b.field}`;
  const typed = (x, what) => {
    if (type === 'color') return parseColor(x) == null ? `${what}: expected a colour like #rrggbb` : '';
    if (type === 'visible') return typeof x === 'boolean' ? '' : `${what}: expected true or false`;
    if (type === 'label') return typeof x === 'string' ? '' : `${what}: expected a string`;
    return isNum(x) ? '' : `${what}: expected a number`;
  };
  switch (m.kind) {
    case 'linear':
      for (const k of ['scale', 'offset', 'min', 'max']) if (k in m && !isNum(m[k])) return `map.${k}: expected a number`;
      if ('min' in m && 'max' in m && m.min > m.max) return `map.min: min ${m.min} is above max ${m.max}`;
      return '';
    case 'rangeColor': {
      const stops = m.stops || [];
      if (!stops.length) return 'map.stops: needs at least one stop';
      for (let k = 0; k < stops.length; k++) {
        if (!isNum(stops[k][0])) return `map.stops[${k}][0]: expected a number`;
        if (parseColor(stops[k][1]) == null) return `map.stops[${k}][1]: expected a colour like #rrggbb`;
        if (k && stops[k - 1][0] >= stops[k][0]) return `map.stops[${k}][0]: stops must ascend (${stops[k][0]} after ${stops[k - 1][0]})`;
      }
      return '';
    }
    case 'threshold':
      return !isNum(m.above) ? 'map.above: expected a number' : typed(m.then, 'map.then') || typed(m.else, 'map.else');
    case 'format':
      if (typeof m.format !== 'string') return 'map.format: expected a string';
      if ('precision' in m && !(Number.isInteger(m.precision) && m.precision >= 0 && m.precision <= 9)) return 'map.precision: expected a whole number 0…9';
      return '';
    case 'pose':
      return ['x', 'y', 'z', 'yaw'].some((k) => m[k]) ? '' : 'map: a pose needs at least one of x, y, z, yaw';
    default:
      return `map.kind: unknown mapping kind '${m.kind}'`;
  }
}

/** What `map` makes of number `v` for `field` (BindingMap.map), for every kind but pose. */
export function mapValue(map, field, v, { twin = '', property = '', quality = 'good' } = {}) {
  switch (map.kind) {
    case 'linear': {
      let r = v * (map.scale ?? 1) + (map.offset ?? 0);
      if (map.min != null) r = Math.max(map.min, r);
      if (map.max != null) r = Math.min(map.max, r);
      return { type: 'number', value: r };
    }
    case 'rangeColor': {
      const stops = map.stops.map(([value, c]) => ({ value, color: parseColor(c) })), smooth = map.blend ?? true;
      if (!(v > stops[0].value)) return { type: 'color', value: stops[0].color };
      for (let k = 1; k < stops.length; k++) {
        if (v < stops[k].value) {
          if (!smooth) return { type: 'color', value: stops[k - 1].color };
          const t = (v - stops[k - 1].value) / (stops[k].value - stops[k - 1].value);
          return { type: 'color', value: blend(stops[k - 1].color, stops[k].color, t) };
        }
      }
      return { type: 'color', value: stops[stops.length - 1].color };
    }
    case 'threshold':
      return mapped(field, v >= map.above ? map.then : map.else);
    case 'format':
      return { type: 'text', value: fill(map.format, fixed(v, map.precision ?? 1), twin, property, quality === 'good' ? '' : quality) };
    default:
      return { type: 'number', value: v };
  }
}

/** What `binding` writes on its node for `twin` given the twin's properties now (as /api/twin gives them), as the
 * server's BindingEngine.apply does: { out, input, note } — `out` null when nothing is written; for a pose, `out` is
 * { type: 'pose', value: {x, y, z, yaw} } with the properties there are. */
export function evaluate(b, twin, properties) {
  const props = properties || {};
  const why = problem(b);
  if (why) return { out: null, input: '', note: why, invalid: true };
  if (b.field === 'pose') {
    const value = {}, shown = [];
    for (const k of ['x', 'y', 'z', 'yaw']) {
      const name = b.map[k];
      if (!name) continue;
      const n = props[name] ? numberOf(props[name].value) : null;
      if (n != null) { value[k] = n; shown.push(`${name} ${n}`); }
    }
    if (!shown.length) return { out: null, input: '', note: 'none of the pose properties has a value yet' };
    return { out: { type: 'pose', value }, input: shown.join(', '), note: '' };
  }
  const p = props[b.property];
  if (!p) return { out: null, input: '', note: `${b.property} has no value yet` };
  const input = `${b.property} = ${typeof p.value === 'number' ? p.value : JSON.stringify(p.value)}${p.unit ? ` ${p.unit}` : ''}`;
  const n = numberOf(p.value), q = p.quality || 'good', ctx = { twin, property: b.property };
  if (q !== 'good') {
    // Not good: colours turn grey and labels say so; other fields keep what they had.
    if (b.field === 'color') return { out: { type: 'color', value: STALE_COLOR }, input: `${input} (${q})`, note: `${q}: shown grey` };
    if (b.field === 'label') {
      const last = n == null ? null : mapValue(b.map, b.field, n, ctx);
      return { out: last && last.type === 'text' ? { type: 'text', value: `${last.value} (${q})` } : null, input: `${input} (${q})`, note: '' };
    }
    return { out: null, input: `${input} (${q})`, note: `${q}: the server leaves this field as it is` };
  }
  if (n == null) return { out: null, input, note: 'not a number: the server writes nothing' };
  return { out: mapValue(b.map, b.field, n, ctx), input, note: '' };
}

/** Whether twin id `s` matches `pattern` (Glob: `*` is any run of characters but `/`). */
export function globMatches(pattern, s) {
  const re = pattern.split('*').map((part) => part.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&')).join('[^/]*');
  return new RegExp(`^${re}$`).test(s);
}

/** The twins pattern for every machine like `twin`, in the demo plant's style: hall-a/line-01/press-01 →
 * *\/*\/press-*, hall-a/agv-01 → *\/agv-*. */
export function twinsPattern(twin) {
  const parts = twin.split('/');
  const last = parts.pop();
  return [...parts.map(() => '*'), /\d+$/.test(last) ? last.replace(/\d+$/, '*') : last].join('/');
}

/** The node template for `node` relative to `twin` ({twin}/temp), or null when the node is not the twin's. */
export function nodePattern(twin, node) {
  if (node === twin) return '{twin}';
  if (node.startsWith(`${twin}/`)) return `{twin}${node.slice(twin.length)}`;
  return null;
}

/** The bindings in `file` that write node `node` for `twin`, with their places in the file. */
export function bindingsOf(file, twin, node) {
  return (file?.bindings || []).map((b, index) => ({ b, index }))
    .filter(({ b }) => typeof b.twins === 'string' && typeof b.node === 'string' && globMatches(b.twins, twin) && b.node.split('{twin}').join(twin) === node);
}

/** The place of the binding `b` replaces in `file`: the last one writing the same node template and field that
 * applies to `twin` (the later of two bindings wins on the server); -1: `b` is new. */
export function replaces(file, b, twin) {
  const list = file?.bindings || [];
  for (let k = list.length - 1; k >= 0; k--) {
    const x = list[k];
    if (x && x.node === b.node && x.field === b.field && typeof x.twins === 'string' && globMatches(x.twins, twin)) return k;
  }
  return -1;
}

/** `file` with `b` in it (replacing, see `replaces`), as the text to save: one binding a line, like the plants'. */
export function withBinding(file, b, twin) {
  const bindings = [...(file?.bindings || [])];
  const k = replaces(file, b, twin);
  if (k >= 0) bindings[k] = b; else bindings.push(b);
  const head = JSON.stringify(file?.format ?? FORMAT);
  return { replaced: k, text: `{"format":${head},"bindings":[\n${bindings.map((x) => JSON.stringify(x)).join(',\n')}\n]}\n` };
}

/** A short text for a binding's mapping. */
export function describe(b) {
  const m = b.map || {};
  switch (m.kind) {
    case 'linear': return `linear ×${m.scale ?? 1} ${(m.offset ?? 0) < 0 ? '−' : '+'} ${Math.abs(m.offset ?? 0)}${m.min != null ? `, ≥ ${m.min}` : ''}${m.max != null ? `, ≤ ${m.max}` : ''}`;
    case 'rangeColor': return `colour stops ${(m.stops || []).map(([v, c]) => `${v} ${c}`).join(', ')}${m.blend === false ? '' : ' (blended)'}`;
    case 'threshold': return `≥ ${m.above} → ${JSON.stringify(m.then)}, else ${JSON.stringify(m.else)}`;
    case 'format': return `format "${m.format}" (${m.precision ?? 1} decimals)`;
    case 'pose': return `pose ${['x', 'y', 'z', 'yaw'].filter((k) => m[k]).map((k) => `${k}=${m[k]}`).join(' ')}`;
    default: return String(m.kind);
  }
}
