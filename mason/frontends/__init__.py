"""Frontends: build languages parsed to typed trees and lowered to LLB. Imports only ``mason.ir``."""
