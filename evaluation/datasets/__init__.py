"""Loaders for the public benchmark data in ../shared/data (read in place, never copied)."""
