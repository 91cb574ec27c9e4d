"""Market-cap history collector internals; scripts import them through ``common``."""
