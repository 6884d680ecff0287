"""Marketplace connectors: one sub-package per marketplace family, each classifying errors at the edge."""
