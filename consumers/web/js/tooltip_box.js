// Prefix of tooltip_hover.js and tooltip_tap.js: the page's one tooltip, an element of its own
// (not Bokeh's, which lists every dot under the cursor in full). Every text goes in with
// textContent: prefixes, hosts and addresses come from attackers and stay inert.
const box = window.fireplotTooltip ??= (() => {
  const el = document.createElement("div")
  el.className = "fireplot-tooltip"
  el.setAttribute("role", "tooltip")
  Object.assign(el.style, {
    position: "fixed", zIndex: "9000", display: "none", pointerEvents: "none", maxWidth: "70vw",
    padding: "4px 8px", background: "#1e1e1e", color: "#f0f0f0", border: "1px solid #888",
    font: "12px monospace", whiteSpace: "nowrap", overflow: "hidden",
  })
  document.body.appendChild(el)
  const self = {
    el, pinned: false, lines: [], last: "", index: null,
    show(lines, cx, cy) {
      self.lines = lines
      el.replaceChildren(...lines.map((text) => {
        const line = document.createElement("div")
        line.className = "fireplot-tooltip-line"
        line.textContent = text
        return line
      }))
      el.style.display = lines.length ? "block" : "none"
      el.style.borderColor = self.pinned ? "#ffd24d" : "#888"
      if (!lines.length) return
      const w = el.offsetWidth, h = el.offsetHeight
      el.style.left = `${Math.max(0, Math.min(cx + 14, window.innerWidth - w - 4))}px`
      el.style.top = `${Math.max(0, cy + 14 + h > window.innerHeight ? cy - h - 8 : cy + 14)}px`
    },
    hide() {
      self.pinned = false
      self.lines = []
      self.last = ""
      el.style.display = "none"
    },
  }
  window.addEventListener("keydown", (event) => { if (event.key === "Escape") self.hide() })
  return self
})()
