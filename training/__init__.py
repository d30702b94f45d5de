"""Headless training from YAML recipes (filled in by the training issue)."""
