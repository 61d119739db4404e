// CustomJS body; args: key (the URL argument), fallback (the value the page shows without it).
// Written into the page's address bar so that a shown day can be bookmarked; a value equal to
// the fallback is left out, so the address stays as short as the view allows.
const url = new URL(window.location.href)
const value = String(cb_obj.value)
if (value && value !== String(fallback)) url.searchParams.set(key, value)
else url.searchParams.delete(key)
window.history.replaceState(null, "", url)
