// CustomJS on the scans button's `active`; args: drawer, scans (its scans part), source (the
// source panel), button, parts (the drawer's children once filled: its views are built on first
// open, see drawer.Drawer). Pressed: the drawer opens on the scans; released: it closes.
if (button.active) {
  if (drawer.children.length < parts.length) drawer.children = parts
  source.visible = false
  scans.visible = true
  drawer.visible = true
} else if (scans.visible) {
  drawer.visible = false
}
