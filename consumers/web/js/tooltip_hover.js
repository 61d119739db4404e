// CustomJS body of the hover tool, after tooltip_box.js; args: events (the dots), scans, plot,
// renderers (the dots' one; hidden, it shows nothing), zone, limit (lines at most), radius (px).
// One line per dot under the cursor, nearest first, in the original's spirit:
//   14:03:07 203.0.113.7 (AS64500 Example Org, DE) -> TCP/22 (ssh) drop alpha/fw1 "prefix"  [scan vertical 1a2b]
// then "+N more here". Bokeh calls this once per renderer for one mouse position: the first call
// does the work for all of them.
const {sx, sy} = cb_data.geometry
const key = `${sx},${sy}`
if (box.pinned || key === box.last) return
box.last = key
const view = Bokeh.index.find_one(plot)
if (view == null || !isFinite(sx + sy)) { box.show([], 0, 0); return }
const {x_scale, y_scale} = view.frame
if (!renderers.some((r) => r.visible)) { box.show([], 0, 0); return }
const d = events.data
const n = d.ts == null ? 0 : d.ts.length
// The dots in time order, made once per view's data rather than on every mouse move: a move looks
// only at the dots within the radius of the cursor's time (a binary search), not at all of them.
if (box.index == null || box.index.ts !== d.ts || box.index.n !== n) {
  const order = new Uint32Array(n)
  for (let i = 0; i < n; i++) order[i] = i
  order.sort((a, b) => d.ts[a] - d.ts[b])
  const sorted = new Float64Array(n)
  for (let k = 0; k < n; k++) sorted[k] = d.ts[order[k]]
  box.index = {ts: d.ts, n, order, sorted}
}
const {order, sorted} = box.index
const first = (t) => {
  let lo = 0, hi = n
  while (lo < hi) { const mid = (lo + hi) >>> 1; if (sorted[mid] < t) lo = mid + 1; else hi = mid }
  return lo
}
const [t0, t1] = [x_scale.invert(sx - radius), x_scale.invert(sx + radius)]
const hits = []
for (let k = first(Math.min(t0, t1)); k < n && sorted[k] <= Math.max(t0, t1); k++) {
  const i = order[k]
  const dx = x_scale.compute(d.ts[i]) - sx
  if (dx > radius || dx < -radius) continue
  const dy = y_scale.compute(d.y[i]) - sy
  const dist = dx * dx + dy * dy
  if (dist <= radius * radius) hits.push([dist, i])
}
hits.sort((a, b) => a[0] - b[0])
const clock = new Intl.DateTimeFormat("en-GB", {
  timeZone: zone, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
})
const s = scans.data
const scan_of = (i) => {
  for (let k = 0; k < (s.scan_id ?? []).length; k++) {
    if (d.ts[i] < s.left[k] || d.ts[i] > s.right[k] || d.y[i] < s.bottom[k] || d.y[i] > s.top[k]) continue
    if (d.src_ip != null && !String(s.sources[k]).split(", ").includes(d.src_ip[i])) continue
    return ` [scan ${s.kind[k]} ${s.scan_id[k]}]`
  }
  return ""
}
const line = (i) => {
  const service = d.service?.[i] ? ` (${d.service[i]})` : ""
  const target = `${d.proto[i]}/${d.port[i]}${service}`
  const time = clock.format(new Date(d.ts[i]))
  if (d.src_ip == null) {
    // A bin of many events (a busy day, a range): what it counts.
    return `${time} ${target}: ${d.events[i]} events from ${d.sources[i]} sources${scan_of(i)}`
  }
  const where = [d.site[i], d.host[i]].filter(Boolean).join("/")
  const prefix = d.prefix[i] ? ` "${d.prefix[i]}"` : ""
  const count = d.count[i] > 1 ? ` x${d.count[i]}` : ""
  // Who the source is ([enrich]: whois.py), when known: (AS64500 Example Org, DE; scanner label).
  const who = [[d.asn?.[i], d.as_org?.[i]].filter(Boolean).join(" "), d.country?.[i]].filter(Boolean).join(", ")
  const label = d.scanner?.[i] ? `scanner ${d.scanner[i]}` : ""
  const about = [who, label].filter(Boolean).join("; ")
  const source = about ? `${d.src_ip[i]} (${about})` : d.src_ip[i]
  return `${time} ${source} \u2192 ${target} ${d.action[i]}${count} ${where}${prefix}${scan_of(i)}`
}
const lines = hits.slice(0, limit).map(([, i]) => line(i))
if (hits.length > limit) lines.push(`+${hits.length - limit} more here`)
const rect = view.canvas_view.el.getBoundingClientRect()
box.show(lines, rect.left + sx, rect.top + sy)
