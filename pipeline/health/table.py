"""Health as text for terminals and the page: compact ages and the `fireplot health` table."""

from __future__ import annotations

import datetime as dt

from pipeline.health.report import HealthReport


def duration_text(seconds: float | None) -> str:
    """A compact age for tables (CLI and web): 45s, 3m05s, 2h10m, 1d04h; '-' for none."""
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 172800:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def table_text(report: HealthReport, now: dt.datetime | None = None) -> str:
    """A fixed-width table for terminals; site names are printed with control characters escaped."""
    data = report.as_dict(now)
    header = ("SITE", "LAST EVENT (UTC)", "AGE", "ARRIVED", "USUAL GAP", "EV/MIN", "REJECTS S/W", "STATUS")
    rows = [header]
    for s in data["sites"]:
        rows.append(
            (
                s["site"].encode("unicode_escape").decode("ascii"),
                (s["last_event"] or "-").replace("T", " ").replace("Z", "")[:19],
                duration_text(s["last_event_age_s"]),
                duration_text(s["last_arrival_age_s"]),
                duration_text(s["usual_gap_s"]),
                f"{s['events_per_min']:.1f}",
                f"{s['rejects_shipper']}/{s['rejects_worker']}",
                "SILENT" if s["silent"] else "ok",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if not data["sites"]:
        lines.append("(no sites in the store yet)")
    for topic, n in data["consumer_lag"].items():
        lines.append(f"consumer lag {topic}: {n} records")
    for key in ("consumer_lag_error", "rejects_error"):
        if data[key]:
            lines.append(str(data[key]))
    if data["rejects_unknown_site"]:
        lines.append(f"rejects without a known site: {data['rejects_unknown_site']}")
    return "\n".join(lines) + "\n"
