"""Read-side SQL: parameterised queries over the raw-event tables (the API never builds SQL from input)."""
