"""Lark grammars (data files), loaded by the frontends."""
