// Run once in the page's <head>, after BokehJS loaded and before the document's views are built.
// The day plot asks for WebGL. Where the browser's WebGL is software-rendered (SwiftShader,
// llvmpipe: no GPU, or a blocked one), it draws every marker as its own draw call, about 15 us
// each: a day of 150k dots took ~2.5 s per paint there, where canvas 2D takes under half of it.
// So on such a browser the plot draws on canvas; with a GPU it keeps WebGL.
(() => {
  const gl = document.createElement("canvas").getContext("webgl")
  if (gl == null) return  // no WebGL at all: BokehJS falls back to canvas on its own
  const info = gl.getExtension("WEBGL_debug_renderer_info")
  const renderer = String(gl.getParameter(info != null ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER))
  gl.getExtension("WEBGL_lose_context")?.loseContext()
  if (!/swiftshader|llvmpipe|softpipe|software/i.test(renderer)) return
  window.fireplotSoftwareGL = renderer
  const Plot = Bokeh.Models.get("Plot")
  const initialize = Plot.prototype.initialize
  Plot.prototype.initialize = function () {
    initialize.call(this)
    // Silent: only this browser's views read it; the server's model keeps asking for WebGL.
    if (this.output_backend === "webgl") this.setv({output_backend: "canvas"}, {silent: true})
  }
})()
