"""Built-in providers. Each module has ``register(registry)``; SDKs are
imported lazily inside ``execute`` so importing these modules stays cheap."""
