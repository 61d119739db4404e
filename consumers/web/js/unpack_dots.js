// CustomJS body; args: packed (the one-row source a view travels in, see transfer.py) and events
// (the plot's source). A view's dots travel dictionary-coded and are expanded here into the plot's
// source as plain columns, exactly as if the server had sent them; sync: false, as Bokeh does for
// a change from the server, so they do not travel back. The server's copy of that source stays
// empty. An append (a live poll's new dots, `append` holding the draw order, bottom series first)
// is added to the rows there and all of them sorted, stably, by their series' place in that
// order: the plot draws rows in order, so the rarest series ends on top (transfer.py repeats the
// sort on the columns the server keeps).
const w = packed.data
if (w.generation == null || w.generation.length === 0) return
// Once per generation: the document_ready call and the change may both see the same one.
if (events.__fp_generation === w.generation[0]) return
events.__fp_generation = w.generation[0]
const out = {}
for (const [name, value] of Object.entries(w)) {
  if (name === "generation" || name === "append" || name.endsWith(":dict")) continue
  const dict = w[name + ":dict"]
  out[name] = dict == null ? value[0] : Array.from(value[0], (i) => dict[0][i])
}
if (w.append != null) {
  const order = w.append[0]
  const old = events.data
  const joined = {}
  for (const [name, add] of Object.entries(out)) {
    const before = old[name] ?? []
    if (ArrayBuffer.isView(before) && ArrayBuffer.isView(add) && before.constructor === add.constructor) {
      const both = new before.constructor(before.length + add.length)
      both.set(before)
      both.set(add, before.length)
      joined[name] = both
    } else {
      joined[name] = [...Array.from(before), ...Array.from(add)]
    }
  }
  const series = joined.series
  const n = series.length
  const rank = new Map(order.map((s, i) => [s, i]))
  const ranks = new Uint8Array(n)
  const starts = new Uint32Array(order.length + 2)
  for (let i = 0; i < n; i++) {
    ranks[i] = rank.get(series[i]) ?? order.length
    starts[ranks[i] + 1]++
  }
  for (let r = 1; r < starts.length; r++) starts[r] += starts[r - 1]
  const perm = new Uint32Array(n)
  for (let i = 0; i < n; i++) perm[starts[ranks[i]]++] = i
  for (const [name, values] of Object.entries(joined)) {
    const sorted = ArrayBuffer.isView(values) ? new values.constructor(n) : new Array(n)
    for (let k = 0; k < n; k++) sorted[k] = values[perm[k]]
    out[name] = sorted
  }
}
events.setv({data: out}, {sync: false, check_eq: false})
