"""The Faust side of the worker: agents, tables and their acknowledgements.

Agents only move data: every decision is a plain function of ``app.core.pipeline`` (and
the other pure modules), called here with what Faust delivered.
"""
