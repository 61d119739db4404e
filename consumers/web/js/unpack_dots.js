// CustomJS body; args: packed (the one-row source a view travels in, see transfer.py) and events
// (the plot's source). A view's dots travel dictionary-coded and are expanded here into the plot's
// source as plain columns, exactly as if the server had sent them; sync: false, as Bokeh does for
// a change from the server, so they do not travel back. The server's copy of that source keeps
// only what it streamed since.
const w = packed.data
if (w.generation == null || w.generation.length === 0) return
const out = {}
for (const [name, value] of Object.entries(w)) {
  if (name === "generation" || name.endsWith(":dict")) continue
  const dict = w[name + ":dict"]
  out[name] = dict == null ? value[0] : Array.from(value[0], (i) => dict[0][i])
}
events.setv({data: out}, {sync: false, check_eq: false})
