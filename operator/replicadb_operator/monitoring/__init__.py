"""The per-database monitor: probe every instance, keep roles labelled, write the status."""
