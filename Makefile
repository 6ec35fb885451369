# Benchmarks (bench/ is outside the test run; see scripts/bench.sh).
.PHONY: bench bench-quick

bench:
	bash scripts/bench.sh

bench-quick:
	bash scripts/bench.sh --quick
