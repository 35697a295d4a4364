"""HTTP handlers: thin shells over the hub, the store and the auth."""
