// CustomJS body of the dataset select: another dataset is another page (every query of the
// session reads another store), so the address changes and the browser loads it. The site is
// dropped: the other dataset may not have it.
const url = new URL(window.location.href);
url.searchParams.set("dataset", cb_obj.value);
url.searchParams.delete("site");
window.location.assign(url.toString());
