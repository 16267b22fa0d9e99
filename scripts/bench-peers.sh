#!/usr/bin/env bash
# Same-run comparison with the peer tile servers of ../shared/peers: each
# peer row, then ours, each on a freshly started server, over the same tile
# lists, with the peers' own bench-one.sh (cold = first request of 500
# tiles one at a time; warm = wrk -t2 -c32 -d10s over 2000 tiles already
# requested once).
#
#   scripts/bench-peers.sh [RUNS=3]
#
# Beside the peers it runs the limit servers (bin/limitserver: the same
# responses, tile bytes and headers, from a map in memory and by a bare
# pread; a missing level's tile from its four children decoded at half size
# by libjpeg-turbo and encoded, pixel for pixel ours), so every row can be
# read as ours / peer and ours / limit. For our server and the
# limits it also measures server CPU per request (from
# /proc/PID/task/*/schedstat): cold = every tile's first request on a fresh
# server, warm = a wrk run over tiles already served. Last in each run,
# cold CPU per stored tile is measured again in PAIRS (default 4) rounds of
# the pread limit, ours, the map limit and ours without a tile cache run
# back to back over the whole full-resolution level (every other round in
# reverse order), and the summary gives the median of the rounds' ratios
# to the pread server. Warm hits are
# measured again the same way, in PAIRS pairs of the map limit and ours.
#
# It builds ours (make build), installs wrk and the peers
# (../shared/peers/*/install.sh) when they are missing, and makes the
# slides (../shared/peers/make-slide.sh, in /tmp/peers/data) once. Results go to
# /tmp/peers/results-N/ and a summary of medians is printed at the end.
# Servers are stopped by the PID they were started with, never by name.
set -uo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
P=${PEERS:-$HERE/../shared/peers}; W=$P/wrk
DATA=/tmp/peers/data; U=/tmp/peers/urls
BIN=$HERE/bin/tileserver
LIMIT=$HERE/bin/limitserver
RUNS=${1:-3}
ADDR=127.0.0.1:18090
SLIDES=/tmp/peers/tileserver-slides

# Ours is built from this checkout (make build: seconds when up to date),
# and wrk, bc and the peers' Debian packages are installed when missing
# (the install scripts skip what is there).
make -C "$HERE" build > /dev/null || exit 1
"$P/install-debs.sh" wrk bc curl || exit 1
"$P/iipimage/install.sh" && "$P/openslide-deepzoom/install.sh" || exit 1
[ -f $DATA/slide.tif ] || "$P/make-slide.sh" "$DATA"
[ -f $U/tiles-z7.txt ] || "$W/make-urls.sh" "$U" > /dev/null
# The slide root must hold the files themselves (links leaving it are
# refused): hard links cost nothing on the same file system.
mkdir -p $SLIDES
for f in slide.tif slide-4x.tif; do
	[ -e $SLIDES/$f ] || ln $DATA/$f $SLIDES/$f 2> /dev/null || cp $DATA/$f $SLIDES/$f
done

# page_in reads both slides through the page cache right before a server
# starts, so every row begins with the file cached: this machine pages out
# file pages left idle for about a minute (DAMON reclaim), and rows run
# minutes apart.
page_in() { cat $DATA/slide.tif $DATA/slide-4x.tif > /dev/null; }

SERVER_PID=""
stop_server() {
	[ -n "$SERVER_PID" ] || return 0
	kill "$SERVER_PID" 2> /dev/null
	wait "$SERVER_PID" 2> /dev/null
	SERVER_PID=""
}
trap stop_server EXIT
wait_healthy() {
	for _ in $(seq 100); do curl -sf "http://$ADDR/healthz" > /dev/null && return 0; sleep 0.1; done
	echo "server on $ADDR did not start" >&2
	return 1
}
# cpu_ns PID: CPU time of every thread of the process so far, nanoseconds.
cpu_ns() {
	cat /proc/"$1"/task/*/schedstat 2> /dev/null | awk '{ s += $1 } END { printf "%.0f", s }'
}
# cpu_per_request LABEL LIST: server CPU per request, cold (each URL's first
# request, one at a time) then warm (wrk over the same URLs), appended to
# the row's summary.
cpu_per_request() {
	local label=$1 list=$2 a b reqs cold_us warm_us
	cold_us=$(cold_cpu "$list")
	a=$(cpu_ns "$SERVER_PID")
	reqs=$(wrk -t2 -c32 -d5s -s "$W/urls.lua" "http://$ADDR" -- "$list" 2 | awk '/requests in/ { print $1 }')
	b=$(cpu_ns "$SERVER_PID")
	warm_us=$(echo "scale=1; ($b - $a) / 1000 / $reqs" | bc)
	echo "  cpu   cold=${cold_us}us/req warm=${warm_us}us/req" | tee -a "$OUT_DIR/$label.summary.txt"
}
# cold_cpu LIST: server CPU per request (us) over each URL's first
# request, one at a time.
cold_cpu() {
	local a b n
	n=$(grep -c . "$1")
	a=$(cpu_ns "$SERVER_PID")
	"$W/seq-latency.sh" "http://$ADDR" "$1" > /dev/null
	b=$(cpu_ns "$SERVER_PID")
	echo "scale=1; ($b - $a) / 1000 / $n" | bc
}
item_id() { # name
	curl -s "http://$ADDR/api/v1/item?text=$1" |
		python3 -c "import json,sys; print([i['_id'] for i in json.load(sys.stdin) if i['name']=='$1'][0])"
}
# wait_item NAME: the id of item NAME once the fresh server has imported it.
wait_item() {
	local id
	for _ in $(seq 50); do id=$(item_id "$1" 2> /dev/null) && [ -n "$id" ] && break; sleep 0.1; done
	echo "$id"
}
start_ours() { # label extra-args...
	local label=$1
	shift
	rm -rf /tmp/peers/tileserver-data
	page_in
	"$BIN" --addr $ADDR --data /tmp/peers/tileserver-data --slides $SLIDES --log-level warn \
		--prefetch=false --warm-on-import=false "$@" > "$OUT_DIR/$label.server.log" 2>&1 &
	SERVER_PID=$!
	wait_healthy
}
# start_limit LABEL MODE SLIDE: a fresh limit server over slide SLIDE.
start_limit() {
	page_in
	"$LIMIT" -slide "$DATA/$3" -addr $ADDR -mode "$2" > "$OUT_DIR/$1.server.log" 2>&1 &
	SERVER_PID=$!
	wait_healthy
}
# tile_urls ITEM TILES OUT: the zxy URLs of item ITEM ("limit" for the limit
# servers) for the "z x y" lines of TILES, written to OUT.
tile_urls() {
	sed "s#^#/api/v1/item/$1/tiles/zxy/#; s# #/#g" "$2" > "$3"
}
ours() { # label slide-name zlevel extra-args...
	local label=$1 name=$2 z=$3
	shift 3
	start_ours "$label" "$@" || return
	local id list=$OUT_DIR/$label.urls
	id=$(wait_item "$name")
	tile_urls "$id" "$U/tiles-z$z.txt" "$list"
	"$W/wait-idle.sh" 120 > /dev/null 2>&1 || true
	"$W/bench-one.sh" "$label" "http://$ADDR" "$list" "/api/v1/item/$id/tiles"
	stop_server
	# CPU per request on a fresh server of the same configuration.
	start_ours "$label" "$@" || return
	cpu_per_request "$label" "$list"
	stop_server
}
# limit LABEL MODE SLIDE Z: the limit server over a slide, the tile list of
# level Z.
limit() {
	local label=$1 mode=$2 slide=$3 z=$4 list=$OUT_DIR/$1.urls pass
	tile_urls limit "$U/tiles-z$z.txt" "$list"
	for pass in bench cpu; do
		start_limit "$label" "$mode" "$slide" || return
		if [ $pass = bench ]; then
			"$W/wait-idle.sh" 120 > /dev/null 2>&1 || true
			"$W/bench-one.sh" "$label" "http://$ADDR" "$list" /healthz
		else
			cpu_per_request "$label" "$list"
		fi
		stop_server
	done
}
# cold_pairs PAIRS: cold CPU per stored tile over every tile of the
# slide's full-resolution level, on fresh servers run back to back: the
# pread limit, ours (memory cache), then the two that split the
# difference: the map limit (the pread server plus keeping each tile in
# memory) and ours with no tile cache (ours minus keeping). PAIRS times,
# every other round in reverse order.
# The servers of a round run seconds apart, so each round's ratios are
# free of the drift between rows minutes apart (this shared machine's CPU
# time per request wanders by a third over minutes); the summary gives
# the median of all rounds' ratios.
cold_pairs() {
	local pairs=$1 all=$OUT_DIR/cold-pairs.tiles i id order s
	local -A us
	start_ours cold-pairs --cache memory || return
	id=$(wait_item slide.tif)
	curl -s "http://$ADDR/api/v1/item/$id/tiles" | python3 -c '
import json, sys
m = json.load(sys.stdin)
z = m["levels"] - 1
for y in range(-(-m["sizeY"] // m["tileHeight"])):
    for x in range(-(-m["sizeX"] // m["tileWidth"])):
        print(z, x, y)' > "$all"
	stop_server
	for i in $(seq "$pairs"); do
		# Odd rounds run in this order, even ones in reverse, so a
		# machine speeding up or slowing down through a round favours
		# no server.
		order="pread ours map none"
		((i % 2)) || order="none map ours pread"
		for s in $order; do
			case $s in
			pread | map) us[$s]=$(on_limit "$s" "$all" cold_cpu) || return ;;
			ours) us[$s]=$(on_ours "$all" cold_cpu --cache memory) || return ;;
			none) us[$s]=$(on_ours "$all" cold_cpu --cache none) || return ;;
			esac
		done
		echo "pair $i tiles=$(grep -c . "$all") pread=${us[pread]}us ours=${us[ours]}us map=${us[map]}us ours-nocache=${us[none]}us" |
			tee -a "$OUT_DIR/cold-pairs.txt"
	done
}
# warm_pairs PAIRS: warm hits of the map limit and ours (memory cache),
# back to back on fresh servers, PAIRS times (map first in odd pairs, ours
# first in even ones): each server gets the 2000 tiles of the z7 list
# requested once, a 3 s wrk warm-up, then a 10 s wrk run (-t2 -c32) whose
# requests per second and server CPU per request are recorded. As with
# cold_pairs, the rows above run minutes apart; each pair's ratio does not.
warm_pairs() {
	local pairs=$1 i order s
	local -A got
	for i in $(seq "$pairs"); do
		order="map ours" # alternating, as in cold_pairs
		((i % 2)) || order="ours map"
		for s in $order; do
			case $s in
			map) got[$s]=$(on_limit map "$U/tiles-z7.txt" warm_run) || return ;;
			ours) got[$s]=$(on_ours "$U/tiles-z7.txt" warm_run --cache memory) || return ;;
			esac
		done
		echo "warm pair $i map=${got[map]} ours=${got[ours]}" | tee -a "$OUT_DIR/warm-pairs.txt"
	done
}
# on_limit MODE TILES MEASURE and on_ours TILES MEASURE ARGS...: start a
# fresh limit server (over slide.tif) or server of ours, run MEASURE over
# the URLs of the "z x y" lines of TILES, print what it printed and stop
# the server. They run in command substitutions, where the EXIT trap does
# not reach, so they stop a server that failed to start too.
on_limit() {
	local list=$OUT_DIR/pairs.limit.urls
	start_limit pairs.limit "$1" slide.tif || { stop_server; return 1; }
	tile_urls limit "$2" "$list"
	"$3" "$list"
	stop_server
}
on_ours() {
	local tiles=$1 measure=$2 id list=$OUT_DIR/pairs.ours.urls
	shift 2
	start_ours pairs "$@" || { stop_server; return 1; }
	id=$(wait_item slide.tif)
	tile_urls "$id" "$tiles" "$list"
	"$measure" "$list"
	stop_server
}
# warm_run LIST: primes the server with every URL of LIST, then prints
# "REQ_PER_S/CPU_US_PER_REQ" of a 10 s wrk run over them.
warm_run() {
	local a b out reqs
	"$W/seq-latency.sh" "http://$ADDR" "$1" > /dev/null
	wrk -t2 -c32 -d3s -s "$W/urls.lua" "http://$ADDR" -- "$1" 2 > /dev/null
	a=$(cpu_ns "$SERVER_PID")
	out=$(wrk -t2 -c32 -d10s -s "$W/urls.lua" "http://$ADDR" -- "$1" 2)
	b=$(cpu_ns "$SERVER_PID")
	reqs=$(echo "$out" | awk '/requests in/ { print $1 }')
	echo "$(echo "$out" | awk '/Requests\/sec:/ { print $2 }')/$(echo "scale=1; ($b - $a) / 1000 / $reqs" | bc)"
}
peer() { # label start stop base list warm
	"$W/wait-idle.sh" 120 > /dev/null 2>&1 || true
	page_in
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
	limit limit-map-z7 map slide.tif 7
	limit limit-pread-z7 pread slide.tif 7
	limit limit-pread-4x-z6 pread slide-4x.tif 6
	peer iip-mc-dz-z7 "$P/iipimage/start.sh --memcached" "$P/iipimage/stop.sh" $IIP $U/iip-dz-z7.txt "$IW"
	ours ours-memory-z7 slide.tif 7 --cache memory
	memcached -l 127.0.0.1 -p 11411 -m 2048 -I 8m -u "$(id -un)" -t 2 &
	mc=$!
	sleep 0.5
	ours ours-memcached-z7 slide.tif 7 --cache memcached --memcached 127.0.0.1:11411
	kill $mc
	wait $mc 2> /dev/null
	peer iip-dz-z7 "$P/iipimage/start.sh" "$P/iipimage/stop.sh" $IIP $U/iip-dz-z7.txt "$IW"
	peer osdz-gunicorn-4x-z6 "SLIDE=$DATA/slide-4x.tif $P/openslide-deepzoom/start.sh gunicorn" \
		"$P/openslide-deepzoom/stop.sh" $OSD $U/osdz-z6.txt /slide.dzi
	ours ours-4x-z6 slide-4x.tif 6 --cache memory
	rm -f "$OUT_DIR/cold-pairs.txt" "$OUT_DIR/warm-pairs.txt"
	cold_pairs "${PAIRS:-4}"
	warm_pairs "${PAIRS:-4}"
done

# Medians over the runs: cold mean latency, warm throughput and p99 (wrk
# prints them in us, ms or s), CPU per request; then ours / limit.
python3 - "$RUNS" << 'EOF'
import re, statistics, sys, glob
UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}
rows = {}
for run in range(1, int(sys.argv[1]) + 1):
    for f in glob.glob(f"/tmp/peers/results-{run}/*.summary.txt"):
        text = open(f).read()
        label = text.split("\n", 1)[0].strip()
        r = rows.setdefault(label, {k: [] for k in ("cold", "rps", "p99", "cpu_cold", "cpu_warm")})
        cold = re.search(r"cold .*? mean=([\d.]+)ms", text)
        warm = re.search(r"warm +req/s=([\d.]+).*?p99=([\d.]+)(us|ms|s)\b", text)
        cpu = re.search(r"cpu +cold=([\d.]+)us/req warm=([\d.]+)us/req", text)
        if cold:
            r["cold"].append(float(cold.group(1)))
        if warm:
            r["rps"].append(float(warm.group(1)))
            r["p99"].append(float(warm.group(2)) * UNIT[warm.group(3)])
        if cpu:
            r["cpu_cold"].append(float(cpu.group(1)))
            r["cpu_warm"].append(float(cpu.group(2)))
med = lambda v: statistics.median(v) if v else float("nan")
print(f"{'row':24} {'cold mean ms':>12} {'warm req/s':>11} {'warm p99 ms':>11} {'cpu cold us':>11} {'cpu warm us':>11}")
for label, r in sorted(rows.items()):
    print(f"{label:24} {med(r['cold']):12.2f} {med(r['rps']):11.0f} {med(r['p99']):11.2f} "
          f"{med(r['cpu_cold']):11.1f} {med(r['cpu_warm']):11.1f}")
def ratio(a, b, key):
    if a in rows and b in rows and rows[a][key] and rows[b][key]:
        return med(rows[a][key]) / med(rows[b][key])
    return float("nan")
print()
print(f"warm req/s   ours-memory / limit-map   = {ratio('ours-memory-z7', 'limit-map-z7', 'rps'):.2f}")
print(f"warm CPU/req ours-memory / limit-map   = {ratio('ours-memory-z7', 'limit-map-z7', 'cpu_warm'):.2f}")
print(f"cold CPU/req ours-memory / limit-pread = {ratio('ours-memory-z7', 'limit-pread-z7', 'cpu_cold'):.2f}")
print(f"cold mean    ours-memory / limit-pread = {ratio('ours-memory-z7', 'limit-pread-z7', 'cold'):.2f}")
print(f"missing level, cold CPU/req ours-4x / limit-pread-4x = {ratio('ours-4x-z6', 'limit-pread-4x-z6', 'cpu_cold'):.2f}")
print(f"missing level, cold mean    ours-4x / limit-pread-4x = {ratio('ours-4x-z6', 'limit-pread-4x-z6', 'cold'):.2f}")
pairs = []
for run in range(1, int(sys.argv[1]) + 1):
    for f in glob.glob(f"/tmp/peers/results-{run}/cold-pairs.txt"):
        for line in open(f):
            v = dict((k, float(x)) for k, x in re.findall(r"([\w-]+)=([\d.]+)us", line))
            if "pread" in v and "ours" in v:
                pairs.append(v)
if pairs:
    def pair_ratio(name, label):
        rs = sorted(p[name] / p["pread"] for p in pairs if name in p)
        if rs:
            print(f"  {label:44} median {med(rs):.2f} (range {rs[0]:.2f}-{rs[-1]:.2f}; "
                  f"{med([p[name] for p in pairs if name in p]):.1f} us per tile)")
    print(f"cold CPU per stored tile / limit-pread ({med([p['pread'] for p in pairs]):.1f} us), "
          f"{len(pairs)} rounds over the whole level:")
    pair_ratio("ours", "ours-memory")
    pair_ratio("map", "limit-map (pread + keeping every tile)")
    pair_ratio("ours-nocache", "ours with no tile cache (ours - keeping)")
warm = []
for run in range(1, int(sys.argv[1]) + 1):
    for f in glob.glob(f"/tmp/peers/results-{run}/warm-pairs.txt"):
        for m in re.finditer(r"map=([\d.]+)/([\d.]+) ours=([\d.]+)/([\d.]+)", open(f).read()):
            warm.append([float(x) for x in m.groups()])
if warm:
    rps = sorted(w[2] / w[0] for w in warm)
    cpu = sorted(w[3] / w[1] for w in warm)
    print(f"warm hits, ours-memory / limit-map, {len(warm)} back-to-back pairs: req/s median {med(rps):.2f} "
          f"(range {rps[0]:.2f}-{rps[-1]:.2f}; map {med([w[0] for w in warm]):.0f}, ours {med([w[2] for w in warm]):.0f}), "
          f"CPU per request median {med(cpu):.2f} (map {med([w[1] for w in warm]):.1f} us, ours {med([w[3] for w in warm]):.1f} us)")
EOF
