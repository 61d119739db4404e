// CustomJS body on the scans table's selection; args: scans (its source), plot, lo and hi (the
// port axis's bounds). A row zooms the plot to that scan, with a margin around it.
const i = cb_obj.indices[0]
if (i == null) return
const d = scans.data
const pad = Math.max((d.right[i] - d.left[i]) * 0.1, 30000)
plot.x_range.setv({start: d.left[i] - pad, end: d.right[i] + pad})
plot.y_range.setv({start: Math.max(d.bottom[i] * 0.8, lo), end: Math.min(d.top[i] * 1.25, hi)})
