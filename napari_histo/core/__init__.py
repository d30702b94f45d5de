"""Pure array functions: tissue detection, tiling, stain normalisation, stitching."""
