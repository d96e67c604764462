"""Pure builders: DatabaseSpec in, Kubernetes objects (plain dicts) out. No I/O here."""
