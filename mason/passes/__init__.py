"""Passes over the LLB IR and the pass manager. Imports only ``mason.ir``."""
