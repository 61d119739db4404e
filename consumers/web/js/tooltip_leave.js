// CustomJS body on the plot's "mouseleave", after tooltip_box.js: an unpinned tooltip goes with the mouse.
if (!box.pinned) box.hide()
