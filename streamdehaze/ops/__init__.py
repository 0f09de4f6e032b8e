"""Tensor operations shared by the models and the engine (padding, colour, guided filter)."""
