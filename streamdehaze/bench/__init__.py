"""``streamdehaze bench``: throughput measurements, their timing loops and the FLOP counter."""
