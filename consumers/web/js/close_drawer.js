// CustomJS on the drawer's close button; args: drawer, scans, source, button.
drawer.visible = false
button.active = false
