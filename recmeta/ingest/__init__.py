"""Readers for interaction logs and metadata, and the ingest pipeline into the store."""
