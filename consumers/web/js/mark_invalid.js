// CustomJS body on a filter box's css_classes: the server marks a box it cannot understand with
// the class "invalid" (drawn red by its stylesheet); assistive technology is told the same.
const view = Bokeh.index.find_one(cb_obj)
if (view != null && view.input_el != null) {
  view.input_el.setAttribute("aria-invalid", cb_obj.css_classes.includes("invalid") ? "true" : "false")
}
