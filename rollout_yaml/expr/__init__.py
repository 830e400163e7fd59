"""Expressions: JMESPath reads JSON, sandboxed Jinja writes values, JSON Schema checks them."""
