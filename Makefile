# The two commands of the README, and a few more for developers.
#   make demo   installs what is missing, builds, replays the sample fixture
#   make test   builds and runs the whole test suite (ctest)
BUILD      ?= build
BUILD_SAN  ?= build-sanitize
BUILD_FUZZ ?= build-fuzz
GENERATOR  := $(shell command -v ninja >/dev/null 2>&1 && echo "-G Ninja")
CMAKE_OPTS ?=
FUZZ_SECONDS ?= 60

.PHONY: all build deps demo test test-sanitize fuzz bench format format-check clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) $(GENERATOR) -DCMAKE_BUILD_TYPE=Release $(CMAKE_OPTS)
	@cmake --build $(BUILD) -j

demo: build
	@scripts/demo.sh $(BUILD)

test: build
	@ctest --test-dir $(BUILD) --output-on-failure -j2

# The same suite under AddressSanitizer and UndefinedBehaviorSanitizer.
test-sanitize: deps
	@test -f $(BUILD_SAN)/CMakeCache.txt || cmake -S . -B $(BUILD_SAN) $(GENERATOR) -DCMAKE_BUILD_TYPE=Debug -DPE_SANITIZE=address,undefined -DPE_WERROR=ON $(CMAKE_OPTS)
	@cmake --build $(BUILD_SAN) -j
	@ASAN_OPTIONS=detect_leaks=1 ctest --test-dir $(BUILD_SAN) --output-on-failure -j2 -LE slow

# libFuzzer targets, each run for FUZZ_SECONDS over its committed corpus.
fuzz: deps
	@test -f $(BUILD_FUZZ)/CMakeCache.txt || CC=clang cmake -S . -B $(BUILD_FUZZ) $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPE_FUZZ=ON -DBUILD_TESTING=OFF $(CMAKE_OPTS)
	@cmake --build $(BUILD_FUZZ) -j
	@scripts/run-fuzzers.sh $(BUILD_FUZZ) $(FUZZ_SECONDS)

# One .clang-format for every C file of the tree.
format:
	@git ls-files '*.c' '*.h' '*.cu' | xargs clang-format -i

format-check:
	@git ls-files '*.c' '*.h' '*.cu' | xargs clang-format --dry-run -Werror

bench: build
	@echo "see docs/benchmarks.md for each benchmark's command"

clean:
	rm -rf $(BUILD) $(BUILD_SAN) $(BUILD_FUZZ)
