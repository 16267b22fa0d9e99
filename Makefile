# The two commands a user needs: `make run` and `make test`.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin
GO ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
ADDR ?= 127.0.0.1:8080
DATA ?= ./data
SLIDES ?= $(DATA)/slides
SHARED ?= ../shared

.PHONY: all deps web build run demo test vet lint unit race fuzz bench clean

all: build

deps:
	@scripts/install-deps.sh

# The viewer page embeds OpenSeadragon from npm: `web` installs the locked
# packages and copies the library into girder/web/dist/ (not committed),
# skipped while it is up to date.
WEB_LIB := girder/web/dist/openseadragon/openseadragon.min.js
web: $(WEB_LIB)
$(WEB_LIB): web/package.json web/package-lock.json web/build.mjs
	cd web && npm ci --no-audit --no-fund --loglevel=error
	node web/build.mjs

build: deps web
	$(GO) build -o bin/tileserver ./cmd/tileserver
	$(GO) build -o bin/tilebench ./cmd/tilebench
	$(GO) build -o bin/limitserver ./bench/limitserver

# Seed the slides folder with a few real demo slides when the shared test
# images are beside the repository; the synthetic test image is always there.
demo:
	@mkdir -p $(SLIDES)
	@if [ -d $(SHARED)/testdata ] && [ -z "$$(ls -A $(SLIDES))" ]; then \
		mkdir -p $(SLIDES)/demo; \
		for f in libvips/CMU-1-Small-Region.svs openslide-python/boxes.tiff large_image/yb10kx5k.zstd.tiff \
			libvips/multi-channel-z-series.ome.tif libvips/world.jp2 wsi-to-dicom-converter/jpeg.dicom; do \
			cp $(SHARED)/testdata/$$f $(SLIDES)/demo/; done; \
		echo "demo slides copied to $(SLIDES)/demo"; fi

# A fresh admin token each run (unless TILESERVER_ADMIN_TOKEN is set), printed
# with the URL, so the viewer's cache panel works.
run: build demo
	@token="$${TILESERVER_ADMIN_TOKEN:-$$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}"; \
		echo "viewer: http://$(ADDR)/  admin token (cache panel): $$token"; \
		TILESERVER_ADMIN_TOKEN="$$token" exec ./bin/tileserver --addr $(ADDR) --data $(DATA) --slides $(SLIDES)

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

lint:
	$(GO) run $(STATICCHECK) ./...
	yamllint -c deploy/yamllint.yaml --strict deploy docker/compose.yaml

unit: deps web
	$(GO) test -count=1 ./...

# Every package under the race detector; -short trims the slow parts (the
# concurrency stress test keeps to the smaller images).
race: deps web
	$(GO) test -count=1 -race -short ./...

# A short fuzz run of each parser (the seed corpora live in testdata/).
# Budgets are counts of executions (about 10 s each on a 2-core machine),
# not durations: with a -fuzztime duration, Go 1.26's fuzz coordinator can
# fail a target with a bare "context deadline exceeded" when the deadline
# falls while a worker is still busy (golang/go#75804, fixed in Go 1.27);
# a count has no deadline to race.
FUZZ = -run '^$$' -fuzzminimizetime 5s
fuzz:
	$(GO) test $(FUZZ) -fuzztime 20000x -fuzz '^FuzzParse$$' ./tilesource/tiff/
	$(GO) test $(FUZZ) -fuzztime 10000x -fuzz '^FuzzParse$$' ./tilesource/dicom/
	$(GO) test $(FUZZ) -fuzztime 50000x -fuzz '^FuzzJPEGLS$$' ./tilesource/dicom/
	$(GO) test $(FUZZ) -fuzztime 200000x -fuzz '^FuzzInspectJ2K$$' ./encode/
	$(GO) test $(FUZZ) -fuzztime 20000x -fuzz '^FuzzJPEGHeader$$' ./encode/
	$(GO) test $(FUZZ) -fuzztime 20000x -fuzz '^FuzzStripWebPMetadata$$' ./encode/
	$(GO) test $(FUZZ) -fuzztime 150000x -fuzz '^FuzzParse$$' ./style/
	$(GO) test $(FUZZ) -fuzztime 50000x -fuzz '^FuzzParseRequest$$' ./girder/iiif/
	$(GO) test $(FUZZ) -fuzztime 1500x -fuzz '^FuzzHandler$$' ./girder/
	for f in FuzzRegion FuzzThumbnailAndAssociated FuzzSynthesis FuzzQuadInfo FuzzFrames; do \
		$(GO) test $(FUZZ) -fuzztime 2000x -fuzz "^$$f\$$" ./tilesource/pipeline/ || exit 1; done

test: deps vet lint unit race fuzz

# The standard benchmark suite (makes its own 30000² slide and its
# every-other-level twin, runs every cache configuration, writes
# out/bench/report.md), then the Go micro-benchmarks.
bench: build
	mkdir -p out/bench
	bin/tilebench suite --server bin/tileserver --out out/bench
	$(GO) test -run '^$$' -bench . -count 5 ./tilecache/ ./tilesource/pipeline/ ./encode/ | tee out/bench/go-bench.txt

clean:
	rm -rf bin out web/node_modules girder/web/dist/openseadragon girder/web/dist/mirador
