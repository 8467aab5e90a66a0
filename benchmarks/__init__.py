"""Speed benchmarks: genlab against its peers, measured in the same process on the same data."""
