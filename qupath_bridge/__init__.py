"""QuPath bridge: QuPath GeoJSON (0.2-0.7) read and write, objects <-> label images."""
