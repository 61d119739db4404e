// CustomJS on the drawer's close button; args: drawer, scans, source, button, parts (see open_scans.js).
drawer.visible = false
button.active = false
