#!/usr/bin/env bash
# Coverage-guided fuzzing of the input readers and the API's query parsing,
# on the stable toolchain: libfuzzer-sys builds libFuzzer with the C++
# compiler, and rustc's own (stable) -C flags add the coverage
# instrumentation that cargo-fuzz would add. Nothing to install by hand.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Each target starts from its seeds in fuzz/corpus/<target>/ (committed) and
# keeps what it finds in fuzz/corpus-run/<target>/ (not committed). Exits
# non-zero on the first target that crashes, printing the input that did it;
# `fuzz/target/<triple>/release/<target> <input>` replays it.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-15}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(usage_csv usage_ndjson price_sheet hierarchy query)
fi

host=$(rustc -vV | sed -n 's/^host: //p')
# --target keeps these flags off build scripts and proc macros, which are
# not linked with libFuzzer. `--cfg fuzzing` also shrinks the readers' bounds
# (meterbook-io) so that short inputs reach them.
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cdebug-assertions -Coverflow-checks"
echo "fuzz: building ${targets[*]} (release, debug assertions on)"
build_args=()
for t in "${targets[@]}"; do
    build_args+=(--bin "$t")
done
cargo build --release --locked --target "$host" "${build_args[@]}"

bin="target/$host/release"
status=0
for t in "${targets[@]}"; do
    echo "fuzz: running $t for ${seconds}s"
    mkdir -p "corpus-run/$t" "artifacts/$t"
    rm -f "artifacts/$t"/*
    # max_len: above the fuzzing build's record bound (1 KiB), so inputs
    # cross it, and short enough to keep executions fast.
    if ! "$bin/$t" "corpus-run/$t" "corpus/$t" \
        -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 \
        >"artifacts/$t.log" 2>&1; then
        grep -E "^(==|SUMMARY|thread '|.*panicked)" "artifacts/$t.log" | head -20 || true
        for f in "artifacts/$t"/*; do
            [ -e "$f" ] && echo "fuzz: $t crashed on fuzz/$f"
        done
        echo "fuzz: full log in fuzz/artifacts/$t.log"
        status=1
        break
    fi
    grep -E "^stat::(number_of_executed_units|peak_rss_mb)" "artifacts/$t.log" | tr '\n' ' '
    echo "corpus: $(ls "corpus-run/$t" | wc -l) inputs"
done
if [ "$status" -eq 0 ]; then
    echo "fuzz: ${#targets[@]} targets ran ${seconds}s each without a crash"
fi
exit "$status"
