// CustomJS body on the plot's "tap", after tooltip_box.js: a click pins the tooltip of the dots
// under the cursor (it stays while the mouse moves on) until Escape or another click; a click
// where there is no dot unpins it.
if (box.lines.length && !box.pinned) {
  box.pinned = true
  box.el.style.borderColor = "#ffd24d"
  box.el.style.pointerEvents = "auto"
} else {
  box.hide()
}
