// CustomJS body on the CSV source's data: the server fills it with one CSV (columns csv and
// name, one row); the browser saves it as a file.
const csv = cb_obj.data.csv[0]
if (!csv) return
const blob = new Blob([csv], {type: "text/csv;charset=utf-8"})
const a = document.createElement("a")
a.href = URL.createObjectURL(blob)
a.download = cb_obj.data.name[0]
document.body.appendChild(a)
a.click()
a.remove()
setTimeout(() => URL.revokeObjectURL(a.href), 60000)
