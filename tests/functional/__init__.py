"""Functional tier: the Faust app in process, no broker (memory store, Faust test contexts)."""
