"""The core every stage shares: event model, parsers, wire format, store, worker."""
