"""Offline training package: data preparation, the refiner network, training, export. Never imported by the runtime."""
