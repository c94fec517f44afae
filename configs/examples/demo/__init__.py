"""A tiny package for dtf's example suites: real code, real tests, real benchmarks."""
