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
# server, warm = a wrk run over tiles already served. Those rows run
# minutes apart, while this machine's speed drifts by a third over minutes,
# so each run ends with the comparisons that matter measured on servers
# running side by side and taking turns (ROUNDS rounds, default 4, each on
# fresh servers): cold CPU per stored tile over the whole full-resolution
# level for the pread limit, ours, ours keeping every tile on its first
# request, the map limit, ours without a tile cache and ours with its tier
# full; CPU and latency of tiles of a level
# the file lacks for the pread limit and ours; and warm hits for the map
# limit and ours. The summary gives the median of the rounds' ratios.
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
# Side by side: the servers of the cold and warm rounds below run at the
# same time, on ports of their own, and take turns. Their PIDs are in
# SIDE_PID (stopped by side_stop, and on exit), their addresses in
# SIDE_ADDR, the item id of slide.tif in SIDE_ITEM ("limit" for the limit
# servers).
declare -A SIDE_PID SIDE_ADDR SIDE_ITEM
side_stop() {
	local name
	for name in "${!SIDE_PID[@]}"; do
		kill "${SIDE_PID[$name]}" 2> /dev/null
		wait "${SIDE_PID[$name]}" 2> /dev/null
		unset "SIDE_PID[$name]"
	done
}
trap 'stop_server; side_stop' EXIT
# side_start NAME KIND PORT SLIDE ARGS...: a fresh server beside the
# others, serving slide SLIDE (slide.tif or slide-4x.tif): KIND pread or map
# is the limit server over it, ours is ours with ARGS.
side_start() {
	local name=$1 kind=$2 ADDR=127.0.0.1:$3 slide=$4 # wait_healthy and wait_item read ADDR
	shift 4
	SIDE_ADDR[$name]=$ADDR
	case $kind in
	pread | map)
		"$LIMIT" -slide "$DATA/$slide" -addr "$ADDR" -mode "$kind" > "$OUT_DIR/side.$name.log" 2>&1 &
		SIDE_PID[$name]=$!
		SIDE_ITEM[$name]=limit
		wait_healthy
		;;
	ours)
		rm -rf "/tmp/peers/tileserver-data-$name"
		"$BIN" --addr "$ADDR" --data "/tmp/peers/tileserver-data-$name" --slides $SLIDES --log-level warn \
			--prefetch=false --warm-on-import=false "$@" > "$OUT_DIR/side.$name.log" 2>&1 &
		SIDE_PID[$name]=$!
		wait_healthy && SIDE_ITEM[$name]=$(wait_item "$slide") && [ -n "${SIDE_ITEM[$name]}" ]
		;;
	esac
}
# turns K N: the order in which N servers take turn K, rotated by one
# from turn to turn, so that over N turns each server runs once in every
# position (first after the pause, last before it).
turns() {
	local k=$1 n=$2 i
	for ((i = 0; i < n; i++)); do echo $(((i + k) % n)); done
}
# take_turns CHUNK TOTAL NAME...: the side-by-side servers NAME request
# their side.NAME.urls lists (TOTAL lines) in chunks of CHUNK, one URL at a
# time, each chunk from every server in turn (see turns); TURN_NS[NAME] and
# TURN_WALL[NAME] are each server's CPU and the client's wall time over
# all its chunks, in nanoseconds.
declare -A TURN_NS TURN_WALL
take_turns() {
	local chunk=$1 total=$2 k=0 s t a b c d
	shift 2
	local names=("$@")
	for t in "${names[@]}"; do TURN_NS[$t]=0 TURN_WALL[$t]=0; done
	for ((s = 1; s <= total; s += chunk)); do
		for t in $(turns $k ${#names[@]}); do
			t=${names[$t]}
			sed -n "${s},$((s + chunk - 1))p" "$OUT_DIR/side.$t.urls" > "$OUT_DIR/side.chunk"
			a=$(cpu_ns "${SIDE_PID[$t]}")
			c=$(date +%s%N)
			"$W/seq-latency.sh" "http://${SIDE_ADDR[$t]}" "$OUT_DIR/side.chunk" > /dev/null
			d=$(date +%s%N)
			b=$(cpu_ns "${SIDE_PID[$t]}")
			TURN_NS[$t]=$((TURN_NS[$t] + b - a)) TURN_WALL[$t]=$((TURN_WALL[$t] + d - c))
		done
		k=$((k + 1))
	done
}
# cold_rounds ROUNDS: cold CPU per stored tile over every tile of the
# slide's full-resolution level for six servers side by side: the pread
# limit; ours (memory cache, whose doorkeeper keeps a stored tile from its
# second request, so a first request keeps nothing); ours keeping every
# tile on its first request (--cache-doorkeeper=false, what a tile's second
# request costs ours); the map limit (the pread server plus keeping each
# tile in memory); ours with no tile cache; all fresh, so the tiles kept
# fill memory the process never touched before. The sixth is ours keeping
# every tile as it runs once its tier is full: a 32 MiB tier filled
# beforehand with the next level's tiles, so that every tile kept evicts
# another and reuses its memory (a fresh server pays page faults for every tile it
# keeps until its budget is reached, then no more). The level is requested
# in chunks of 500 tiles, one at a time, each chunk from every server in
# turn (see turns), so that this machine's drift (its CPU time per request
# wanders by a third over minutes) falls on all alike: measured one after
# the other, seconds apart, the same servers' ratios still spread over
# ±30 % from round to round.
cold_rounds() {
	local rounds=$1 chunk=500 all=$OUT_DIR/cold-rounds.tiles fill=$OUT_DIR/cold-rounds.fill i s total
	local names=(pread ours keep map none full)
	local -A ns
	for i in $(seq "$rounds"); do
		page_in
		{ side_start pread pread 18091 slide.tif && side_start map map 18092 slide.tif &&
			side_start ours ours 18093 slide.tif --cache memory &&
			side_start keep ours 18098 slide.tif --cache memory --cache-doorkeeper=false &&
			side_start none ours 18094 slide.tif --cache none &&
			side_start full ours 18095 slide.tif --cache memory --cache-memory-bytes 32M --cache-doorkeeper=false; } ||
			{ side_stop; return 1; }
		# The tiles of the full-resolution level, and of the next one for
		# filling the sixth server's tier.
		[ -s "$all" ] && [ -s "$fill" ] || curl -s "http://${SIDE_ADDR[ours]}/api/v1/item/${SIDE_ITEM[ours]}/tiles" | python3 -c '
import json, sys
m = json.load(sys.stdin)
for z, out in ((m["levels"] - 1, sys.argv[1]), (m["levels"] - 2, sys.argv[2])):
    scale = 2 ** (m["levels"] - 1 - z)
    with open(out, "w") as f:
        for y in range(-(-m["sizeY"] // (m["tileHeight"] * scale))):
            for x in range(-(-m["sizeX"] // (m["tileWidth"] * scale))):
                print(z, x, y, file=f)' "$all" "$fill"
		for s in "${names[@]}"; do
			tile_urls "${SIDE_ITEM[$s]}" "$all" "$OUT_DIR/side.$s.urls"
		done
		tile_urls "${SIDE_ITEM[full]}" "$fill" "$OUT_DIR/side.fill.urls"
		"$W/seq-latency.sh" "http://${SIDE_ADDR[full]}" "$OUT_DIR/side.fill.urls" > /dev/null
		total=$(grep -c . "$all")
		take_turns $chunk "$total" "${names[@]}"
		side_stop
		for s in "${names[@]}"; do ns[$s]=$(echo "scale=1; ${TURN_NS[$s]} / 1000 / $total" | bc); done
		echo "cold round $i tiles=$total pread=${ns[pread]}us ours=${ns[ours]}us ours-keep=${ns[keep]}us map=${ns[map]}us ours-nocache=${ns[none]}us ours-full=${ns[full]}us" |
			tee -a "$OUT_DIR/cold-rounds.txt"
	done
}
# missing_rounds ROUNDS: tiles of a level the file lacks (z6 of the twin
# that stores every other level, the 2000 tiles of its list), each made
# from its four stored children, on the pread limit (libjpeg-turbo: the
# children decoded at half size, then encoded) and on ours (memory cache),
# fresh and side by side: chunks of 250 tiles one at a time, taking turns
# (see turns). Server CPU and the client's wall time are summed per server.
missing_rounds() {
	local rounds=$1 chunk=250 i t total
	local names=(pread ours)
	for i in $(seq "$rounds"); do
		page_in
		{ side_start pread pread 18096 slide-4x.tif && side_start ours ours 18097 slide-4x.tif --cache memory; } ||
			{ side_stop; return 1; }
		for t in "${names[@]}"; do
			tile_urls "${SIDE_ITEM[$t]}" "$U/tiles-z6.txt" "$OUT_DIR/side.$t.urls"
		done
		total=$(grep -c . "$U/tiles-z6.txt")
		take_turns $chunk "$total" "${names[@]}"
		side_stop
		echo "missing round $i tiles=$total" \
			"pread=$(echo "scale=1; ${TURN_NS[pread]} / 1000 / $total" | bc)us/$(echo "scale=3; ${TURN_WALL[pread]} / 1000000 / $total" | bc)ms" \
			"ours=$(echo "scale=1; ${TURN_NS[ours]} / 1000 / $total" | bc)us/$(echo "scale=3; ${TURN_WALL[ours]} / 1000000 / $total" | bc)ms" |
			tee -a "$OUT_DIR/missing-rounds.txt"
	done
}
# warm_rounds ROUNDS: warm hits of the map limit and ours (memory cache),
# fresh and side by side: each gets the 2000 tiles of the z7 list
# requested once and a 3 s wrk warm-up, then ten 2 s wrk runs (-t2 -c32),
# taking turns (see turns); requests and server CPU are summed per server.
warm_rounds() {
	local rounds=$1 runs=10 secs=2 i k t out a b
	local names=(map ours)
	local -A reqs ns
	for i in $(seq "$rounds"); do
		page_in
		{ side_start map map 18092 slide.tif && side_start ours ours 18093 slide.tif --cache memory; } ||
			{ side_stop; return 1; }
		for t in "${names[@]}"; do
			tile_urls "${SIDE_ITEM[$t]}" "$U/tiles-z7.txt" "$OUT_DIR/side.$t.urls"
			"$W/seq-latency.sh" "http://${SIDE_ADDR[$t]}" "$OUT_DIR/side.$t.urls" > /dev/null
			wrk -t2 -c32 -d3s -s "$W/urls.lua" "http://${SIDE_ADDR[$t]}" -- "$OUT_DIR/side.$t.urls" 2 > /dev/null
			reqs[$t]=0 ns[$t]=0
		done
		for ((k = 0; k < runs; k++)); do
			for t in $(turns $k 2); do
				t=${names[$t]}
				a=$(cpu_ns "${SIDE_PID[$t]}")
				out=$(wrk -t2 -c32 -d${secs}s -s "$W/urls.lua" "http://${SIDE_ADDR[$t]}" -- "$OUT_DIR/side.$t.urls" 2)
				b=$(cpu_ns "${SIDE_PID[$t]}")
				reqs[$t]=$((reqs[$t] + $(echo "$out" | awk '/requests in/ { print $1 }')))
				ns[$t]=$((ns[$t] + b - a))
			done
		done
		side_stop
		echo "warm round $i map=$((reqs[map] / (runs * secs)))/$(echo "scale=1; ${ns[map]} / 1000 / ${reqs[map]}" | bc)" \
			"ours=$((reqs[ours] / (runs * secs)))/$(echo "scale=1; ${ns[ours]} / 1000 / ${reqs[ours]}" | bc)" |
			tee -a "$OUT_DIR/warm-rounds.txt"
	done
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
	rm -f "$OUT_DIR/cold-rounds.txt" "$OUT_DIR/missing-rounds.txt" "$OUT_DIR/warm-rounds.txt"
	cold_rounds "${ROUNDS:-4}"
	missing_rounds "${ROUNDS:-4}"
	warm_rounds "${ROUNDS:-4}"
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
    for f in glob.glob(f"/tmp/peers/results-{run}/cold-rounds.txt"):
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
          f"{len(pairs)} rounds side by side over the whole level:")
    pair_ratio("ours", "ours-memory (doorkeeper: keeps nothing yet)")
    pair_ratio("ours-keep", "ours keeping every tile at once (a 2nd request)")
    pair_ratio("map", "limit-map (pread + keeping every tile)")
    pair_ratio("ours-nocache", "ours with no tile cache (ours - keeping)")
    pair_ratio("ours-full", "ours, tier full (32 MiB, every tile evicts)")
def rounds(name, pattern):
    """The numbers pattern captures in every run's side-by-side file name."""
    out = []
    for run in range(1, int(sys.argv[1]) + 1):
        for f in glob.glob(f"/tmp/peers/results-{run}/{name}"):
            for m in re.finditer(pattern, open(f).read()):
                out.append([float(x) for x in m.groups()])
    return out
missing = rounds("missing-rounds.txt", r"pread=([\d.]+)us/([\d.]+)ms ours=([\d.]+)us/([\d.]+)ms")
if missing:
    cpu = sorted(m[2] / m[0] for m in missing)
    lat = sorted(m[3] / m[1] for m in missing)
    print(f"missing level, ours-memory / limit-pread, {len(missing)} rounds side by side: CPU per tile median "
          f"{med(cpu):.2f} (range {cpu[0]:.2f}-{cpu[-1]:.2f}; pread {med([m[0] for m in missing]):.0f} us, "
          f"ours {med([m[2] for m in missing]):.0f} us), latency median {med(lat):.2f} (range {lat[0]:.2f}-{lat[-1]:.2f}; "
          f"pread {med([m[1] for m in missing]):.2f} ms, ours {med([m[3] for m in missing]):.2f} ms)")
warm = rounds("warm-rounds.txt", r"map=([\d.]+)/([\d.]+) ours=([\d.]+)/([\d.]+)")
if warm:
    rps = sorted(w[2] / w[0] for w in warm)
    cpu = sorted(w[3] / w[1] for w in warm)
    print(f"warm hits, ours-memory / limit-map, {len(warm)} rounds side by side: req/s median {med(rps):.2f} "
          f"(range {rps[0]:.2f}-{rps[-1]:.2f}; map {med([w[0] for w in warm]):.0f}, ours {med([w[2] for w in warm]):.0f}), "
          f"CPU per request median {med(cpu):.2f} (map {med([w[1] for w in warm]):.1f} us, ours {med([w[3] for w in warm]):.1f} us)")
EOF
