"""tpflax's implementation; the public names are re-exported by ``tpflax/__init__.py``."""
