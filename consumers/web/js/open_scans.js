// CustomJS on the scans button's `active`; args: drawer, scans (its scans part), source (the
// source panel), button. Pressed: the drawer opens on the scans; released: it closes.
if (button.active) {
  source.visible = false
  scans.visible = true
  drawer.visible = true
} else if (scans.visible) {
  drawer.visible = false
}
