"""Who a source is, in the page in Chromium: ASN, organisation, country and scanner label.

A real store, .mmdb files written by tests/support/mmdb.py and a scanner list;
the web server in its own process configured through FIREPLOT_ENRICH__*
variables as an operator would. Each source's dot is hovered with the real
mouse and its tooltip must carry exactly the labels written into the files;
a click opens its panel, which names them too. A database's organisation is
text from a file: a formula-like name is shown as written. A server without
databases says in the panel that the columns are off.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from pipeline.store import OffsetRange, Store
from tests.support import browser, mmdb
from tests.support.browser import (
    Chromium,
    hover,
    injected,
    open_page,
    panel_for,
    point_of,
    shown_text,
    tap_dot,
)
from tests.support.events import row, table

DAY = dt.date(2026, 11, 27)
SOURCES = list(mmdb.EXPECTED)
LABELS = {"198.51.100.7": "example-research", "2001:db8:2:0:0:0:0:a": "example-research"}
SCANNERS = "198.51.100.0/25 example-research\n2001:db8:2::/48 example-research\n"


def _about(src: str) -> str:
    """What the tooltip says after the address, from what the files hold."""
    asn, org, cc = mmdb.EXPECTED[src]
    who = ", ".join(p for p in (f"AS{asn} {org}" if asn else "", cc) if p)
    parts = [p for p in (who, f"scanner {LABELS[src]}" if src in LABELS else "") if p]
    return f"{src} ({'; '.join(parts)})" if parts else f"{src} \u2192"


@dataclass
class Site:
    url: str
    plain_url: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("whois")
    store = Store(root / "store")
    t0 = dt.datetime.combine(DAY, dt.time(6), tzinfo=dt.UTC)
    rows = [
        row(
            t0 + dt.timedelta(hours=2 * i),
            i,
            src_ip=src,
            ip_version=6 if ":" in src else 4,
            dst_port=1000 + i,
        )
        for i, src in enumerate(SOURCES)
    ]
    store.write_flush(OffsetRange("fireplot.events", 0, 0, len(rows) - 1), table(rows))
    scanners = root / "scanners.txt"
    scanners.write_text(SCANNERS)
    dbs = [mmdb.asn_db(root / "asn.mmdb"), mmdb.country_db(root / "country.mmdb")]
    env = {
        "FIREPLOT_ENRICH__DATABASES": ",".join(str(p) for p in dbs),
        "FIREPLOT_ENRICH__SCANNER_NETWORKS_PATH": str(scanners),
    }
    with (
        browser.web_server(store.root, root / "server.log", env) as url,
        browser.web_server(store.root, root / "plain.log") as plain_url,
    ):
        yield Site(url, plain_url)


@pytest.fixture(scope="module")
def driver(chromium: Chromium) -> Iterator[Any]:
    with chromium() as d:
        yield d


def test_tooltips_carry_exact_asn_organisation_country_and_label(driver: Any, site: Site) -> None:
    data = open_page(driver, f"{site.url}?date={DAY.isoformat()}")
    assert sorted(data["src_ip"]) == sorted(SOURCES)
    for src in SOURCES:
        tooltip = hover(driver, *point_of(driver, src_ip=src))
        assert _about(src) in tooltip, (src, tooltip)
    # The formula-like organisation is shown as written, and nothing from the files became markup.
    assert injected(driver) == []


@pytest.mark.parametrize("src", ["198.51.100.7", "2001:db8:1::5", "192.0.2.1"])
def test_source_panel_names_asn_organisation_country_and_label(driver: Any, site: Site, src: str) -> None:
    data = open_page(driver, f"{site.url}?date={DAY.isoformat()}")
    port = data["port"][data["src_ip"].index(src)]
    tap_dot(driver, src, port)
    panel_for(driver, src)
    summary = shown_text(driver, "source-summary")
    asn, org, cc = mmdb.EXPECTED[src]
    if asn is None:
        assert "ASN unknown \u00b7 country unknown" in summary, summary
    else:
        assert f"AS{asn} {org} \u00b7 country {cc}" in summary, summary
    assert ("known scanner: example-research" in summary) == (src in LABELS), summary


def test_without_a_database_the_panel_says_the_columns_are_off(driver: Any, site: Site) -> None:
    data = open_page(driver, f"{site.plain_url}?date={DAY.isoformat()}")
    src = "198.51.100.7"
    tooltip = hover(driver, *point_of(driver, src_ip=src))
    assert f"{src} \u2192" in tooltip, tooltip
    tap_dot(driver, src, data["port"][data["src_ip"].index(src)])
    panel_for(driver, src)
    assert "ASN, organisation, country: off (no [enrich] databases configured)" in shown_text(
        driver, "source-summary"
    )


def _shown_sources(driver: Any, url: str) -> list[str]:
    data = open_page(driver, url)
    return sorted(data.get("src_ip", []))


@pytest.mark.parametrize(
    ("who", "kept"),
    [
        ("AS64500", ["198.51.100.7", "2001:db8:2:0:0:0:0:a"]),
        ("as64501, AS64503", ["198.51.100.200", "2001:db8:1::5"]),
        ("DE", ["198.51.100.7", "2001:db8:2:0:0:0:0:a"]),
        ("jp,CH", ["203.0.113.9", "2001:db8:1::5"]),
        ("scanner", ["198.51.100.7", "2001:db8:2:0:0:0:0:a"]),
        ("!scanner", ["192.0.2.1", "198.51.100.200", "2001:db8:1::5", "2001:db8:9::1", "203.0.113.9"]),
        ("DE, !example-research", []),
        ("AS64500, CH", []),
        ("!AS64500, !JP", ["192.0.2.1", "198.51.100.200", "2001:db8:1::5", "2001:db8:9::1"]),
    ],
)
def test_who_filter_keeps_exactly_the_sources_of_asn_country_and_label(
    driver: Any, site: Site, who: str, kept: list[str]
) -> None:
    from urllib.parse import quote

    shown = _shown_sources(driver, f"{site.url}?date={DAY.isoformat()}&who={quote(who)}")
    assert shown == sorted(kept)
    assert driver.execute_script("return Bokeh.documents[0].get_model_by_name('who').value") == who.strip()


def test_who_filter_without_a_database_is_refused_with_the_reason(driver: Any, site: Site) -> None:
    open_page(driver, f"{site.plain_url}?date={DAY.isoformat()}&who=AS64500")
    error = browser.wait_for("the filter error", lambda: shown_text(driver, "filter-error") or None)
    assert "ASN and country are off (no [enrich] databases configured)" in error
    placeholder = driver.execute_script("return Bokeh.documents[0].get_model_by_name('who').placeholder")
    assert "off" in placeholder


def _expected_top() -> list[tuple[str, str, str, int]]:
    """(by, who, network, events) rows the drawer's table must show: one event per source here."""
    rows = []
    for src in sorted(SOURCES):
        asn, org, cc = mmdb.EXPECTED[src]
        about = ", ".join(p for p in (f"AS{asn} {org}" if asn else "", cc, LABELS.get(src, "")) if p)
        rows.append(("source", src, about, 1))
    per_asn: dict[int | None, int] = {}
    per_cc: dict[str, int] = {}
    orgs = {}
    for asn, org, cc in mmdb.EXPECTED.values():
        per_asn[asn] = per_asn.get(asn, 0) + 1
        per_cc[cc] = per_cc.get(cc, 0) + 1
        orgs[asn] = org
    for asn, n in per_asn.items():
        rows.append(("ASN", f"AS{asn}" if asn else "unknown", orgs[asn] if asn else "", n))
    for cc, n in per_cc.items():
        rows.append(("country", cc or "unknown", "", n))
    return rows


def test_drawer_lists_the_top_sources_asns_and_countries_of_the_view(driver: Any, site: Site) -> None:
    from tests.support.browser import click, model_data, wait_for

    open_page(driver, f"{site.url}?date={DAY.isoformat()}")
    click(driver, "scans-button")
    data = wait_for("the top talkers", lambda: model_data(driver, "top-talkers") or None)
    data = wait_for("the top talkers", lambda: (d := model_data(driver, "top-talkers"))["kind"] and d)
    got = list(zip(data["kind"], data["key"], data["about"], data["events"], strict=True))
    want = _expected_top()
    # At most 5 a kind, most events first: sources all tie at 1 (sorted by key), ASNs and countries by count.
    assert sorted(g for g in got if g[0] == "source") == sorted(w for w in want if w[0] == "source")[:5]
    for kind in ("ASN", "country"):
        mine = [g for g in got if g[0] == kind]
        assert len(mine) == min(5, len([w for w in want if w[0] == kind]))
        assert set(mine) <= {w for w in want if w[0] == kind}
        assert [g[3] for g in mine] == sorted((g[3] for g in mine), reverse=True)
    assert "top talkers of this view" in shown_text(driver, "top-note")
    assert injected(driver) == []


def test_drawer_top_table_without_a_database_ranks_sources_and_says_off(driver: Any, site: Site) -> None:
    from tests.support.browser import click, model_data, wait_for

    open_page(driver, f"{site.plain_url}?date={DAY.isoformat()}")
    click(driver, "scans-button")
    data = wait_for("the top talkers", lambda: (d := model_data(driver, "top-talkers"))["kind"] and d)
    assert set(data["kind"]) == {"source"} and set(data["about"]) == {""}
    assert "ASN and country: off" in shown_text(driver, "top-note")
