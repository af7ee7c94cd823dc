"""The `surgseg` command line and the YAML graph runtime on Holoscan."""
