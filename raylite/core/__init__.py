"""The runtime behind raylite's core API (see ``raylite.core._api`` for the seam)."""
