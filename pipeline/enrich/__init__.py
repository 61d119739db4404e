"""Read-time enrichment: labels and names added to events as they are read, never stored.

- :mod:`.services`: IANA service names of destination ports;
- :mod:`.geo`: ASN, AS organisation and country from ``.mmdb`` databases;
- :mod:`.scanners`: the operator's list of known scanner networks;
- :mod:`.enricher`: :class:`Enricher`, all of them per ``[enrich]``, the one
  thing readers call.
"""

from pipeline.enrich.enricher import SOURCE_COLUMNS, Enricher, shared_enricher
from pipeline.enrich.services import SERVICE_PROTOCOLS, service_names, services_table

__all__ = [
    "SERVICE_PROTOCOLS",
    "SOURCE_COLUMNS",
    "Enricher",
    "service_names",
    "services_table",
    "shared_enricher",
]
