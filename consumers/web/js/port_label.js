// CustomJSTickFormatter; args: none (the y of port-less packets), label (its tick's text); tick.
// The fixed ticks carry major_label_overrides; this labels the ones port_ticks adds between them.
return tick === none ? label : String(Math.round(tick))
