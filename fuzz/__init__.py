"""A small fuzzing harness: targets (fuzz/targets/) run on mutated inputs in a worker process under a
memory limit, watched for the time each input takes; python -m fuzz --help, and fuzz/README.md."""
