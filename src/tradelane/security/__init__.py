"""Secrets: API token hashing and credential encryption."""
