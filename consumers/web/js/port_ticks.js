// CustomJS on the y range; args: ticker (a FixedTicker), fixed (the recognisable ports), range.
// Zoomed in so far that few of the fixed ports are in view (ports 21-25 holds only 22), the
// axis gets evenly spaced whole ports between them, so every view has labels to read by.
const lo = Math.min(range.start, range.end)
const hi = Math.max(range.start, range.end)
const inside = fixed.filter((t) => t >= lo && t <= hi)
if (inside.length >= 4) {
  if (ticker.ticks.length !== fixed.length) ticker.ticks = fixed
} else {
  const from = Math.max(1, Math.ceil(lo))
  const span = Math.max(1, Math.floor(hi) - from)
  // A step of 1, 2 or 5 times a power of ten that gives about six labels.
  const raw = span / 6
  const power = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1))))
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || 10 * power
  const extra = []
  for (let t = Math.ceil(from / step) * step; t <= hi; t += step) extra.push(t)
  ticker.ticks = Array.from(new Set([...fixed, ...extra])).sort((a, b) => a - b)
}
