"""Holoscan operators: thin adapters from ports and parameters to `surgseg.engines`. One operator per file."""

from surgseg.operators.holoscan_loader import prepare_holoscan

prepare_holoscan()
