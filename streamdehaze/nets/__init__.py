"""Networks: pure torch, no I/O. See :mod:`streamdehaze.nets.registry` for names."""
