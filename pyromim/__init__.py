"""pyromim: the Mutual Information Machine (MIM) for Pyro."""

__all__: list[str] = []
__version__ = "0.1.0"
