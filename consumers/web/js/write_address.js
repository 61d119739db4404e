// CustomJS body on the address source (columns query, push; one row): the server writes the
// view's address arguments after every change. push makes a new history entry (Back returns to
// the view before), otherwise the current entry is replaced; an address the browser is at
// already (the server re-showing an entry Back returned to) changes nothing.
const search = cb_obj.data.query[0]
if (!search) return
const url = new URL(window.location.href)
url.search = search
if (url.href === window.location.href) return
if (cb_obj.data.push[0]) window.history.pushState(null, "", url)
else window.history.replaceState(null, "", url)
