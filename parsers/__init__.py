"""Format decoders: one module or package per input format."""
