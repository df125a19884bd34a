"""Built-in backends. Each module is a plugin registered through the
`bigram.backends` entry-point group, exactly as a third-party one would be."""
