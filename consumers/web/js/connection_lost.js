// CustomJS body on the document's "connection_lost": the server is gone (stopped, restarted, the
// network dropped), so nothing the operator does reaches it any more. Say so, visibly, instead of
// a page that silently ignores every click.
if (document.getElementById("fireplot-disconnected")) return
const banner = document.createElement("div")
banner.id = "fireplot-disconnected"
banner.setAttribute("role", "alert")
banner.textContent = "Connection to the fireplot server lost: the page no longer updates. Reload to reconnect. "
const again = document.createElement("button")
again.textContent = "reload"
again.addEventListener("click", () => window.location.reload())
banner.appendChild(again)
Object.assign(banner.style, {
  position: "fixed", top: "0", left: "0", right: "0", zIndex: "10000", padding: "10px 16px",
  background: "#7a0000", color: "#ffffff", font: "bold 15px sans-serif", textAlign: "center",
})
document.body.appendChild(banner)
