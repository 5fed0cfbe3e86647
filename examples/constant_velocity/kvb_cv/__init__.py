"""An example kvae-bench model package (see model.py and the README's "Benchmark your own
model")."""
