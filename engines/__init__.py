"""Pure compute: arrays in, arrays out. No Holoscan import anywhere below this package."""
