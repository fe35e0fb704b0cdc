"""On-device inference: the LiteRT runtime and the models that run on it."""
