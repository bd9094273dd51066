#!/usr/bin/env bash
# integration/gpu-check.sh: GPU steps on a real NVIDIA machine.
#
# Run from anywhere on a host with an NVIDIA GPU, its driver (nvidia-smi) and,
# optionally, a CDI spec (nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml).
# Run it as root for the root path, or as a user with a subordinate ID range
# for the rootless path. Needs: make, Go, mmdebstrap and a reachable Debian
# mirror (SNAPBUILD_DEBIAN_MIRROR), python3, zstd, tar.
#
# Checks:
#   1. a debian_slim step with gpu=any runs `nvidia-smi -L > /gpus.txt`; the
#      file lists a GPU of this host, and the step's layer holds /gpus.txt and
#      nothing else (no device node, driver library, mount stub, ld.so.cache
#      or symlink of the injection);
#   2. a step with gpu=any running `true` adds no layer;
#   3. a request this host cannot serve fails before running, saying what
#      the host has;
#   4. a Python file's run_function with gpu=any loads libcuda with ctypes,
#      counts the devices and writes the count; its layer holds that file only.
# Prints one PASS or FAIL line per check and exits non-zero if any failed.
# Keeps its work directory (printed) on failure, removes it on success.

set -u -o pipefail

cd "$(dirname "$0")/.." || exit 2
BIN=./bin/snapbuild
work=$(mktemp -d "${TMPDIR:-/tmp}/snapbuild-gpu-check.XXXXXX") || exit 2
store="$work/store"
failed=0

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
finish() {
	if [ "$failed" -eq 0 ]; then
		rm -rf "$work"
		echo "gpu-check: all checks passed"
		exit 0
	fi
	echo "gpu-check: $failed check(s) failed; work directory kept: $work"
	exit 1
}

# sb runs snapbuild with the check's store.
sb() { "$BIN" "$@" --root "$store"; }

# layers DIR: the layer digests ("sha256:…") of the only image in the OCI
# layout DIR, one per line, base first.
layers() {
	python3 - "$1" <<'EOF'
import json, sys
d = sys.argv[1]
idx = json.load(open(d + "/index.json"))
m = idx["manifests"][0]["digest"].split(":", 1)
man = json.load(open("%s/blobs/%s/%s" % (d, m[0], m[1])))
for l in man["layers"]:
    print(l["digest"])
EOF
}

# layer_files DIR DIGEST: the entries of a zstd layer blob, without "./",
# directories with a trailing "/".
layer_files() {
	local algo=${2%%:*} hex=${2#*:}
	zstd -dc "$1/blobs/$algo/$hex" | tar -tf - | sed 's|^\./||' | grep -v '^$'
}

echo "gpu-check: work directory $work"
for tool in nvidia-smi python3 zstd tar make mmdebstrap; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		fail "prerequisite: $tool not found"
	fi
done
[ "$failed" -eq 0 ] || finish
host_gpus=$(nvidia-smi -L 2>&1) || { fail "prerequisite: nvidia-smi -L on the host: $host_gpus"; finish; }
echo "gpu-check: host GPUs:"
echo "$host_gpus" | sed 's/^/    /'
if ls /etc/cdi/*.yaml /etc/cdi/*.json /var/run/cdi/*.yaml /var/run/cdi/*.json >/dev/null 2>&1; then
	echo "gpu-check: CDI specs present: the steps get the GPUs through CDI"
else
	echo "gpu-check: no CDI spec: the steps get the driver files snapbuild finds"
fi

if ! make build >"$work/make.log" 2>&1; then
	fail "make build (see $work/make.log)"
	finish
fi

# --- 1. nvidia-smi in a GPU step; the layer holds /gpus.txt only -----------
cat >"$work/gpu-smi.yaml" <<'EOF'
- debian_slim: {}
- run_commands: {commands: ["nvidia-smi -L > /gpus.txt"], gpu: any}
EOF
if sb build "$work/gpu-smi.yaml" --progress plain >"$work/build-smi.log" 2>&1; then
	pass "build with gpu=any running nvidia-smi -L"
	if out=$(sb run gpu-smi cat /gpus.txt 2>&1); then
		uuid=$(echo "$out" | sed -n 's/^GPU [0-9]*: .*(UUID: \(GPU-[^)]*\)).*/\1/p' | head -n 1)
		if [ -n "$uuid" ] && echo "$host_gpus" | grep -qF "$uuid"; then
			pass "/gpus.txt lists a GPU of this host: $(echo "$out" | head -n 1)"
		else
			fail "/gpus.txt does not list a GPU of this host: $out"
		fi
	else
		fail "snapbuild run gpu-smi cat /gpus.txt: $out"
	fi
	if sb export gpu-smi "oci:$work/oci-smi:latest" >"$work/export-smi.log" 2>&1; then
		last=$(layers "$work/oci-smi" | tail -n 1)
		files=$(layer_files "$work/oci-smi" "$last")
		if [ "$files" = "gpus.txt" ]; then
			pass "the GPU step's layer holds gpus.txt only"
		else
			fail "the GPU step's layer holds more than gpus.txt:"
			echo "$files" | sed 's/^/    /'
		fi
	else
		fail "export gpu-smi (see $work/export-smi.log)"
	fi
else
	fail "build with gpu=any running nvidia-smi -L (see $work/build-smi.log):"
	tail -n 15 "$work/build-smi.log" | sed 's/^/    /'
fi

# --- 2. a GPU step running `true` adds no layer -----------------------------
cat >"$work/gpu-base.yaml" <<'EOF'
- debian_slim: {}
EOF
cat >"$work/gpu-true.yaml" <<'EOF'
- debian_slim: {}
- run_commands: {commands: ["true"], gpu: any}
EOF
if sb build "$work/gpu-base.yaml" --progress plain >"$work/build-base.log" 2>&1 &&
	sb build "$work/gpu-true.yaml" --progress plain >"$work/build-true.log" 2>&1 &&
	sb export gpu-base "oci:$work/oci-base:latest" >/dev/null 2>&1 &&
	sb export gpu-true "oci:$work/oci-true:latest" >/dev/null 2>&1; then
	base_layers=$(layers "$work/oci-base")
	true_layers=$(layers "$work/oci-true")
	if [ -n "$base_layers" ] && [ "$base_layers" = "$true_layers" ]; then
		pass "a GPU step running true adds no layer"
	else
		fail "a GPU step running true added a layer:"
		last=$(echo "$true_layers" | tail -n 1)
		layer_files "$work/oci-true" "$last" | sed 's/^/    /'
	fi
else
	fail "build or export of the gpu=any true step (see $work/build-base.log, $work/build-true.log):"
	tail -n 15 "$work/build-true.log" | sed 's/^/    /'
fi

# --- 3. a request the host cannot serve fails before running ----------------
cat >"$work/gpu-toomany.yaml" <<'EOF'
- debian_slim: {}
- run_commands: {commands: ["touch /ran"], gpu: "T4:64"}
EOF
if sb build "$work/gpu-toomany.yaml" --progress plain >"$work/build-toomany.log" 2>&1; then
	fail "gpu=T4:64 was built"
elif grep -q 'gpu=.*T4:64.*this machine has' "$work/build-toomany.log"; then
	pass "gpu=T4:64 refused: $(grep -o 'this machine has.*' "$work/build-toomany.log" | head -n 1)"
else
	fail "gpu=T4:64 failed without saying what the host has:"
	tail -n 5 "$work/build-toomany.log" | sed 's/^/    /'
fi

# --- 4. run_function with a GPU, from a Python file -------------------------
# The function loads libcuda with ctypes, counts the devices and writes the
# count; its layer must hold that file only.
cat >"$work/gpu_fn.py" <<'EOF'
import ctypes

import modal


def count_gpus():
    cuda = ctypes.CDLL("libcuda.so.1")
    rc = cuda.cuInit(0)
    if rc != 0:
        raise RuntimeError(f"cuInit failed: {rc}")
    n = ctypes.c_int()
    rc = cuda.cuDeviceGetCount(ctypes.byref(n))
    if rc != 0:
        raise RuntimeError(f"cuDeviceGetCount failed: {rc}")
    with open("/cuda-devices.txt", "w") as f:
        f.write(f"{n.value}\n")
    print("CUDA devices:", n.value)


gpu_fn = modal.Image.debian_slim(python_version="3.11").run_function(count_gpus, gpu="any")
EOF
bin_abs=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
if (cd "$work" && "$bin_abs" build gpu_fn.py -t gpu_fn --root "$store" --progress plain) >"$work/build-fn.log" 2>&1; then
	pass "run_function with gpu=any loading libcuda"
	if out=$(sb run gpu_fn cat /cuda-devices.txt 2>&1) && [ "${out:-0}" -ge 1 ] 2>/dev/null; then
		pass "the function counted $out CUDA device(s)"
	else
		fail "the function's count: $out"
	fi
	if sb export gpu_fn "oci:$work/oci-fn:latest" >"$work/export-fn.log" 2>&1; then
		last=$(layers "$work/oci-fn" | tail -n 1)
		files=$(layer_files "$work/oci-fn" "$last")
		if [ "$files" = "cuda-devices.txt" ]; then
			pass "the function's layer holds cuda-devices.txt only"
		else
			fail "the function's layer holds more than cuda-devices.txt:"
			echo "$files" | sed 's/^/    /'
		fi
	else
		fail "export gpu_fn (see $work/export-fn.log)"
	fi
else
	fail "run_function with gpu=any (see $work/build-fn.log):"
	tail -n 20 "$work/build-fn.log" | sed 's/^/    /'
fi

finish
