"""Project files → validated, immutable models, with file:line:col diagnostics."""
