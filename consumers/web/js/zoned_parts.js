// Prefix of tick_time.js. Times are kept in UTC milliseconds everywhere; only
// their labels are in the page's zone, formatted by the browser (Intl knows every IANA zone and
// its DST). Args: zone, an IANA zone name.
const parts = (ms) => Object.fromEntries(new Intl.DateTimeFormat("en-GB", {
  timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
  minute: "2-digit", second: "2-digit", fractionalSecondDigits: 3, hourCycle: "h23",
}).formatToParts(new Date(ms)).map((p) => [p.type, p.value]))
