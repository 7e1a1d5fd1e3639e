"""Reusable studio widgets: one file each."""
