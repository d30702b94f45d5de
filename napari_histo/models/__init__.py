"""Model specs, registry and the inference engine (filled in by the inference issue)."""
