#!/usr/bin/env bash
# Same-run comparison with the peer tile servers of ../shared/peers: each
# peer row, then ours, each on a freshly started server, over the same tile
# lists, with the peers' own bench-one.sh (cold = first request of 500
# tiles one at a time; warm = wrk -t2 -c32 -d10s over 2000 tiles already
# requested once).
#
#   scripts/bench-peers.sh [RUNS=3]
#
# Needs: make build; the peers installed (../shared/peers/*/install.sh); the
# slides (../shared/peers/make-slide.sh, in /tmp/peers/data). Results go to
# /tmp/peers/results-N/ and a summary of medians is printed at the end.
set -uo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
P=${PEERS:-$HERE/../shared/peers}; W=$P/wrk
DATA=/tmp/peers/data; U=/tmp/peers/urls
BIN=$HERE/bin/tileserver
RUNS=${1:-3}
ADDR=127.0.0.1:18090
SLIDES=/tmp/peers/tileserver-slides

[ -x "$BIN" ] || { echo "run make build first" >&2; exit 1; }
[ -f $DATA/slide.tif ] || "$P/make-slide.sh" "$DATA"
[ -f $U/tiles-z7.txt ] || "$W/make-urls.sh" "$U" > /dev/null
# The slide root must hold the files themselves (links leaving it are
# refused): hard links cost nothing on the same file system.
mkdir -p $SLIDES
for f in slide.tif slide-4x.tif; do
	[ -e $SLIDES/$f ] || ln $DATA/$f $SLIDES/$f 2> /dev/null || cp $DATA/$f $SLIDES/$f
done

stop_ours() {
	pkill -f "tileserver --addr $ADDR" || true
	while pgrep -f "tileserver --addr $ADDR" > /dev/null; do sleep 0.2; done
}
item_id() { # name
	curl -s "http://$ADDR/api/v1/item?text=$1" |
		python3 -c "import json,sys; print([i['_id'] for i in json.load(sys.stdin) if i['name']=='$1'][0])"
}
ours() { # label slide-name zlevel extra-args...
	local label=$1 name=$2 z=$3
	shift 3
	stop_ours
	rm -rf /tmp/peers/tileserver-data
	"$BIN" --addr $ADDR --data /tmp/peers/tileserver-data --slides $SLIDES --log-level warn \
		--prefetch=false --warm-on-import=false "$@" > "$OUT_DIR/$label.server.log" 2>&1 &
	for _ in $(seq 50); do curl -sf "http://$ADDR/healthz" > /dev/null && break; sleep 0.1; done
	local id list=$OUT_DIR/$label.urls
	for _ in $(seq 50); do id=$(item_id "$name" 2> /dev/null) && [ -n "$id" ] && break; sleep 0.1; done
	sed "s#^#/api/v1/item/$id/tiles/zxy/#; s# #/#g" "$U/tiles-z$z.txt" > "$list"
	"$W/wait-idle.sh" 120 > /dev/null 2>&1 || true
	"$W/bench-one.sh" "$label" "http://$ADDR" "$list" "/api/v1/item/$id/tiles"
	stop_ours
}
peer() { # label start stop base list warm
	"$W/wait-idle.sh" 120 > /dev/null 2>&1 || true
	eval "$2" > "$OUT_DIR/$1.start.txt" 2>&1 || { echo "$1: start failed"; cat "$OUT_DIR/$1.start.txt"; }
	"$W/bench-one.sh" "$1" "$4" "$5" "$6"
	eval "$3" > /dev/null 2>&1
	sleep 1
}

IIP=http://127.0.0.1:18081; OSD=http://127.0.0.1:18082
IW='/fcgi-bin/iipsrv.fcgi?DeepZoom=slide.tif.dzi'
for run in $(seq "$RUNS"); do
	export OUT_DIR=/tmp/peers/results-$run
	mkdir -p "$OUT_DIR"
	cat $DATA/slide.tif $DATA/slide-4x.tif > /dev/null
	peer iip-mc-dz-z7 "$P/iipimage/start.sh --memcached" "$P/iipimage/stop.sh" $IIP $U/iip-dz-z7.txt "$IW"
	ours ours-memory-z7 slide.tif 7 --cache memory
	memcached -l 127.0.0.1 -p 11411 -m 2048 -I 8m -u "$(id -un)" -t 2 &
	mc=$!
	sleep 0.5
	ours ours-memcached-z7 slide.tif 7 --cache memcached --memcached 127.0.0.1:11411
	kill $mc
	peer iip-dz-z7 "$P/iipimage/start.sh" "$P/iipimage/stop.sh" $IIP $U/iip-dz-z7.txt "$IW"
	peer osdz-gunicorn-4x-z6 "SLIDE=$DATA/slide-4x.tif $P/openslide-deepzoom/start.sh gunicorn" \
		"$P/openslide-deepzoom/stop.sh" $OSD $U/osdz-z6.txt /slide.dzi
	ours ours-4x-z6 slide-4x.tif 6 --cache memory
done

# Medians over the runs: cold mean latency and warm throughput per row.
python3 - "$RUNS" << 'EOF'
import re, statistics, sys, glob
rows = {}
for run in range(1, int(sys.argv[1]) + 1):
    for f in glob.glob(f"/tmp/peers/results-{run}/*.summary.txt"):
        text = open(f).read()
        label = text.split("\n", 1)[0].strip()
        cold = re.search(r"cold .*? mean=([\d.]+)ms", text)
        warm = re.search(r"warm +req/s=([\d.]+).*?p99=([\d.]+)(ms|us)", text)
        r = rows.setdefault(label, {"cold": [], "rps": [], "p99": []})
        if cold: r["cold"].append(float(cold.group(1)))
        if warm:
            r["rps"].append(float(warm.group(1)))
            r["p99"].append(float(warm.group(2)) / (1000 if warm.group(3) == "us" else 1))
print(f"{'row':24} {'cold mean ms':>12} {'warm req/s':>11} {'warm p99 ms':>11}")
for label, r in sorted(rows.items()):
    med = lambda v: statistics.median(v) if v else float("nan")
    print(f"{label:24} {med(r['cold']):12.2f} {med(r['rps']):11.0f} {med(r['p99']):11.2f}")
EOF
