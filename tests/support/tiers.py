"""Which fixtures put a test in which tier (the hook in tests/conftest.py applies them).

Each tier has root fixtures that every test of the tier needs, directly or
through the fixtures it uses: ``system`` needs ``kafka_bootstrap``, a page's
``driver`` needs ``chromium``, the firewall lab needs ``netns``. A test is
marked from its transitive fixture names, so the markers follow the code.
"""

from __future__ import annotations

# The fixtures every test of a tier requests, at the root of its fixture tree.
TIER_FIXTURES: dict[str, tuple[str, ...]] = {
    "kafka_bootstrap": ("kafka",),
    "own_broker": ("kafka",),
    "spare_broker": ("kafka",),
    "kafka_jars": ("kafka",),
    "mirror_jars": ("kafka", "mirror"),
    "chromium": ("browser",),
    "netns": ("netns",),
}
