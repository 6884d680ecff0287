"""Mirakl seller (shop) API connector: HTTP client, pure payload mappings and rate-limit guidance."""
