// CustomJS body on the document's "document_ready"; args: returned (the source the server reads a
// history entry from), dataset (the dataset select), prev, next (the day buttons), plot, finder
// (the filter box "/" focuses), labels (model name -> accessible name).
// Everything here belongs to the page as a whole rather than to one widget: history, keys, labels.
const doc = plot.document
const click = (model) => Bokeh.index.find_one(model)?.button_el?.click()

// Back and Forward: the server shows the entry's view (another dataset is another page).
let returns = 0
window.addEventListener("popstate", () => {
  const args = new URLSearchParams(window.location.search)
  if ((args.get("dataset") || "main") !== (dataset.value || "main")) {
    window.location.reload()
    return
  }
  returns += 1
  returned.data = {query: [window.location.search], n: [returns]}
})

// A page restored from the back/forward cache has lost its server session: load it afresh.
window.addEventListener("pageshow", (event) => {
  if (event.persisted) {
    window.sessionStorage.setItem("fireplot-restored", String(Date.now()))
    window.location.reload()
  }
})

// Keys, unless the operator is typing: Left/Right the previous/next day, r the whole view, / the filter.
window.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return
  const target = event.composedPath()[0]
  if (target instanceof HTMLElement &&
      (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName))) return
  if (event.key === "ArrowLeft") click(prev)
  else if (event.key === "ArrowRight") click(next)
  else if (event.key === "r") Bokeh.index.find_one(plot)?.reset()
  else if (event.key === "/") Bokeh.index.find_one(finder)?.input_el?.focus()
  else return
  event.preventDefault()
})

// Accessible names: each labelled model's focusable elements without a name of their own, down
// through the shadow roots of its parts (a table's scrolling panes, the plot's event layer).
const focusable = "input, select, button, textarea, [tabindex]"
const name_in = (root, label) => {
  for (const el of root.querySelectorAll("*")) {
    if (el.matches(focusable) && !el.hasAttribute("aria-label") && !(el.labels?.length) &&
        !el.textContent.trim()) el.setAttribute("aria-label", label)
    if (el.shadowRoot) name_in(el.shadowRoot, label)
  }
}
const name_them = () => {
  for (const [name, label] of Object.entries(labels)) {
    const model = doc.get_model_by_name(name)
    const root = model == null ? null : Bokeh.index.find_one(model)?.shadow_el
    if (root != null) name_in(root, label)
  }
}
name_them()
// Widgets render some parts later (a calendar, a table's rows, the source panel when it opens).
setInterval(name_them, 1000)
