# Entry points; the scripts in scripts/ do the work (see README.md).
.PHONY: demo test test-majors setup install cluster-start cluster-stop unit lint e2e dbt bench-dbt bench-refresh bench-refresh-10m bench-refresh-smoke bench-refresh-baseline bench-tpch bench-deployment bench-deployment-smoke bench-parallel bench-parallel-smoke bench-lagging test-citus bench-citus

demo:          ## set up, build (release), run the example end to end
	scripts/demo.sh
test:          ## set up, run every test tier
	scripts/test.sh
test-majors:   ## PostgreSQL 18 and 16 in full: every end-to-end test and the dbt 1.11 flow on each (make test runs a smoke subset)
	scripts/test_major.sh 18 && scripts/test_major.sh 16
test-citus:    ## Citus 14.0.1 (shared source tarball) on PostgreSQL 18: a coordinator and two workers, tests/citus
	scripts/test_citus.sh
setup:
	scripts/setup.sh
install:
	scripts/install.sh
cluster-start:
	scripts/cluster.sh start
cluster-stop:
	scripts/cluster.sh stop
lint:
	cargo fmt --all --check && cargo clippy -p pgstream-core --all-targets -- -D warnings \
	  && cargo clippy --no-default-features --features pg15 --all-targets -- -D warnings
unit:          ## the pure core crate (seconds, no PostgreSQL), then the extension's unit tests
	cargo test -p pgstream-core && cargo test --no-default-features --features pg15 -- --skip pg_tests::
e2e:           ## end-to-end tests against a running `make cluster-start` cluster
	. scripts/lib.sh && $$VENV/bin/python -m pytest -q tests/e2e
dbt:           ## the dbt integration flow on every dbt version, against a running cluster
	scripts/dbt_integration.sh
bench-dbt:     ## no-change `dbt run` of 200 models: stream_table vs materialized_view vs table
	bench/dbt_run
bench-refresh: ## DIFFERENTIAL vs FULL vs AUTO vs REFRESH MATERIALIZED VIEW [CONCURRENTLY], 100k and 1M rows; single-row DML latency
	bench/refresh
bench-refresh-10m: ## the fixed 1000-row change set at 100k vs 10M rows (DIFFERENTIAL, no-change), under 15 minutes
	bench/refresh --10m
bench-refresh-smoke: ## bench/refresh at 10k/20k rows with short DML loops: does it all work? (seconds)
	bench/refresh --smoke
bench-parallel: ## 200 stream tables due at once: refreshed one after the other vs by parallel refresh workers
	bench/parallel

bench-parallel-smoke: ## bench/parallel with 20 stream tables over 20k rows: does it all work? (seconds)
	bench/parallel --smoke

bench-lagging: ## a small DIFFERENTIAL refresh beside a lagging reader of the same source vs alone (about 2 minutes)
	bench/lagging_reader

bench-deployment: ## a living dbt deployment for one compressed hour: stream_table vs materialized_view vs table (about 15 minutes)
	bench/deployment
bench-deployment-smoke: ## bench/deployment at 20k rows, a 12-minute "hour" of 2 s minutes: does it all work? (under 2 minutes)
	bench/deployment --smoke
bench-tpch:    ## the 22 TPC-H queries: stream table refresh vs REFRESH MATERIALIZED VIEW [CONCURRENTLY], SF 1 (BENCH_TPCH_SCALE)
	bench/tpch

bench-refresh-baseline: ## FULL refresh vs REFRESH MATERIALIZED VIEW [CONCURRENTLY] (before DIFFERENTIAL)
	bench/refresh_baseline
bench-citus:   ## FULL stream tables over Citus tables vs the same data local, beside RMV and local DIFFERENTIAL (PostgreSQL 18, release build)
	bench/citus
