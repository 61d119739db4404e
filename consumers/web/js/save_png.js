// CustomJS body of the PNG button; args: tool, the toolbar's SaveTool. One export path (Bokeh
// composes the canvas layers, WebGL dots included, exactly as on screen), two ways to start it.
tool.do.emit("save")
