"""recmeta: cold-start recommendation by meta-learning over a SQL interaction store."""

__version__ = "0.1.0"
