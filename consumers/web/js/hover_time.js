// CustomJSHover body, after zoned_parts.js: a tooltip's time, to the millisecond, in the page's zone.
const p = parts(value)
return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}.${p.fractionalSecond} ${zone}`
