"""HTTP: building requests from compiled templates, applying auth, reading responses."""
