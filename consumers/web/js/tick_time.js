// CustomJSTickFormatter body, after zoned_parts.js: the time axis's labels in the page's zone,
// as coarse as the span on screen allows (dates over days, minutes over hours, seconds below).
const span = ticks.length > 1 ? ticks[ticks.length - 1] - ticks[0] : 0
const p = parts(tick)
const hm = `${p.hour}:${p.minute}`
if (span >= 2 * 86400000) return hm === "00:00" ? `${p.month}-${p.day}` : `${p.month}-${p.day} ${hm}`
if (span >= 6 * 3600000) return hm === "00:00" ? `${p.month}-${p.day}` : hm
return span >= 600000 ? hm : `${hm}:${p.second}`
