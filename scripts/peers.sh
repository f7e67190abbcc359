#!/usr/bin/env bash
# cellc beside its peers: for each cell and configuration, runs
# ../shared/bench/peers.py (PyTorch, JAX, ONNX Runtime, NumPy on the same
# sizes) and `cellc bench --json`, one after the other, and prints a Markdown
# table of median milliseconds with cellc's ratio to the fastest peer.
#
# Usage: scripts/peers.sh [--cellc PATH] [--configs "T,B,H,X ..."]
#                         [--modes "fwd fwdbwd"] [--cells "torch_lstm ..."] [OUT.md]
#
#   --cellc    the cellc binary (default: target/release/cellc)
#   --configs  configurations, space-separated (default: the five below)
#   --modes    fwd and/or fwdbwd (default: both)
#   --cells    among torch_lstm, torch_gru, torch_rnn (default: all three)
#   OUT.md     where the table goes (default: stdout)
#
# Environment: PYTHON, a Python with the peers' packages (default python3;
# a peer whose package is missing is skipped and named); PEERS, the peers to
# ask peers.py for (default numpy,onnxruntime,jax,torch-nn: the fast paths);
# THREADS, given to both (default 2; cellc runs on one thread
# whatever it is given).
#
# The machine is shared: quote medians and ratios measured in the same run.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cellc="$root/target/release/cellc"
configs="100,1,128,128 100,1,512,512 100,32,256,256 50,128,512,512 1000,1,64,64"
modes="fwd fwdbwd"
cells="torch_lstm torch_gru torch_rnn"
out=""
python=${PYTHON:-python3}
threads=${THREADS:-2}

die() { echo "peers.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --cellc) cellc=${2:?--cellc needs a path}; shift 2 ;;
        --configs) configs=${2:?--configs needs a list}; shift 2 ;;
        --modes) modes=${2:?--modes needs a list}; shift 2 ;;
        --cells) cells=${2:?--cells needs a list}; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) [ -z "$out" ] || die "one output file only"; out=$1; shift ;;
    esac
done

for m in $modes; do
    case "$m" in fwd|fwdbwd) ;; *) die "unknown mode $m (fwd or fwdbwd)" ;; esac
done

# The script lives in the repository; peers.py beside the checkout.
peers="$root/../shared/bench/peers.py"
[ -f "$peers" ] || die "no peer harness at $peers (expected ../shared/bench/peers.py beside the repository)"
[ -x "$cellc" ] || die "no cellc binary at $cellc: build it with 'cargo build --release' or give --cellc PATH"
command -v "$python" >/dev/null 2>&1 || die "no Python '$python': set PYTHON to a Python with numpy"
"$python" -c "import numpy" 2>/dev/null ||
    die "'$python' has no numpy, which peers.py needs to start at all: set PYTHON (e.g. PYTHON=/tmp/venv/bin/python)"

# Which peers can run: each one's package must import; the others are named.
wanted=${PEERS:-numpy,onnxruntime,jax,torch-nn}
present=()
missing=()
for peer in ${wanted//,/ }; do
    case "$peer" in
        numpy) modules="numpy" ;;
        onnxruntime) modules="onnxruntime onnx" ;;
        jax) modules="jax" ;;
        torch-*) modules="torch" ;;
        *) die "unknown peer $peer" ;;
    esac
    ok=1
    for mod in $modules; do
        "$python" -c "import $mod" 2>/dev/null || { ok=0; missing+=("$peer (no $mod)"); break; }
    done
    [ $ok = 1 ] && present+=("$peer")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "peers.sh: not installed for $python, skipped: ${missing[*]}" >&2
fi
[ ${#present[@]} -gt 0 ] || die "none of the peers $wanted can run with $python"
peer_list=$(IFS=,; echo "${present[*]}")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
results="$work/results.tsv" # cell, T, B, H, X, who, file or JSON line
: > "$results"

# The peers' name of each cellc model (peers.py's --cell).
peer_cell() {
    case "$1" in
        torch_lstm) echo lstm ;;
        torch_gru) echo gru ;;
        torch_rnn) echo rnn ;;
        *) die "no peer cell for $1 (torch_lstm, torch_gru or torch_rnn)" ;;
    esac
}

for cell in $cells; do
    pcell=$(peer_cell "$cell")
    model="$root/models/$cell.cell"
    [ -f "$model" ] || die "no model $model"
    for config in $configs; do
        IFS=, read -r T B H X <<< "$config"
        [ -n "${X:-}" ] || die "a configuration is T,B,H,X: got $config"
        echo "peers.sh: $cell T=$T B=$B H=$H X=$X" >&2
        # Interleaved: cellc's first mode, the peers (both modes), then
        # cellc's second mode: each configuration's figures are minutes
        # apart at most (no mode is measured twice, so load drift is not
        # shown; read peers.py's `busy` figures for that).
        for m in $modes; do
            line=$("$cellc" bench "$model" -D "H=$H" -D "X=$X" --seq "$T" --batch "$B" \
                --mode "$m" --threads "$threads" --json) || die "cellc bench failed for $cell $config $m"
            printf '%s\t%s\t%s\t%s\t%s\tcellc\t%s\n' "$cell" "$T" "$B" "$H" "$X" "$line" >> "$results"
            if [ "$m" = "${modes%% *}" ]; then
                json="$work/peers-$cell-$T-$B-$H-$X.json"
                forward_only=()
                case " $modes " in *" fwdbwd "*) ;; *) forward_only=(--forward-only) ;; esac
                # peers.py exits 1 when a cross-check fails: its results are
                # still written, and the failure is in its log.
                "$python" "$peers" --cell "$pcell" --seq "$T" --batch "$B" --hidden "$H" \
                    --input "$X" --threads "$threads" --peers "$peer_list" "${forward_only[@]}" \
                    --json "$json" > "$work/peers.log" 2>&1 ||
                    { echo "peers.sh: peers.py reported a problem for $cell $config:" >&2
                      grep -E "CROSS-CHECK|FAILED|error|Error" "$work/peers.log" >&2 || tail -5 "$work/peers.log" >&2; }
                [ -f "$json" ] || die "peers.py wrote no results for $cell $config"
                printf '%s\t%s\t%s\t%s\t%s\tpeers\t%s\n' "$cell" "$T" "$B" "$H" "$X" "$json" >> "$results"
            fi
        done
    done
done

# The table, in the order measured.
table=$("$python" - "$results" "$peer_list" "$modes" "$threads" <<'PY'
import json, sys

results, peer_list, modes, threads = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(), sys.argv[4]
rows = {}   # (cell, T, B, H, X) -> {mode: {who: ms}}
order = []
for line in open(results):
    cell, T, B, H, X, who, payload = line.rstrip("\n").split("\t", 6)
    key = (cell, T, B, H, X)
    if key not in rows:
        rows[key] = {m: {} for m in modes}
        order.append(key)
    if who == "cellc":
        r = json.loads(payload)
        rows[key][r["mode"]]["cellc"] = r["median_ms"]
    else:
        for r in json.load(open(payload)).get("results", []):
            mode = "fwdbwd" if r["mode"] == "fwd+bwd" else r["mode"]
            if mode in rows[key]:
                rows[key][mode][r["peer"]] = r["median_s"] * 1e3

def ms(v):
    return "" if v is None else f"{v:.3f}"

print(f"median ms per call, threads={threads} (cellc: --backend jit, one thread)\n")
print("| cell | T, B, H, X | mode | cellc | " + " | ".join(peer_list)
      + " | fastest peer | cellc / fastest |")
print("|---|---|---|---|" + "---|" * len(peer_list) + "---|---|")
for key in order:
    cell, T, B, H, X = key
    for mode in modes:
        got = rows[key][mode]
        peers = {p: got[p] for p in peer_list if p in got}
        fastest = min(peers, key=peers.get) if peers else None
        ratio = (f"{got['cellc'] / peers[fastest]:.2f}"
                 if fastest and "cellc" in got and peers[fastest] > 0 else "")
        print(f"| {cell} | {T}, {B}, {H}, {X} | {mode} | {ms(got.get('cellc'))} | "
              + " | ".join(ms(got.get(p)) for p in peer_list)
              + f" | {fastest or ''} | {ratio} |")
PY
)

if [ -n "$out" ]; then
    printf '%s\n' "$table" > "$out"
    echo "peers.sh: wrote $out" >&2
else
    printf '%s\n' "$table"
fi
